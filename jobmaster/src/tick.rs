//! The periodic tick: silent workers, expired barriers, missed join and rejoin deadlines.

use std::time::Instant;

use t2_proto::JobState;
use tonic::Status;

use tracing::warn;

use crate::master::{is_final, Master};
use crate::registry::now_ms;

/// How many heartbeat timeouts silence verdicts may wait while the job master is behind.
pub const BEHIND_WAIT: u32 = 10;

impl Master {
    pub(crate) async fn on_tick(&mut self) {
        let now = Instant::now();
        // Heartbeats go out from each stream's own task (see the service), so a slow store
        // write here does not silence the job master. If this task itself was stalled, the
        // workers' heartbeats are still queued: give everyone a fresh start rather than
        // declaring them lost.
        let stalled = now.duration_since(self.last_tick) > self.cfg.heartbeat_timeout / 2;
        self.last_tick = now;
        if stalled {
            for e in self.registry.iter_mut() {
                e.last_seen = now;
            }
            return;
        }
        // Silent workers. When many look silent at once, the job master itself has most
        // likely fallen behind reading its streams (starved of CPU: 10 000 workers send 40 000
        // heartbeats a second): it waits, up to BEHIND_WAIT heartbeat timeouts, before a verdict.
        if self.behind_on_heartbeats(now) {
            self.expire_and_check_deadlines(now).await;
            return;
        }
        let clock = now_ms();
        let silent: Vec<u32> = self
            .registry
            .iter()
            .filter(|e| {
                // Silent when neither the master nor the stream's own task heard from it.
                e.conn.as_ref().is_some_and(|c| {
                    now.duration_since(e.last_seen).min(c.silent_at(clock))
                        > self.cfg.heartbeat_timeout
                })
            })
            .map(|e| e.info.worker_id)
            .collect();
        for id in silent {
            let cause = format!("no heartbeat for {:?}", self.cfg.heartbeat_timeout);
            if let Some(e) = self.registry.get(id) {
                if let Some(c) = &e.conn {
                    let _ = c
                        .outbox
                        .try_send(Err(Status::deadline_exceeded(cause.clone())));
                }
            }
            self.on_disconnect(id, cause).await;
            if is_final(self.state) {
                return;
            }
        }
        self.expire_and_check_deadlines(now).await;
    }

    /// True while fewer than 90 % of 20 or more connected workers were heard from within four
    /// heartbeat intervals: while workers are still registering, and then for at most
    /// [`BEHIND_WAIT`] heartbeat timeouts in a row.
    fn behind_on_heartbeats(&mut self, now: Instant) -> bool {
        let recent = (self.cfg.heartbeat_interval * 4).min(self.cfg.heartbeat_timeout);
        let (mut connected, mut fresh) = (0usize, 0usize);
        let clock = now_ms();
        for e in self.registry.iter() {
            if let Some(c) = &e.conn {
                connected += 1;
                if now.duration_since(e.last_seen).min(c.silent_at(clock)) <= recent {
                    fresh += 1;
                }
            }
        }
        if connected < 20 || fresh * 10 >= connected * 9 {
            // Caught up: the streams read last still get one heartbeat timeout.
            if self.behind_since.take().is_some() {
                self.caught_up_at = Some(now);
            }
            return self
                .caught_up_at
                .is_some_and(|at| now.duration_since(at) < self.cfg.heartbeat_timeout);
        }
        let since = *self.behind_since.get_or_insert_with(|| {
            warn!(job_id = %self.cfg.job_id, fresh, connected, "the job master is behind on heartbeats (only {fresh} of {connected} workers heard from lately); silence verdicts wait");
            now
        });
        // While workers are still registering (thousands of connections being set up) the
        // wait lasts; afterwards, one heartbeat timeout.
        let registering = self
            .last_registration
            .is_some_and(|at| now.duration_since(at) < self.cfg.heartbeat_timeout);
        registering || now.duration_since(since) < self.cfg.heartbeat_timeout * BEHIND_WAIT
    }

    async fn expire_and_check_deadlines(&mut self, now: Instant) {
        for done in self.barriers.expire(self.cfg.num_workers, now) {
            self.complete_barrier(done);
        }
        // Join and rejoin deadlines.
        if !self.ever_all_joined && now.duration_since(self.started) > self.cfg.join_timeout {
            let missing = self.registry.missing(self.cfg.num_workers);
            let why = format!(
                "only {} of {} workers joined within {:?}; missing worker(s) {}",
                self.registry.joined(),
                self.cfg.num_workers,
                self.cfg.join_timeout,
                crate::registry::id_ranges(&missing)
            );
            self.end(JobState::JobFailed, why).await;
            return;
        }
        let late: Option<u32> = self
            .rejoin_deadlines
            .iter()
            .find(|(_, d)| now > **d)
            .map(|(id, _)| *id);
        if let Some(id) = late {
            let why = if self.scaled_in.contains(&id) {
                format!(
                    "worker {id}, added by scaling the job to {} workers, did not join within {:?}",
                    self.cfg.num_workers, self.cfg.join_timeout
                )
            } else if self.reconnecting.contains(&id) {
                format!(
                    "worker {id} did not reconnect within {:?} after the job master restarted",
                    self.cfg.join_timeout
                )
            } else {
                let restarts = self.registry.get(id).map_or(0, |e| e.info.restart_count);
                let backoff = self.cfg.restart_backoff.after(restarts);
                if backoff.is_zero() {
                    format!(
                        "worker {id} failed and did not rejoin within {:?}",
                        self.cfg.join_timeout
                    )
                } else {
                    format!(
                        "worker {id} failed and did not rejoin within {:?} (join_timeout {:?} plus {:?} for the cluster's restart back-off after {restarts} restart(s))",
                        self.cfg.join_timeout + backoff,
                        self.cfg.join_timeout,
                        backoff
                    )
                }
            };
            self.end(JobState::JobFailed, why).await;
        }
    }
}
