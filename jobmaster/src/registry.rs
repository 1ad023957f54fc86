//! The workers of a job: their info, states, restart counts, connections and liveness.

use std::collections::BTreeMap;
use std::time::Instant;

use t2_proto::{master_to_worker::Body, MasterToWorker, WorkerInfo, WorkerState};
use tokio::sync::mpsc::UnboundedSender;
use tonic::Status;

/// The outgoing half of a worker's stream.
pub type Outbox = UnboundedSender<Result<MasterToWorker, Status>>;

/// A live stream to a worker agent.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Distinguishes this stream from earlier ones of the same worker.
    pub id: u64,
    /// Where messages to the worker go.
    pub outbox: Outbox,
}

/// Everything the job master knows about one worker.
#[derive(Debug, Clone)]
pub struct WorkerEntry {
    /// Address, node, state and restart count.
    pub info: WorkerInfo,
    /// The current stream, if connected.
    pub conn: Option<Connection>,
    /// Last message seen on the current stream.
    pub last_seen: Instant,
    /// Exit code of the user program's last run, if it reported one.
    pub exit_code: Option<i32>,
}

impl WorkerEntry {
    /// The worker's current state.
    pub fn state(&self) -> WorkerState {
        self.info.state()
    }

    /// Registered and not failed: counts towards "all joined".
    pub fn is_joined(&self) -> bool {
        matches!(
            self.state(),
            WorkerState::Started | WorkerState::Restarted | WorkerState::Completed
        )
    }
}

/// All workers of the job, by worker ID.
#[derive(Debug, Default)]
pub struct Registry {
    entries: BTreeMap<u32, WorkerEntry>,
}

impl Registry {
    /// The worker with this ID, if it ever registered.
    pub fn get(&self, id: u32) -> Option<&WorkerEntry> {
        self.entries.get(&id)
    }

    /// Mutable access to a worker.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut WorkerEntry> {
        self.entries.get_mut(&id)
    }

    /// Adds or replaces a worker.
    pub fn insert(&mut self, entry: WorkerEntry) {
        self.entries.insert(entry.info.worker_id, entry);
    }

    /// Removes a worker (scaled away); returns what was known about it.
    pub fn remove(&mut self, id: u32) -> Option<WorkerEntry> {
        self.entries.remove(&id)
    }

    /// All workers in ID order.
    pub fn iter(&self) -> impl Iterator<Item = &WorkerEntry> {
        self.entries.values()
    }

    /// All workers in ID order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut WorkerEntry> {
        self.entries.values_mut()
    }

    /// Number of workers currently joined.
    pub fn joined(&self) -> u32 {
        self.entries.values().filter(|e| e.is_joined()).count() as u32
    }

    /// True when every ID in `0..n` is joined.
    pub fn all_joined(&self, n: u32) -> bool {
        (0..n).all(|id| self.entries.get(&id).is_some_and(WorkerEntry::is_joined))
    }

    /// IDs in `0..n` that are not joined.
    pub fn missing(&self, n: u32) -> Vec<u32> {
        (0..n)
            .filter(|id| !self.entries.get(id).is_some_and(WorkerEntry::is_joined))
            .collect()
    }

    /// The worker list as sent to workers.
    pub fn worker_list(&self) -> Vec<WorkerInfo> {
        self.entries.values().map(|e| e.info.clone()).collect()
    }

    /// Sends `body` to worker `id` if it is connected.
    pub fn send(&self, id: u32, body: Body) {
        if let Some(conn) = self.entries.get(&id).and_then(|e| e.conn.as_ref()) {
            // A closed outbox means the stream is going away; its disconnect event follows.
            let _ = conn.outbox.send(Ok(MasterToWorker { body: Some(body) }));
        }
    }

    /// Sends `body` to every connected worker except `except`.
    pub fn broadcast(&self, body: &Body, except: Option<u32>) {
        for e in self
            .entries
            .values()
            .filter(|e| Some(e.info.worker_id) != except)
        {
            if let Some(conn) = &e.conn {
                let _ = conn.outbox.send(Ok(MasterToWorker {
                    body: Some(body.clone()),
                }));
            }
        }
    }
}
