//! What registered workers ask for: worker lists, barriers and relayed user messages.

use std::time::Instant;

use t2_proto::{
    master_to_worker::Body, worker_to_master, BarrierOutcome, BarrierType, ListWorkersResult,
};
use tracing::{info, warn};

use crate::barrier::{type_name, Completion};
use crate::master::Master;

impl Master {
    pub(crate) async fn on_message(&mut self, id: u32, body: worker_to_master::Body) {
        use worker_to_master::Body as W;
        match body {
            W::Register(_) => {
                warn!(job_id = %self.cfg.job_id, worker_id = id, "duplicate registration on an open stream ignored");
            }
            W::Heartbeat(_) => {}
            W::StateChange(change) => self.on_state_change(id, change).await,
            W::ListWorkers(req) => {
                if req.wait_for_all && !self.registry.all_joined(self.cfg.num_workers) {
                    self.pending_lists
                        .entry(id)
                        .or_default()
                        .push(req.request_id);
                } else {
                    let workers = self.worker_list();
                    self.registry.send(
                        id,
                        Body::Workers(ListWorkersResult {
                            request_id: req.request_id,
                            workers,
                        }),
                    );
                }
            }
            W::Barrier(req) => {
                let t = req.barrier_type();
                let timeout = if req.timeout_ms > 0 {
                    std::time::Duration::from_millis(req.timeout_ms)
                } else if t == BarrierType::Init {
                    self.cfg.init_barrier_timeout
                } else {
                    self.cfg.barrier_timeout
                };
                let n = self.cfg.num_workers;
                if let Some(done) =
                    self.barriers
                        .arrive(t, id, req.request_id, timeout, n, Instant::now())
                {
                    self.complete_barrier(done);
                }
            }
            W::Message(msg) => {
                // Messages from user code are relayed to every other worker and to watchers' logs.
                info!(job_id = %self.cfg.job_id, worker_id = id, bytes = msg.payload.len(), "user message relayed");
                self.registry.broadcast(&Body::Message(msg), Some(id));
            }
        }
    }

    pub(crate) fn complete_barrier(&self, done: Completion) {
        if done.result != t2_proto::BarrierResult::Success {
            warn!(job_id = %self.cfg.job_id, barrier = type_name(done.barrier_type), reason = %done.reason, "barrier did not succeed");
            self.report_event(
                "BARRIER",
                None,
                format!(
                    "{} barrier did not pass: {}",
                    type_name(done.barrier_type),
                    done.reason
                ),
            );
        } else {
            self.report_event(
                "BARRIER",
                None,
                format!(
                    "{} barrier passed by {} workers",
                    type_name(done.barrier_type),
                    done.waiters.len()
                ),
            );
        }
        for (worker, request_id) in &done.waiters {
            let body = Body::Barrier(BarrierOutcome {
                request_id: *request_id,
                barrier_type: done.barrier_type as i32,
                result: done.result as i32,
                reason: done.reason.clone(),
            });
            match self.retired.get(worker) {
                // A worker removed by a scale-down still hears how its barrier ended.
                Some(c) => {
                    let _ = c
                        .outbox
                        .send(Ok(t2_proto::MasterToWorker { body: Some(body) }));
                }
                None => self.registry.send(*worker, body),
            }
        }
    }
}
