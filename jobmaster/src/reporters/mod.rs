//! Reporters: where the job master tells others about its job. The one here feeds the
//! dashboard ([`dashboard`]) over HTTP, never slowing the job: the master hands it updates
//! through a bounded queue without waiting ([`Reporter::send`]); a task batches them, sends
//! them with retries and backoff, and hands back a kill asked for on the dashboard.
//!
//! - [`wire`]: the JSON both sides speak.
//! - [`dashboard`]: the reporting task. - `http`: its one keep-alive HTTP connection.

pub mod dashboard;
mod http;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use wire::WorkerReport;

/// How many updates wait for the reporting task at most; past that they are dropped and the
/// master sends a whole snapshot instead at its next tick.
pub const QUEUE_BOUND: usize = 8192;

/// Where a job master reports, and what it says about its job besides its state.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardConfig {
    /// The dashboard, `http[s]://host:port[/prefix]`.
    pub url: String,
    /// Its token (reports need it).
    pub token: String,
    /// For an `https://` dashboard: the CA certificates (PEM) trusted, no others.
    pub ca_pem: String,
    /// The job's name.
    pub name: String,
    /// `local` or `kubernetes`.
    pub cluster: String,
    /// Kubernetes namespace, empty locally.
    pub namespace: String,
    /// Who submitted the job.
    pub user: String,
    /// A summary of the spec.
    pub spec: BTreeMap<String, String>,
}

/// What the master tells the reporting task.
#[derive(Debug, Clone)]
pub enum Update {
    /// The job's state changed.
    Job {
        /// One of [`wire::JOB_STATES`].
        state: &'static str,
        /// Why.
        reason: String,
        /// Workers now.
        num_workers: u32,
    },
    /// A worker changed.
    Worker(WorkerReport),
    /// Something happened.
    Event {
        /// See [`wire::EventReport::kind`].
        kind: &'static str,
        /// About which worker.
        worker_id: Option<u32>,
        /// For people.
        message: String,
    },
    /// Every worker as it is now (periodically, for heartbeats, and after dropped updates).
    Snapshot {
        /// The job's state.
        state: &'static str,
        /// Why.
        reason: String,
        /// Workers now.
        num_workers: u32,
        /// All of them.
        workers: Vec<WorkerReport>,
    },
}

/// The master's side of a reporter: cheap to use, never blocks.
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Update>,
    overflowed: Arc<AtomicBool>,
}

impl Reporter {
    /// Hands `update` to the reporting task; when its queue is full the update is dropped and
    /// [`Reporter::take_overflow`] says so.
    pub fn send(&self, update: Update) {
        if self.tx.try_send(update).is_err() {
            self.overflowed.store(true, Ordering::Relaxed);
        }
    }

    /// True (once) when updates were dropped since the last call: send a snapshot.
    pub fn take_overflow(&self) -> bool {
        self.overflowed.swap(false, Ordering::Relaxed)
    }
}
