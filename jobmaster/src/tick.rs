//! The periodic tick: silent workers, expired barriers, missed join and rejoin deadlines.

use std::time::Instant;

use t2_proto::JobState;
use tonic::Status;

use crate::master::{is_final, Master};

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
        // Silent workers.
        let silent: Vec<u32> = self
            .registry
            .iter()
            .filter(|e| {
                // Silent when neither the master nor the stream's own task heard from it.
                e.conn.as_ref().is_some_and(|c| {
                    now.duration_since(e.last_seen).min(c.silent_for())
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
        for done in self.barriers.expire(self.cfg.num_workers, now) {
            self.complete_barrier(done);
        }
        // Join and rejoin deadlines.
        if !self.ever_all_joined && now.duration_since(self.started) > self.cfg.join_timeout {
            let missing = self.registry.missing(self.cfg.num_workers);
            let why = format!(
                "only {} of {} workers joined within {:?}; missing worker(s) {:?}",
                self.registry.joined(),
                self.cfg.num_workers,
                self.cfg.join_timeout,
                missing
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
                format!(
                    "worker {id} failed and did not rejoin within {:?}",
                    self.cfg.join_timeout
                )
            };
            self.end(JobState::JobFailed, why).await;
        }
    }
}
