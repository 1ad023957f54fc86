//! Registration: new workers, restarted workers and reconnects, and what follows once all have joined.
//!
//! Registrations that arrive together are admitted as a batch: each is checked, then all are
//! written to the state store at once (one round of writes, not one per worker inside the
//! event loop), then each is confirmed — a worker hears `Registered` only once its record is
//! stored.

use std::collections::BTreeSet;
use std::time::Instant;

use t2_proto::limits::MAX_NAME_BYTES;
use t2_proto::{
    master_to_worker::Body, AllJoined, JobState, ListWorkersResult, RegisterResult, WorkerInfo,
    WorkerRestarted, WorkerState,
};
use tonic::Status;
use tracing::info;

use crate::master::{is_final, state_name, Event, Master};
use crate::registry::{Connection, WorkerEntry};

/// A registration that passed its checks, waiting for its record to be stored.
pub(crate) struct Admission {
    info: WorkerInfo,
    reconnected: bool,
    stale_stream: bool,
    restarted: bool,
}

impl Master {
    /// Checks a registration against the job and the registry; says how to admit it.
    fn check(&self, params: &t2_proto::RegisterParams) -> Result<Admission, Status> {
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
        let node = info.node.clone().unwrap_or_default();
        for (what, value) in [
            ("host", &info.host),
            ("node IP", &node.node_ip),
            ("rack", &node.rack),
            ("datacenter", &node.datacenter),
        ] {
            if value.len() > MAX_NAME_BYTES {
                return Err(Status::invalid_argument(format!(
                    "worker {id}'s {what} is {} bytes long; at most {MAX_NAME_BYTES} are allowed",
                    value.len()
                )));
            }
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
        Ok(Admission {
            info,
            reconnected,
            stale_stream,
            restarted,
        })
    }

    /// Handles a batch of `Event::Register`s (see the module doc).
    pub(crate) async fn register_batch(&mut self, batch: Vec<Event>) {
        let mut admitted = Vec::new();
        let mut ids = BTreeSet::new();
        let mut rest = Vec::new();
        for ev in batch {
            let Event::Register {
                params,
                outbox,
                beat,
                reply,
            } = ev
            else {
                continue;
            };
            let id = params.info.as_ref().map_or(0, |i| i.worker_id);
            // The same worker twice in one batch: the second waits for the first's effect.
            if !ids.insert(id) {
                rest.push(Event::Register {
                    params,
                    outbox,
                    beat,
                    reply,
                });
                continue;
            }
            match self.check(&params) {
                Ok(mut a) => {
                    if let Err(refused) = self.place(&mut a.info) {
                        // Strict lists: the job cannot run as configured.
                        let reason = refused.message().to_string();
                        self.end(JobState::JobFailed, reason).await;
                        let _ = reply.send(Err(refused));
                        continue;
                    }
                    admitted.push((a, outbox, beat, reply))
                }
                Err(status) => {
                    let _ = reply.send(Err(status));
                }
            }
        }
        if !admitted.is_empty() {
            let infos: Vec<WorkerInfo> = admitted.iter().map(|(a, ..)| a.info.clone()).collect();
            match self.store.put_workers(&infos).await {
                Err(e) => {
                    for (_, _, _, reply) in admitted {
                        let _ = reply.send(Err(Status::unavailable(format!(
                            "job state store failed: {e}"
                        ))));
                    }
                }
                Ok(()) => {
                    self.last_registration = Some(Instant::now());
                    for (a, outbox, beat, reply) in admitted {
                        let conn = self.admit(
                            a,
                            Connection {
                                id: 0,
                                outbox,
                                beat,
                            },
                        );
                        let _ = reply.send(Ok(conn));
                    }
                    self.notify_watchers();
                    self.after_join().await;
                }
            }
        }
        if !rest.is_empty() {
            Box::pin(self.register_batch(rest)).await;
        }
    }

    /// Admits a checked registration whose record is stored: confirms it on its stream and
    /// records the connection. Returns the connection ID and the registration result.
    fn admit(&mut self, a: Admission, mut conn: Connection) -> (u64, RegisterResult) {
        let Admission {
            info,
            reconnected,
            stale_stream,
            restarted,
        } = a;
        let id = info.worker_id;
        conn.id = self.next_conn;
        self.next_conn += 1;
        let registered = RegisterResult {
            num_workers: self.cfg.num_workers,
            restart_count: info.restart_count,
            heartbeat_interval_ms: self.cfg.heartbeat_interval.as_millis() as u64,
            heartbeat_timeout_ms: self.cfg.heartbeat_timeout.as_millis() as u64,
        };
        // First on the stream, before any event this registration may trigger (the queue is
        // new, so it has room).
        let _ = conn.outbox.try_send(Ok(Box::new(t2_proto::MasterToWorker {
            body: Some(Body::Registered(registered)),
        })));
        conn.beat.store(
            crate::registry::now_ms(),
            std::sync::atomic::Ordering::Relaxed,
        );
        let conn_id = conn.id;
        self.registry.insert(WorkerEntry {
            info: info.clone(),
            conn: Some(conn),
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
        (conn_id, registered)
    }

    /// The worker list (in topology order), encoded once and shared until the registry changes.
    pub(crate) fn shared_list(&mut self) -> bytes::Bytes {
        let version = self.registry.version();
        if let Some((v, table)) = &self.list_cache {
            if *v == version {
                return table.clone();
            }
        }
        let table = t2_proto::table::encode(&self.worker_list());
        self.list_cache = Some((version, table.clone()));
        table
    }

    /// Sends the worker list to worker `id`: as `AllJoined`, or as the answer to `request`.
    pub(crate) fn send_list(&mut self, id: u32, request: Option<u64>) {
        let table = self.shared_list();
        let pieces = t2_proto::table::pieces(&table);
        let count = pieces.len() as u32;
        for (i, piece) in pieces.into_iter().enumerate() {
            let body = match request {
                None => Body::AllJoined(AllJoined {
                    table: piece,
                    piece: i as u32,
                    pieces: count,
                }),
                Some(request_id) => Body::Workers(ListWorkersResult {
                    request_id,
                    table: piece,
                    piece: i as u32,
                    pieces: count,
                }),
            };
            self.registry.send(id, body);
        }
    }

    /// After any registration: answers waiting list requests and pushes AllJoined.
    pub(crate) async fn after_join(&mut self) {
        // A scale in progress changes what "all" means: wait for it.
        if self.scaling.is_some() || !self.registry.all_joined(self.cfg.num_workers) {
            return;
        }
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
            self.send_list(id, None);
        }
        for (id, requests) in std::mem::take(&mut self.pending_lists) {
            for request_id in requests {
                self.send_list(id, Some(request_id));
            }
        }
    }
}
