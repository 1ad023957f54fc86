//! The job's status as clients see it, and the board watchers read it from. Changes are
//! published at most once a tick, and in large jobs at most every 50 µs a worker (half a
//! second at 10 000; changes of the job's state at once), so the cost of a status, which lists
//! every worker in order, does not grow with the number of registrations.

use std::time::Duration;

use t2_proto::JobStatus;

use crate::master::Master;

impl Master {
    pub(crate) fn status(&self) -> JobStatus {
        JobStatus {
            job_id: self.cfg.job_id.clone(),
            state: self.state as i32,
            reason: self.reason.clone(),
            num_workers: self.cfg.num_workers,
            joined: self.registry.joined(),
            workers: self.worker_list(),
        }
    }

    /// Something watchers should see changed; it is published at the next tick.
    pub(crate) fn notify_watchers(&mut self) {
        self.status_dirty = true;
    }

    /// Whether a change waits to be published and the last status is old enough.
    pub(crate) fn status_due(&self) -> bool {
        let every = (Duration::from_micros(50) * self.cfg.num_workers).min(Duration::from_secs(1));
        self.status_dirty && self.published_at.elapsed() >= every
    }

    /// Puts the current status on the board now.
    pub(crate) fn publish_status(&mut self) {
        self.status_dirty = false;
        self.published_at = std::time::Instant::now();
        self.board.send_replace(self.status());
    }
}
