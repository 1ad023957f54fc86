//! Recovery after a job master restart: rebuilding the job's workers and state from the store.

use std::time::Instant;

use t2_proto::{JobState, WorkerState};
use tracing::{info, warn};

use crate::master::{is_final, state_name, JobOutcome, Master};
use crate::registry::WorkerEntry;

impl Master {
    /// Rebuilds the job from the store (a restarted job master) and announces this one.
    /// Returns an outcome when there is nothing to run.
    pub(crate) async fn recover(&mut self) -> Option<JobOutcome> {
        let fail = |reason: String| {
            Some(JobOutcome {
                state: JobState::JobFailed,
                reason,
            })
        };
        let recorded = match self.store.job_state().await {
            Ok(r) => r,
            Err(e) => return fail(format!("cannot read the job's state: {e}")),
        };
        match self.store.num_workers().await {
            Ok(Some(n)) if n > 0 => {
                if n != self.cfg.num_workers {
                    info!(job_id = %self.cfg.job_id, workers = n, configured = self.cfg.num_workers, "the job was scaled; using its recorded number of workers");
                }
                self.cfg.num_workers = n;
            }
            Ok(_) => {}
            Err(e) => return fail(format!("cannot read the job's number of workers: {e}")),
        }
        if let Some((state, reason)) = recorded {
            if is_final(state) {
                // The previous job master ended the job but died before cleaning up.
                if let Err(e) = self.store.remove_job().await {
                    warn!(job_id = %self.cfg.job_id, error = %e, "could not remove the job's stored state");
                }
                return Some(JobOutcome { state, reason });
            }
            let workers = match self.store.workers().await {
                Ok(w) => w,
                Err(e) => return fail(format!("cannot read the job's workers: {e}")),
            };
            let now = Instant::now();
            self.ever_all_joined = state == JobState::Running;
            self.state = if self.ever_all_joined {
                JobState::Running
            } else {
                JobState::Starting
            };
            self.restored_at = Some(now);
            // Workers removed by a scale-down may still be recorded.
            for info in workers
                .into_iter()
                .filter(|w| w.worker_id < self.cfg.num_workers)
            {
                let id = info.worker_id;
                if matches!(info.state(), WorkerState::Started | WorkerState::Restarted) {
                    self.reconnecting.insert(id);
                }
                if info.state() != WorkerState::Completed {
                    self.rejoin_deadlines
                        .insert(id, now + self.cfg.join_timeout);
                }
                self.registry.insert(WorkerEntry {
                    info,
                    conn: None,
                    last_seen: now,
                    exit_code: None,
                });
            }
            info!(job_id = %self.cfg.job_id, workers = self.registry.iter().count(), state = state_name(self.state), "job master restarted; state restored");
            self.report_event(
                "JOB_MASTER_RESTARTED",
                None,
                format!(
                    "job master restarted; {} workers restored",
                    self.registry.iter().count()
                ),
            );
        }
        self.persist_job().await;
        if let Err(e) = self.store.announce().await {
            return fail(format!("cannot announce the job master: {e}"));
        }
        None
    }
}
