//! The job's status as clients see it, and the watchers it is pushed to.

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

    pub(crate) fn notify_watchers(&mut self) {
        let status = self.status();
        self.watchers.retain(|w| w.send(Ok(status.clone())).is_ok());
    }
}
