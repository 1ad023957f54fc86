//! The JSON a job master's dashboard reporter sends (`POST /api/report`) and the dashboard
//! answers. Both sides use these types: the dashboard crate depends on the job master crate,
//! never the other way round.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Where reports go, below the dashboard's URL.
pub const REPORT_PATH: &str = "/api/report";

/// The largest report body the dashboard accepts; a reporter splits bigger states.
pub const MAX_REPORT_BYTES: usize = 4 << 20;

/// The most workers one report carries (well under [`MAX_REPORT_BYTES`]).
pub const MAX_WORKERS_PER_REPORT: usize = 2048;

/// The most events one report carries.
pub const MAX_EVENTS_PER_REPORT: usize = 2048;

/// Job states as the dashboard shows them (Twister2's names, plus RUNNING).
pub const JOB_STATES: &[&str] = &["STARTING", "RUNNING", "COMPLETED", "FAILED", "KILLED"];

/// Worker states as the dashboard shows them.
pub const WORKER_STATES: &[&str] = &[
    "STARTING",
    "STARTED",
    "RESTARTED",
    "COMPLETED",
    "FAILED",
    "FULLY_FAILED",
    "KILLED",
    "KILLED_BY_SCALE_DOWN",
];

/// One report: the job as it is now, some (or, when `full`, all) of its workers, and the
/// events since the last report that the dashboard acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// The job, always whole.
    pub job: JobReport,
    /// Workers that changed (all of them when `full`, possibly over several reports).
    #[serde(default)]
    pub workers: Vec<WorkerReport>,
    /// Events, each at most once per (`epoch`, `seq`).
    #[serde(default)]
    pub events: Vec<EventReport>,
    /// True when the reporter sends its whole state (after a failure, or when asked).
    #[serde(default)]
    pub full: bool,
}

/// A job as its job master sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobReport {
    /// The job ID.
    pub job_id: String,
    /// The job's name.
    pub name: String,
    /// `local` or `kubernetes`.
    pub cluster: String,
    /// The Kubernetes namespace (empty locally).
    #[serde(default)]
    pub namespace: String,
    /// Who submitted it.
    #[serde(default)]
    pub user: String,
    /// A summary of the spec: command, resources, restarts, fault tolerance.
    #[serde(default)]
    pub spec: BTreeMap<String, String>,
    /// One of [`JOB_STATES`].
    pub state: String,
    /// Why it is in that state (empty for COMPLETED and while running).
    #[serde(default)]
    pub reason: String,
    /// Number of workers now.
    pub num_workers: u32,
    /// When the job master started, Unix milliseconds.
    pub started_ms: i64,
    /// When the job ended, Unix milliseconds.
    #[serde(default)]
    pub ended_ms: Option<i64>,
}

/// A worker as its job master sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerReport {
    /// The worker ID.
    pub worker_id: u32,
    /// Its address.
    pub host: String,
    /// Its port.
    pub port: u32,
    /// Its node's IP or name.
    #[serde(default)]
    pub node: String,
    /// Its rack.
    #[serde(default)]
    pub rack: String,
    /// Its datacenter.
    #[serde(default)]
    pub datacenter: String,
    /// One of [`WORKER_STATES`].
    pub state: String,
    /// Restarts so far.
    #[serde(default)]
    pub restart_count: u32,
    /// Last message from it, Unix milliseconds.
    #[serde(default)]
    pub heartbeat_ms: i64,
    /// Exit code of its program's last run, when it reported one.
    #[serde(default)]
    pub exit_code: Option<i32>,
}

/// Something that happened to the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventReport {
    /// The job master's start, Unix milliseconds: with `seq`, identifies the event.
    pub epoch: i64,
    /// Its number within the job master's run.
    pub seq: u64,
    /// When, Unix milliseconds.
    pub at_ms: i64,
    /// JOINED, RESTARTED, RECONNECTED, FAILED, LOST, COMPLETED, SCALED, BARRIER,
    /// JOB_MASTER_RESTARTED, JOB or KILL_REQUESTED.
    pub kind: String,
    /// The worker it is about, if one.
    #[serde(default)]
    pub worker_id: Option<u32>,
    /// For people.
    pub message: String,
}

/// The dashboard's answer to a report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportReply {
    /// Set when someone asked the dashboard to kill the job: why.
    #[serde(default)]
    pub kill: Option<String>,
    /// The dashboard did not know the job: send the full state.
    #[serde(default)]
    pub need_full: bool,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
