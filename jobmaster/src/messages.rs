//! What registered workers ask for: worker lists, barriers and relayed user messages.
//!
//! User messages are limited: at most [`MAX_USER_MESSAGE_BYTES`] each and
//! [`MESSAGES_PER_SECOND`] per worker (both checked by the worker's stream, see the service),
//! and the job as a whole fans out at most [`FAN_OUT_BYTES_PER_SECOND`] (a message's size times
//! the workers it goes to), so one worker cannot make the job master copy gigabytes. A message
//! over a limit is dropped, and the job master's log says whose and why.

use std::time::Instant;

pub use t2_proto::limits::MAX_USER_MESSAGE_BYTES;
use t2_proto::{master_to_worker::Body, worker_to_master, BarrierOutcome, BarrierType};
use tracing::{info, warn};

use crate::barrier::{type_name, Completion};
use crate::master::Master;

/// User messages one worker may send per second (and in a burst).
pub const MESSAGES_PER_SECOND: f64 = 100.0;

/// User-message bytes the job master fans out per second, all workers together (and in a burst).
pub const FAN_OUT_BYTES_PER_SECOND: f64 = 256.0 * 1024.0 * 1024.0;

/// A token bucket: `rate` a second, holding at most `rate`.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    /// Takes `cost` tokens if there are enough.
    pub fn take(&mut self, cost: f64, now: Instant) -> bool {
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        if cost <= self.tokens {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }
}

/// The job's fan-out budget.
#[derive(Debug)]
pub struct FanOut(Bucket);

impl FanOut {
    /// A full budget.
    pub fn new(now: Instant) -> Self {
        Self(Bucket::new(FAN_OUT_BYTES_PER_SECOND, now))
    }
}

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
                    self.send_list(id, Some(req.request_id));
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
                // Messages from user code are relayed to every other worker (one shared copy
                // of the payload), within the job's fan-out budget.
                let cost = msg.payload.len().max(1) as f64
                    * self.cfg.num_workers.saturating_sub(1).max(1) as f64;
                if !self.fan_out.0.take(cost, Instant::now()) {
                    warn!(job_id = %self.cfg.job_id, worker_id = id, bytes = msg.payload.len(), workers = self.cfg.num_workers, "user message dropped: the job fans out at most {} MiB of messages a second", FAN_OUT_BYTES_PER_SECOND as u64 >> 20);
                    return;
                }
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
                Some(c) => self.registry.push(*worker, c, body),
                None => self.registry.send(*worker, body),
            }
        }
    }
}
