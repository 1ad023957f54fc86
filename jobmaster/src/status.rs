//! The job's status as clients see it, and the board watchers read it from. Changes are
//! published at most once a tick (changes of the job's state at once), so the cost of a
//! status, which lists every worker, does not grow with the number of registrations.

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

    /// Puts the current status on the board now.
    pub(crate) fn publish_status(&mut self) {
        self.status_dirty = false;
        self.board.send_replace(self.status());
    }
}
