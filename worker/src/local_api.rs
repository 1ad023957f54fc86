//! The agent's local API: one JSON object per line over a Unix socket. A client writes a
//! [`Request`] and reads one [`Response`]; `events` instead streams [`EventLine`]s until closed.

use serde::{Deserialize, Serialize};

/// A request from a user program (or `t2 worker …`) to its agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Who am I (with the job's current number of workers).
    Info,
    /// The worker list; with `wait`, only once all workers have joined.
    Workers {
        /// Wait until all workers have joined.
        wait: bool,
    },
    /// Wait on a barrier.
    Barrier {
        /// `default` or `init`.
        #[serde(default)]
        init: bool,
        /// Timeout in milliseconds; 0 means the job's default.
        #[serde(default)]
        timeout_ms: u64,
    },
    /// Send a message to the other workers, relayed by the job master.
    Send {
        /// The message.
        message: String,
    },
    /// Stream fault events and messages until the connection closes.
    Events,
}

/// A worker as the local API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerEntry {
    /// Worker ID.
    pub id: u32,
    /// Host address.
    pub host: String,
    /// Worker port.
    pub port: u32,
    /// Node IP.
    pub node: String,
    /// Rack name.
    pub rack: String,
    /// Datacenter name.
    pub datacenter: String,
    /// Restarts so far.
    pub restart_count: u32,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Response {
    /// True on success.
    pub ok: bool,
    /// A readable error when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Barrier result name: SUCCESS, TIMED_OUT or JOB_FAULTY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Workers, for `workers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<WorkerEntry>>,
    /// Identity, for `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Identity>,
}

/// Who a worker is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Job ID.
    pub job_id: String,
    /// Worker ID.
    pub worker_id: u32,
    /// Number of workers.
    pub num_workers: u32,
    /// Restarts so far.
    pub restart_count: u32,
}

/// One streamed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventLine {
    /// Another worker failed.
    WorkerFailed {
        /// Which.
        worker_id: u32,
        /// Why.
        reason: String,
    },
    /// Another worker came back.
    WorkerRestarted {
        /// Which.
        worker_id: u32,
        /// Its restart count.
        restart_count: u32,
    },
    /// All workers have joined (again).
    AllJoined {
        /// How many.
        num_workers: u32,
    },
    /// A message from another worker.
    Message {
        /// The text.
        message: String,
    },
    /// The job master was restarted and this worker reconnected to it.
    JobMasterRestarted {},
    /// The job was scaled. On a scale-down, workers with IDs `>= num_workers` are stopped; on
    /// a scale-up, new workers join and an `all_joined` with the new count follows.
    JobScaled {
        /// The new number of workers.
        num_workers: u32,
        /// The number before.
        previous: u32,
    },
    /// The job ended.
    JobEnded {
        /// Final state.
        state: String,
        /// Why.
        reason: String,
    },
}
