//! The workers of a job: their info, states, restart counts, connections and liveness.
//!
//! Every worker's outgoing queue is bounded ([`OUTBOX_CAPACITY`] messages). The job master
//! never waits on a worker: a message that does not fit marks the worker as fallen behind,
//! and the master then drops its stream and treats it as lost (a worker that has not read
//! a thousand messages is hung or far too slow; its supervisor restarts it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use t2_proto::{master_to_worker::Body, MasterToWorker, WorkerInfo, WorkerState};
use tokio::sync::mpsc::{error::TrySendError, Sender};
use tonic::Status;

/// One message to a worker (or the status that ends its stream). Boxed: a queue allocates its
/// slots 32 at a time, and 32 boxes cost an idle stream 256 bytes where 32 messages cost 4 KiB
/// (40 MB at 10 000 workers).
pub type Outgoing = Result<Box<MasterToWorker>, Status>;

/// The outgoing half of a worker's stream.
pub type Outbox = Sender<Outgoing>;

/// Messages a worker's stream may hold unsent before the worker counts as fallen behind.
pub const OUTBOX_CAPACITY: usize = 1024;

/// Worker IDs (ascending) as a short readable list of ranges, e.g. `0-2999` or `3, 7-9`:
/// at most [`IDS_SHOWN`] ranges, then how many IDs there are in all, so that a reason that
/// names the missing workers of a 10 000-worker job stays one readable line.
pub fn id_ranges(ids: &[u32]) -> String {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for &id in ids {
        match ranges.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(id) => *end = id,
            _ => ranges.push((id, id)),
        }
    }
    let shown: Vec<String> = ranges
        .iter()
        .take(IDS_SHOWN)
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    let mut out = shown.join(", ");
    if ranges.len() > IDS_SHOWN {
        out.push_str(&format!(", ... ({} workers in all)", ids.len()));
    }
    out
}

/// Ranges [`id_ranges`] shows before it counts the rest.
pub const IDS_SHOWN: usize = 20;

/// Milliseconds since this process's first call: the clock of [`Beat`].
pub fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// When a stream last heard from its worker ([`now_ms`]); written by the stream's own task
/// on every heartbeat, so heartbeats never queue up behind the master.
pub type Beat = Arc<AtomicU64>;

/// A live stream to a worker agent.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Distinguishes this stream from earlier ones of the same worker.
    pub id: u64,
    /// Where messages to the worker go.
    pub outbox: Outbox,
    /// Its last heartbeat.
    pub beat: Beat,
}

impl Connection {
    /// How long ago the stream's task last heard from the worker.
    pub fn silent_for(&self) -> Duration {
        self.silent_at(now_ms())
    }

    /// [`Self::silent_for`] as of `now` (a [`now_ms`] reading): scans of every worker read
    /// the clock once, not once per worker.
    pub fn silent_at(&self, now: u64) -> Duration {
        Duration::from_millis(now.saturating_sub(self.beat.load(Ordering::Relaxed)))
    }
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
    /// Bumped by every change that may alter who is joined.
    version: u64,
    /// `(version, n, all joined)` of the last [`Registry::all_joined`] answer: with 10 000
    /// workers, "are all joined?" is asked often and must not scan them each time.
    all_joined_cache: Mutex<Option<(u64, u32, bool)>>,
    /// Streams whose queue was full: `(worker, connection)`.
    lagging: Mutex<Vec<(u32, u64)>>,
}

impl Registry {
    /// The worker with this ID, if it ever registered.
    pub fn get(&self, id: u32) -> Option<&WorkerEntry> {
        self.entries.get(&id)
    }

    /// Changes with every change that may alter who is joined or what the list shows.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Mutable access to a worker.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut WorkerEntry> {
        self.version += 1;
        self.entries.get_mut(&id)
    }

    /// Notes that worker `id` was heard from now (does not change who is joined).
    pub fn touch(&mut self, id: u32) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.last_seen = Instant::now();
        }
    }

    /// Adds or replaces a worker.
    pub fn insert(&mut self, entry: WorkerEntry) {
        self.version += 1;
        self.entries.insert(entry.info.worker_id, entry);
    }

    /// Removes a worker (scaled away); returns what was known about it.
    pub fn remove(&mut self, id: u32) -> Option<WorkerEntry> {
        self.version += 1;
        self.entries.remove(&id)
    }

    /// All workers in ID order.
    pub fn iter(&self) -> impl Iterator<Item = &WorkerEntry> {
        self.entries.values()
    }

    /// All workers in ID order, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut WorkerEntry> {
        self.version += 1;
        self.entries.values_mut()
    }

    /// Number of workers currently joined.
    pub fn joined(&self) -> u32 {
        self.entries.values().filter(|e| e.is_joined()).count() as u32
    }

    /// True when every ID in `0..n` is joined.
    pub fn all_joined(&self, n: u32) -> bool {
        if (self.entries.len() as u64) < n as u64 {
            return false;
        }
        let mut cache = self
            .all_joined_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((v, cached_n, answer)) = *cache {
            if v == self.version && cached_n == n {
                return answer;
            }
        }
        let answer = (0..n).all(|id| self.entries.get(&id).is_some_and(WorkerEntry::is_joined));
        *cache = Some((self.version, n, answer));
        answer
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
            self.push(id, conn, body);
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
                self.push(e.info.worker_id, conn, body.clone());
            }
        }
    }

    /// Queues `body` on `conn` without waiting; a full queue marks the worker as lagging.
    pub fn push(&self, id: u32, conn: &Connection, body: Body) {
        match conn
            .outbox
            .try_send(Ok(Box::new(MasterToWorker { body: Some(body) })))
        {
            // A closed outbox means the stream is going away; its disconnect event follows.
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(_)) => {
                if let Ok(mut l) = self.lagging.lock() {
                    l.push((id, conn.id));
                }
            }
        }
    }

    /// The streams that had a message refused since the last call.
    pub fn take_lagging(&self) -> Vec<(u32, u64)> {
        self.lagging
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::id_ranges;

    #[test]
    fn id_ranges_are_short_and_readable() {
        assert_eq!(id_ranges(&[]), "");
        assert_eq!(id_ranges(&[4]), "4");
        assert_eq!(id_ranges(&[3, 7, 8, 9, 12]), "3, 7-9, 12");
        let all: Vec<u32> = (0..3000).collect();
        assert_eq!(id_ranges(&all), "0-2999");
        let every_other: Vec<u32> = (0..100).step_by(2).collect();
        let shown = id_ranges(&every_other);
        assert!(shown.starts_with("0, 2, 4, "), "{shown}");
        assert!(shown.ends_with(", 38, ... (50 workers in all)"), "{shown}");
        assert_eq!(
            id_ranges(&[u32::MAX - 1, u32::MAX]),
            format!("{}-{}", u32::MAX - 1, u32::MAX)
        );
    }
}
