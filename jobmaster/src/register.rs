//! Registration: new workers, restarted workers and reconnects, and what follows once all have joined.

use std::time::Instant;

use t2_proto::{
    master_to_worker::Body, AllJoined, JobState, ListWorkersResult, RegisterParams, RegisterResult,
    WorkerRestarted, WorkerState,
};
use tonic::Status;
use tracing::info;

use crate::master::{is_final, state_name, Master};
use crate::registry::{Connection, Outbox, WorkerEntry};

impl Master {
    pub(crate) async fn register(
        &mut self,
        params: RegisterParams,
        outbox: Outbox,
    ) -> Result<(u64, RegisterResult), Status> {
        let mut info = params.info.clone().unwrap_or_default();
        let id = info.worker_id;
        if params.job_id != self.cfg.job_id {
            return Err(Status::failed_precondition(format!(
                "worker {id} belongs to job '{}', this job master serves '{}'",
                params.job_id, self.cfg.job_id
            )));
        }
        let limit = self.id_limit();
        if id >= limit {
            return Err(Status::invalid_argument(format!(
                "worker ID {id} is out of range: the job has {limit} workers (0..{})",
                limit.saturating_sub(1)
            )));
        }
        if is_final(self.state) {
            return Err(Status::failed_precondition(format!(
                "job {} has already ended ({})",
                self.cfg.job_id,
                state_name(self.state)
            )));
        }
        // A reconnect with the same restart count is the same worker process on a new stream:
        // its old stream is dead from its side even when this job master has not noticed yet
        // (a network blip rather than a job master restart), so the new stream replaces it.
        let same_worker = |e: &WorkerEntry| {
            params.reconnect
                && e.info.restart_count == info.restart_count
                && matches!(e.state(), WorkerState::Started | WorkerState::Restarted)
        };
        if let Some(existing) = self.registry.get(id) {
            if existing.conn.is_some()
                && info.restart_count <= existing.info.restart_count
                && !same_worker(existing)
            {
                return Err(Status::already_exists(format!(
                    "worker {id} is already registered (restart count {}); a restarted worker must carry a higher restart count",
                    existing.info.restart_count
                )));
            }
        }
        let reconnected = self.registry.get(id).is_some_and(same_worker);
        let stale_stream = reconnected && self.registry.get(id).is_some_and(|e| e.conn.is_some());
        let restarted = !reconnected
            && (info.restart_count > 0
                || self
                    .registry
                    .get(id)
                    .is_some_and(|e| e.state() == WorkerState::Failed));
        let state = match self.registry.get(id) {
            Some(e) if reconnected => e.state(),
            _ if restarted => WorkerState::Restarted,
            _ => WorkerState::Started,
        };
        info.set_state(state);
        if let Err(refused) = self.place(&mut info) {
            // Strict lists: the job cannot run as configured.
            let reason = refused.message().to_string();
            self.end(JobState::JobFailed, reason).await;
            return Err(refused);
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        if let Err(e) = self.store.put_worker(&info).await {
            return Err(Status::unavailable(format!("job state store failed: {e}")));
        }
        let registered = RegisterResult {
            num_workers: self.cfg.num_workers,
            restart_count: info.restart_count,
            heartbeat_interval_ms: self.cfg.heartbeat_interval.as_millis() as u64,
            heartbeat_timeout_ms: self.cfg.heartbeat_timeout.as_millis() as u64,
        };
        // First on the stream, before any event this registration may trigger.
        let _ = outbox.send(Ok(t2_proto::MasterToWorker {
            body: Some(Body::Registered(registered)),
        }));
        self.registry.insert(WorkerEntry {
            info: info.clone(),
            conn: Some(Connection { id: conn, outbox }),
            last_seen: Instant::now(),
            exit_code: None,
        });
        self.rejoin_deadlines.remove(&id);
        self.awaiting_list.insert(id);
        self.retired.remove(&id);
        if self.scaled_in.remove(&id) {
            info!(job_id = %self.cfg.job_id, worker_id = id, host = %info.host, port = info.port, workers = self.cfg.num_workers, "worker added by scaling joined");
        } else if stale_stream {
            info!(job_id = %self.cfg.job_id, worker_id = id, "worker reconnected on a new stream; its old stream is dropped");
        } else if reconnected {
            info!(job_id = %self.cfg.job_id, worker_id = id, "worker reconnected to the restarted job master");
            self.reconnecting.remove(&id);
            if self.reconnecting.is_empty() {
                if let Some(at) = self.restored_at.take() {
                    info!(job_id = %self.cfg.job_id, elapsed_ms = at.elapsed().as_millis() as u64, "all workers reconnected after the job master restart");
                }
            }
        } else if restarted {
            info!(job_id = %self.cfg.job_id, worker_id = id, restart_count = info.restart_count, "worker rejoined after a restart");
            self.registry.broadcast(
                &Body::WorkerRestarted(WorkerRestarted {
                    info: Some(info.clone()),
                }),
                Some(id),
            );
        } else {
            info!(job_id = %self.cfg.job_id, worker_id = id, host = %info.host, port = info.port, "worker registered");
        }
        let (kind, what) = if reconnected {
            ("RECONNECTED", format!("worker {id} reconnected"))
        } else if restarted {
            (
                "RESTARTED",
                format!("worker {id} rejoined (restart {})", info.restart_count),
            )
        } else {
            (
                "JOINED",
                format!("worker {id} joined from {}:{}", info.host, info.port),
            )
        };
        self.report_event(kind, Some(id), what);
        self.report_worker(id);
        self.notify_watchers();
        Ok((conn, registered))
    }

    /// After any registration: answers waiting list requests and pushes AllJoined.
    pub(crate) async fn after_join(&mut self) {
        // A scale in progress changes what "all" means: wait for it.
        if self.scaling.is_some() || !self.registry.all_joined(self.cfg.num_workers) {
            return;
        }
        let list = self.worker_list();
        if !self.ever_all_joined {
            self.ever_all_joined = true;
            info!(job_id = %self.cfg.job_id, workers = self.cfg.num_workers, "all workers joined");
            self.report_event(
                "JOB",
                None,
                format!("all {} workers joined", self.cfg.num_workers),
            );
            self.set_state(JobState::Running, String::new()).await;
        }
        for id in std::mem::take(&mut self.awaiting_list) {
            self.registry.send(
                id,
                Body::AllJoined(AllJoined {
                    workers: list.clone(),
                }),
            );
        }
        for (id, requests) in std::mem::take(&mut self.pending_lists) {
            for request_id in requests {
                self.registry.send(
                    id,
                    Body::Workers(ListWorkersResult {
                        request_id,
                        workers: list.clone(),
                    }),
                );
            }
        }
    }
}
