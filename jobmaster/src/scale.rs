//! Scaling a running job: the cluster is asked for the new number of workers off the master's
//! task (bounded by `scale_timeout`), then the count changes, every worker hears `JobScaled`,
//! removed workers leave the registry and waiting barriers and lists are settled again.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use t2_proto::{master_to_worker::Body, JobScaled, ScaleResult};
use tokio::sync::oneshot;
use tonic::Status;
use tracing::{info, warn};

use crate::cluster::JobCluster;
use crate::master::{is_final, state_name, Master};

/// The longest a cluster gets to go back to the old number of workers after a missed deadline.
const SET_BACK_DEADLINE: Duration = Duration::from_secs(10);

/// Where the answer to a scale request goes.
pub type ScaleReply = oneshot::Sender<Result<ScaleResult, Status>>;

/// A scale the cluster is working on.
#[derive(Debug)]
pub struct InProgress {
    /// The number of workers asked for.
    pub target: u32,
    /// The number of workers before.
    pub previous: u32,
    reply: ScaleReply,
    /// Workers being removed whose streams ended while the cluster worked.
    departed: BTreeSet<u32>,
}

/// The cluster's answer to a scale.
#[derive(Debug)]
pub struct Done {
    /// What the cluster was asked for.
    pub target: u32,
    /// Its refusal, or a missed deadline.
    pub result: Result<(), String>,
}

