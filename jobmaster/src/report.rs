//! What the master tells its reporter (the dashboard's): the job's state, each worker that
//! changed, events, and a periodic snapshot of every worker (heartbeats, and after the
//! reporter's queue overflowed). Nothing here waits: see [`crate::reporters`].

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use t2_proto::WorkerState;

use crate::master::{state_name, Master};
use crate::registry::WorkerEntry;
use crate::reporters::wire::WorkerReport;
use crate::reporters::Update;

/// How often every worker is sent to the reporter (it forwards only what changed).
const SNAPSHOT_EVERY: Duration = Duration::from_secs(2);

/// The dashboard's name of a worker state.
pub fn worker_state_name(s: WorkerState) -> &'static str {
    match s {
        WorkerState::Unspecified => "STARTING",
        WorkerState::Started => "STARTED",
        WorkerState::Restarted => "RESTARTED",
        WorkerState::Completed => "COMPLETED",
        WorkerState::Failed => "FAILED",
        WorkerState::FullyFailed => "FULLY_FAILED",
        WorkerState::Killed => "KILLED",
    }
}

fn unix_ms(at: Instant) -> i64 {
    let ago = at.elapsed();
    SystemTime::now()
        .checked_sub(ago)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A worker as reported.
pub(crate) fn worker_report(e: &WorkerEntry) -> WorkerReport {
    let node = e.info.node.clone().unwrap_or_default();
    WorkerReport {
        worker_id: e.info.worker_id,
        host: e.info.host.clone(),
        port: e.info.port,
        node: node.node_ip,
        rack: node.rack,
        datacenter: node.datacenter,
        state: worker_state_name(e.state()).to_string(),
        restart_count: e.info.restart_count,
        heartbeat_ms: unix_ms(e.last_seen),
        exit_code: e.exit_code,
    }
}

impl Master {
    /// Reports worker `id` as it is now.
    pub(crate) fn report_worker(&self, id: u32) {
        if let (Some(r), Some(e)) = (&self.reporter, self.registry.get(id)) {
            r.send(Update::Worker(worker_report(e)));
        }
    }

    /// Reports a worker removed by a scale-down.
    pub(crate) fn report_removed(&self, e: &WorkerEntry) {
        if let Some(r) = &self.reporter {
            let mut w = worker_report(e);
            w.state = "KILLED_BY_SCALE_DOWN".into();
            r.send(Update::Worker(w));
        }
    }

    /// Reports the job's state.
    pub(crate) fn report_job(&self) {
        if let Some(r) = &self.reporter {
            r.send(Update::Job {
                state: state_name(self.state),
                reason: self.reason.clone(),
                num_workers: self.cfg.num_workers,
            });
        }
    }

    /// Reports an event.
    pub(crate) fn report_event(&self, kind: &'static str, worker_id: Option<u32>, message: String) {
        if let Some(r) = &self.reporter {
            r.send(Update::Event {
                kind,
                worker_id,
                message,
            });
        }
    }

    /// At each tick: every [`SNAPSHOT_EVERY`], or at once after dropped updates, every worker.
    pub(crate) fn report_tick(&mut self) {
        let Some(r) = &self.reporter else {
            return;
        };
        let overflowed = r.take_overflow();
        if !overflowed && self.last_snapshot.elapsed() < SNAPSHOT_EVERY {
            return;
        }
        self.last_snapshot = Instant::now();
        r.send(Update::Snapshot {
            state: state_name(self.state),
            reason: self.reason.clone(),
            num_workers: self.cfg.num_workers,
            workers: self.registry.iter().map(worker_report).collect(),
        });
    }
}
