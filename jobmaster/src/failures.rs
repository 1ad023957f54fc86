//! Workers completing, failing, being killed or lost: restart them or end the job.

use std::time::Instant;

use t2_proto::{master_to_worker::Body, JobState, StateChangeAck, WorkerFailed, WorkerState};
use tracing::{info, warn};

use crate::master::Master;

impl Master {
    pub(crate) async fn on_state_change(&mut self, id: u32, change: t2_proto::StateChangeParams) {
        let state = change.state();
        let ack = Body::StateAck(StateChangeAck {
            state: state as i32,
        });
        // A COMPLETED is acknowledged only once it is stored: an agent whose COMPLETED was
        // acknowledged exits, so a successor job master (restored from the store) that did not
        // see it would wait for that worker forever. Unacknowledged, the agent reports it again
        // to the successor.
        if state != WorkerState::Completed {
            self.registry.send(id, ack.clone());
        }
        match state {
            WorkerState::Completed => {
                let Some(e) = self.registry.get_mut(id) else {
                    return;
                };
                e.info.set_state(WorkerState::Completed);
                e.exit_code = Some(0);
                let info = e.info.clone();
                info!(job_id = %self.cfg.job_id, worker_id = id, "worker completed");
                self.report_worker(id);
                self.report_event("COMPLETED", Some(id), format!("worker {id} completed"));
                self.persist_worker(&info).await;
                self.registry.send(id, ack);
                if self.cfg.ends_with_worker_zero && id == 0 {
                    self.complete_with_worker_zero().await;
                    return;
                }
                self.notify_watchers();
                self.end_if_all_completed().await;
            }
            WorkerState::Failed | WorkerState::FullyFailed | WorkerState::Killed
                if self.being_removed(id) =>
            {
                info!(job_id = %self.cfg.job_id, worker_id = id, "worker removed by scaling stopped");
                if let Some(e) = self.registry.get_mut(id) {
                    e.conn = None;
                }
            }
            WorkerState::Failed | WorkerState::FullyFailed => {
                let reason = if change.reason.is_empty() {
                    format!("worker {id} exited with code {}", change.exit_code)
                } else {
                    change.reason.clone()
                };
                if let Some(e) = self.registry.get_mut(id) {
                    e.exit_code = Some(change.exit_code);
                    // The stream that follows closes normally; it is not a second failure.
                    e.conn = None;
                }
                self.worker_failed(id, reason).await;
            }
            WorkerState::Killed => {
                if let Some(e) = self.registry.get_mut(id) {
                    e.info.set_state(WorkerState::Killed);
                    e.conn = None;
                }
                self.worker_failed(id, format!("worker {id} was killed"))
                    .await;
            }
            _ => {}
        }
    }

    /// An MPI job: worker 0's `mpirun` succeeded, so every worker's part is done (their
    /// daemons ended with it); they are recorded COMPLETED and the job ends.
    async fn complete_with_worker_zero(&mut self) {
        info!(job_id = %self.cfg.job_id, "worker 0 (mpirun) completed; the MPI job is done");
        for i in 1..self.cfg.num_workers {
            let Some(e) = self.registry.get_mut(i) else {
                continue;
            };
            if e.state() == WorkerState::Completed {
                continue;
            }
            e.info.set_state(WorkerState::Completed);
            e.exit_code = Some(0);
            let info = e.info.clone();
            self.persist_worker(&info).await;
        }
        self.notify_watchers();
        self.end(JobState::JobCompleted, String::new()).await;
    }

    /// Ends the job as COMPLETED once every worker has completed.
    pub(crate) async fn end_if_all_completed(&mut self) {
        let n = self.cfg.num_workers;
        let all_done = self.scaling.is_none()
            && (0..n).all(|i| {
                self.registry
                    .get(i)
                    .is_some_and(|e| e.state() == WorkerState::Completed)
            });
        if all_done {
            self.end(JobState::JobCompleted, String::new()).await;
        }
    }

    pub(crate) async fn on_disconnect(&mut self, id: u32, cause: String) {
        let removed = self.being_removed(id);
        let Some(e) = self.registry.get_mut(id) else {
            return;
        };
        e.conn = None;
        if e.state() == WorkerState::Completed {
            return;
        }
        if removed {
            info!(job_id = %self.cfg.job_id, worker_id = id, %cause, "worker removed by scaling disconnected");
            return;
        }
        warn!(job_id = %self.cfg.job_id, worker_id = id, %cause, "worker lost");
        self.worker_failed(id, format!("worker {id} lost: {cause}"))
            .await;
    }

    /// A worker failed: restart it (by waiting for its supervisor) or fail the job. A worker
    /// the cluster disrupted ([`JobCluster::disruption`](crate::cluster::JobCluster::disruption))
    /// is waited for without counting against `max_restarts`.
    pub(crate) async fn worker_failed(&mut self, id: u32, reason: String) {
        if self.registry.get(id).is_none() {
            return;
        }
        let disruption = match &self.cluster {
            Some(c) => c.disruption(id).await,
            None => None,
        };
        let reason = match &disruption {
            Some(why) => format!(
                "{reason} (disrupted by the cluster: {why}; not counted against max_restarts)"
            ),
            None => reason,
        };
        let Some(e) = self.registry.get_mut(id) else {
            return;
        };
        let restarts = e.info.restart_count;
        let out_of_restarts = disruption.is_none() && restarts >= self.cfg.max_restarts;
        e.info.set_state(if out_of_restarts {
            WorkerState::FullyFailed
        } else {
            WorkerState::Failed
        });
        e.conn = None;
        let info = e.info.clone();
        self.persist_worker(&info).await;
        let kind = if disruption.is_some() {
            "DISRUPTED"
        } else if reason.starts_with(&format!("worker {id} lost")) {
            "LOST"
        } else {
            "FAILED"
        };
        self.report_event(kind, Some(id), reason.clone());
        self.report_worker(id);
        if let Some(done) = self.barriers.worker_failed(id, &reason) {
            self.complete_barrier(done);
        }
        if out_of_restarts {
            let times = match restarts {
                1 => "once".to_string(),
                n => format!("{n} times"),
            };
            let why = format!(
                "{reason}; restarted {times}, max_restarts = {}",
                self.cfg.max_restarts
            );
            warn!(job_id = %self.cfg.job_id, worker_id = id, reason = %why, "worker fully failed");
            self.end(JobState::JobFailed, why).await;
            return;
        }
        // The cluster may wait before it restarts the worker (the kubelet's crash-loop
        // back-off): that wait is not the worker's to make up within join_timeout.
        let backoff = self.cfg.restart_backoff.after(restarts);
        warn!(job_id = %self.cfg.job_id, worker_id = id, %reason, restart_count = restarts, ?backoff, "worker failed; waiting for its restart");
        self.rejoin_deadlines
            .insert(id, Instant::now() + self.cfg.join_timeout + backoff);
        self.registry.broadcast(
            &Body::WorkerFailed(WorkerFailed {
                worker_id: id,
                reason,
            }),
            Some(id),
        );
        self.notify_watchers();
    }
}