impl Master {
    /// A client asks for `workers` workers.
    pub(crate) async fn on_scale(&mut self, workers: u32, reply: ScaleReply) {
        let job = self.cfg.job_id.clone();
        let previous = self.cfg.num_workers;
        let refusal = if workers == 0 {
            Some(Status::invalid_argument(format!(
                "cannot scale job {job} to 0 workers; to stop it, kill it ('t2 kill {job}')"
            )))
        } else if is_final(self.state) {
            Some(Status::failed_precondition(format!(
                "job {job} has ended ({}); only a running job can be scaled",
                state_name(self.state)
            )))
        } else {
            self.scaling.as_ref().map(|p| {
                Status::failed_precondition(format!(
                    "job {job} is already being scaled from {} to {} workers; try again once that is done",
                    p.previous, p.target
                ))
            })
        };
        if let Some(status) = refusal {
            warn!(job_id = %job, workers, reason = status.message(), "scale refused");
            let _ = reply.send(Err(status));
            return;
        }
        if workers == previous {
            info!(job_id = %job, workers, "scale to the current number of workers: nothing to do");
            let _ = reply.send(Ok(ScaleResult {
                previous,
                num_workers: workers,
            }));
            return;
        }
        info!(job_id = %job, previous, workers, "scaling the job");
        self.scaling = Some(InProgress {
            target: workers,
            previous,
            reply,
            departed: BTreeSet::new(),
        });
        match self.cluster.clone() {
            Some(cluster) => {
                let done = self.scale_done_tx.clone();
                let deadline = self.cfg.scale_timeout;
                tokio::spawn(async move {
                    let result = match tokio::time::timeout(
                        deadline,
                        cluster.scale_workers(workers),
                    )
                    .await
                    {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!(
                            "the cluster did not scale the workers within {deadline:?}; {}",
                            set_back(cluster.as_ref(), previous, deadline).await
                        )),
                    };
                    let _ = done.send(Done {
                        target: workers,
                        result,
                    });
                });
            }
            None => {
                self.on_scale_done(Done {
                    target: workers,
                    result: Ok(()),
                })
                .await
            }
        }
    }

    /// The cluster answered the scale in progress.
    pub(crate) async fn on_scale_done(&mut self, done: Done) {
        let Some(p) = self.scaling.take_if(|p| p.target == done.target) else {
            return;
        };
        let job = self.cfg.job_id.clone();
        if let Err(why) = done.result {
            warn!(job_id = %job, workers = p.target, reason = %why, "the cluster refused to scale the job");
            let _ = p.reply.send(Err(Status::failed_precondition(format!(
                "cannot scale job {job} to {} workers: {why}",
                p.target
            ))));
            // The workers that were to be removed stay; one whose stream ended meanwhile failed.
            for id in p.departed {
                self.worker_failed(
                    id,
                    format!("worker {id} lost while the job was being scaled"),
                )
                .await;
            }
            self.after_join().await;
            return;
        }
        if is_final(self.state) {
            let _ = p.reply.send(Err(Status::failed_precondition(format!(
                "job {job} ended ({}) while it was being scaled",
                state_name(self.state)
            ))));
            return;
        }
        self.apply_scale(p).await;
    }

    /// The cluster runs `p.target` workers now: the job master follows.
    async fn apply_scale(&mut self, p: InProgress) {
        let (n, previous) = (p.target, p.previous);
        if let Err(e) = self.store.put_num_workers(n).await {
            warn!(job_id = %self.cfg.job_id, error = %e, "could not record the new number of workers");
        }
        self.cfg.num_workers = n;
        // Everyone hears it, the workers about to be removed included.
        self.registry.broadcast(
            &Body::JobScaled(JobScaled {
                num_workers: n,
                previous,
            }),
            None,
        );
        if n < previous {
            for id in n..previous {
                let removed = self.registry.remove(id);
                if let Some(e) = &removed {
                    self.report_removed(e);
                }
                if let Some(conn) = removed.and_then(|e| e.conn) {
                    // Kept open until the cluster stops the worker; never a failure.
                    self.retired.insert(id, conn);
                }
            }
            self.rejoin_deadlines.retain(|id, _| *id < n);
            self.reconnecting.retain(|id| *id < n);
            self.awaiting_list.retain(|id| *id < n);
            self.scaled_in.retain(|id| *id < n);
            self.pending_lists.retain(|id, _| *id < n);
            let reason = format!("worker removed: the job was scaled to {n} workers");
            for done in self.barriers.shrink(n, &reason) {
                self.complete_barrier(done);
            }
        } else {
            let deadline = Instant::now() + self.cfg.join_timeout;
            for id in previous..n {
                self.retired.remove(&id);
                self.scaled_in.insert(id);
                self.rejoin_deadlines.insert(id, deadline);
            }
        }
        // Everyone connected gets the new full list once all `n` have joined.
        self.awaiting_list.extend(
            self.registry
                .iter()
                .filter(|e| e.conn.is_some())
                .map(|e| e.info.worker_id),
        );
        info!(job_id = %self.cfg.job_id, previous, workers = n, "job scaled");
        self.report_event(
            "SCALED",
            None,
            format!("scaled from {previous} to {n} workers"),
        );
        self.report_job();
        let _ = p.reply.send(Ok(ScaleResult {
            previous,
            num_workers: n,
        }));
        self.notify_watchers();
        self.after_join().await;
        self.end_if_all_completed().await;
    }

    /// True while worker `id` is being removed by a scale-down: its stream ending or its
    /// program stopping is expected, not a failure.
    pub(crate) fn being_removed(&mut self, id: u32) -> bool {
        match &mut self.scaling {
            Some(p) if id >= p.target && id < p.previous => {
                p.departed.insert(id);
                true
            }
            _ => false,
        }
    }

    /// The highest worker ID + 1 that may register now (a scale-up in progress counts).
    pub(crate) fn id_limit(&self) -> u32 {
        let target = self.scaling.as_ref().map(|p| p.target).unwrap_or(0);
        self.cfg.num_workers.max(target)
    }
}

/// After a scale missed its deadline the cluster may still carry it out; asking it for the
/// previous number again keeps the cluster and the job master agreeing on the count (a
/// StatefulSet scale is a "set", so the later request wins). Returns what happened, for the
/// refusal's reason.
async fn set_back(cluster: &dyn JobCluster, previous: u32, deadline: Duration) -> String {
    let deadline = deadline.min(SET_BACK_DEADLINE);
    match tokio::time::timeout(deadline, cluster.scale_workers(previous)).await {
        Ok(Ok(())) => format!("the cluster was set back to {previous} workers"),
        Ok(Err(e)) => format!("setting it back to {previous} workers failed too: {e}"),
        Err(_) => format!(
            "setting it back to {previous} workers did not finish within {deadline:?} either"
        ),
    }
}
