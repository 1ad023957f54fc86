//! The master task: owns every piece of job state and handles events one at a time, so there
//! are no locks and no races between registrations, failures, barriers and timeouts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use t2_proto::{
    master_to_worker::Body, worker_to_master, AllJoined, BarrierOutcome, BarrierType, JobEnded,
    JobState, JobStatus, ListWorkersResult, RegisterParams, RegisterResult, StateChangeAck,
    WorkerFailed, WorkerInfo, WorkerRestarted, WorkerState,
};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;
use tracing::{info, warn};

use crate::barrier::{type_name, Barriers, Completion};
use crate::cluster::JobCluster;
use crate::registry::{Connection, Outbox, Registry, WorkerEntry};
use crate::scale::{self, ScaleReply};
use crate::store::JobStateStore;
use crate::JobMasterConfig;

/// Where job status snapshots go.
pub type WatchOutbox = mpsc::UnboundedSender<Result<JobStatus, Status>>;

/// Everything that can happen to a job master.
#[derive(Debug)]
pub enum Event {
    /// A worker's first message arrived on a new stream.
    Register {
        /// Its registration.
        params: RegisterParams,
        /// Where to send it messages.
        outbox: Outbox,
        /// The answer: its connection ID and registration result, or why it is refused.
        reply: oneshot::Sender<Result<(u64, RegisterResult), Status>>,
    },
    /// A later message from a registered worker.
    FromWorker {
        /// Who sent it.
        worker_id: u32,
        /// On which stream.
        conn: u64,
        /// What it said.
        body: worker_to_master::Body,
    },
    /// A worker's stream ended.
    Disconnected {
        /// Whose.
        worker_id: u32,
        /// Which stream.
        conn: u64,
        /// Why, when it broke rather than closed.
        cause: String,
    },
    /// A client wants status updates.
    Watch {
        /// Where they go.
        outbox: WatchOutbox,
    },
    /// A client kills the job.
    Kill {
        /// Why.
        reason: String,
    },
    /// A client changes the number of workers (see [`crate::scale`]).
    Scale {
        /// How many from now on.
        workers: u32,
        /// The answer.
        reply: ScaleReply,
    },
}

/// The final state of a job and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    /// COMPLETED, FAILED or KILLED.
    pub state: JobState,
    /// A readable reason (empty for COMPLETED).
    pub reason: String,
}

/// The job master's state.
pub struct Master {
    pub(crate) cfg: JobMasterConfig,
    pub(crate) store: Arc<dyn JobStateStore>,
    pub(crate) registry: Registry,
    pub(crate) barriers: Barriers,
    pub(crate) state: JobState,
    reason: String,
    ever_all_joined: bool,
    /// List requests waiting for all workers: worker ID → request IDs.
    pub(crate) pending_lists: BTreeMap<u32, Vec<u64>>,
    watchers: Vec<WatchOutbox>,
    started: Instant,
    /// Failed (or newly added) workers and when they must be back by.
    pub(crate) rejoin_deadlines: BTreeMap<u32, Instant>,
    last_tick: Instant,
    /// Workers a restarted job master waits for, and when it was restored.
    pub(crate) reconnecting: BTreeSet<u32>,
    restored_at: Option<Instant>,
    /// Workers that registered and have not been sent the full list since.
    pub(crate) awaiting_list: BTreeSet<u32>,
    next_conn: u64,
    /// The cluster, when the job master can scale its workers.
    pub(crate) cluster: Option<Arc<dyn JobCluster>>,
    /// The scale the cluster is working on.
    pub(crate) scaling: Option<scale::InProgress>,
    pub(crate) scale_done_tx: mpsc::UnboundedSender<scale::Done>,
    scale_done_rx: Option<mpsc::UnboundedReceiver<scale::Done>>,
    /// Streams of workers removed by a scale-down, open until the cluster stops them.
    pub(crate) retired: BTreeMap<u32, Connection>,
    /// Workers added by a scale-up that have not joined yet.
    pub(crate) scaled_in: BTreeSet<u32>,
}

impl Master {
    /// A master for a job that is starting.
    pub fn new(cfg: JobMasterConfig, store: Arc<dyn JobStateStore>) -> Self {
        let now = Instant::now();
        let (scale_done_tx, scale_done_rx) = mpsc::unbounded_channel();
        Self {
            cfg,
            store,
            registry: Registry::default(),
            barriers: Barriers::default(),
            state: JobState::Starting,
            reason: String::new(),
            ever_all_joined: false,
            pending_lists: BTreeMap::new(),
            watchers: Vec::new(),
            started: now,
            rejoin_deadlines: BTreeMap::new(),
            last_tick: now,
            reconnecting: BTreeSet::new(),
            restored_at: None,
            awaiting_list: BTreeSet::new(),
            next_conn: 1,
            cluster: None,
            scaling: None,
            scale_done_tx,
            scale_done_rx: Some(scale_done_rx),
            retired: BTreeMap::new(),
            scaled_in: BTreeSet::new(),
        }
    }

    /// The same master, scaling its workers and describing their nodes through `cluster`.
    pub fn with_cluster(mut self, cluster: Option<Arc<dyn JobCluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Handles events until the job ends; returns how it ended.
    pub async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) -> JobOutcome {
        let tick_every = (self.cfg.heartbeat_interval / 2).clamp(
            std::time::Duration::from_millis(20),
            std::time::Duration::from_millis(200),
        );
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Some(outcome) = self.recover().await {
            return outcome;
        }
        let store = self.store.clone();
        let lost = async move { store.lost().await };
        tokio::pin!(lost);
        let mut scale_done = match self.scale_done_rx.take() {
            Some(rx) => rx,
            None => mpsc::unbounded_channel().1,
        };
        while !is_final(self.state) {
            tokio::select! {
                Some(done) = scale_done.recv() => self.on_scale_done(done).await,
                ev = events.recv() => match ev {
                    Some(ev) => self.handle(ev).await,
                    None => self.end(JobState::JobFailed, "job master lost its event channel".into()).await,
                },
                _ = tick.tick() => self.on_tick().await,
                reason = &mut lost => {
                    warn!(job_id = %self.cfg.job_id, %reason, "state store lost");
                    self.end(JobState::JobFailed, reason).await;
                }
            }
        }
        if let Err(e) = self.store.remove_job().await {
            warn!(job_id = %self.cfg.job_id, error = %e, "could not remove the job's stored state");
        }
        JobOutcome {
            state: self.state,
            reason: self.reason.clone(),
        }
    }

    /// Rebuilds the job from the store (a restarted job master) and announces this one.
    /// Returns an outcome when there is nothing to run.
    async fn recover(&mut self) -> Option<JobOutcome> {
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
        }
        self.persist_job().await;
        if let Err(e) = self.store.announce().await {
            return fail(format!("cannot announce the job master: {e}"));
        }
        None
    }

    async fn handle(&mut self, ev: Event) {
        match ev {
            Event::Register {
                params,
                outbox,
                reply,
            } => {
                let result = self.register(params, outbox).await;
                let _ = reply.send(result);
                self.after_join().await;
            }
            Event::FromWorker {
                worker_id,
                conn,
                body,
            } => {
                if self.is_current(worker_id, conn) {
                    if let Some(e) = self.registry.get_mut(worker_id) {
                        e.last_seen = Instant::now();
                    }
                    self.on_message(worker_id, body).await;
                }
            }
            Event::Disconnected {
                worker_id,
                conn,
                cause,
            } => {
                if self.is_current(worker_id, conn) {
                    self.on_disconnect(worker_id, cause).await;
                } else if self.retired.get(&worker_id).is_some_and(|c| c.id == conn) {
                    // A worker removed by a scale-down went away, as expected.
                    self.retired.remove(&worker_id);
                }
            }
            Event::Watch { outbox } => {
                let _ = outbox.send(Ok(self.status()));
                self.watchers.push(outbox);
            }
            Event::Kill { reason } => {
                info!(job_id = %self.cfg.job_id, %reason, "job killed");
                self.end(JobState::JobKilled, reason).await;
            }
            Event::Scale { workers, reply } => self.on_scale(workers, reply).await,
        }
    }

    fn is_current(&self, id: u32, conn: u64) -> bool {
        self.registry
            .get(id)
            .and_then(|e| e.conn.as_ref())
            .is_some_and(|c| c.id == conn)
    }

    async fn register(
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
        self.notify_watchers();
        Ok((conn, registered))
    }

    /// After any registration: answers waiting list requests and pushes AllJoined.
    pub(crate) async fn after_join(&mut self) {
        // A scale in progress changes what "all" means: wait for it.
        if self.scaling.is_some() || !self.registry.all_joined(self.cfg.num_workers) {
            return;
        }
        let list = self.registry.worker_list();
        if !self.ever_all_joined {
            self.ever_all_joined = true;
            info!(job_id = %self.cfg.job_id, workers = self.cfg.num_workers, "all workers joined");
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

    async fn on_message(&mut self, id: u32, body: worker_to_master::Body) {
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
                    let workers = self.registry.worker_list();
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

    async fn on_state_change(&mut self, id: u32, change: t2_proto::StateChangeParams) {
        let state = change.state();
        self.registry.send(
            id,
            Body::StateAck(StateChangeAck {
                state: state as i32,
            }),
        );
        match state {
            WorkerState::Completed => {
                let Some(e) = self.registry.get_mut(id) else {
                    return;
                };
                e.info.set_state(WorkerState::Completed);
                e.exit_code = Some(0);
                let info = e.info.clone();
                info!(job_id = %self.cfg.job_id, worker_id = id, "worker completed");
                self.persist_worker(&info).await;
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

    async fn on_disconnect(&mut self, id: u32, cause: String) {
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

    /// A worker failed: restart it (by waiting for its supervisor) or fail the job.
    pub(crate) async fn worker_failed(&mut self, id: u32, reason: String) {
        let Some(e) = self.registry.get_mut(id) else {
            return;
        };
        let restarts = e.info.restart_count;
        let out_of_restarts = restarts >= self.cfg.max_restarts;
        e.info.set_state(if out_of_restarts {
            WorkerState::FullyFailed
        } else {
            WorkerState::Failed
        });
        e.conn = None;
        let info = e.info.clone();
        self.persist_worker(&info).await;
        if let Some(done) = self.barriers.worker_failed(id, &reason) {
            self.complete_barrier(done);
        }
        if out_of_restarts {
            let why = format!(
                "{reason}; restarted {restarts} time(s), max_restarts = {}",
                self.cfg.max_restarts
            );
            warn!(job_id = %self.cfg.job_id, worker_id = id, reason = %why, "worker fully failed");
            self.end(JobState::JobFailed, why).await;
            return;
        }
        warn!(job_id = %self.cfg.job_id, worker_id = id, %reason, restart_count = restarts, "worker failed; waiting for its restart");
        self.rejoin_deadlines
            .insert(id, Instant::now() + self.cfg.join_timeout);
        self.registry.broadcast(
            &Body::WorkerFailed(WorkerFailed {
                worker_id: id,
                reason,
            }),
            Some(id),
        );
        self.notify_watchers();
    }

    async fn on_tick(&mut self) {
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
                e.conn.is_some() && now.duration_since(e.last_seen) > self.cfg.heartbeat_timeout
            })
            .map(|e| e.info.worker_id)
            .collect();
        for id in silent {
            let cause = format!("no heartbeat for {:?}", self.cfg.heartbeat_timeout);
            if let Some(e) = self.registry.get(id) {
                if let Some(c) = &e.conn {
                    let _ = c.outbox.send(Err(Status::deadline_exceeded(cause.clone())));
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

    async fn set_state(&mut self, state: JobState, reason: String) {
        self.state = state;
        self.reason = reason;
        self.persist_job().await;
        self.notify_watchers();
    }

    /// Ends the job: answers everyone, tells workers and watchers.
    async fn end(&mut self, state: JobState, reason: String) {
        if is_final(self.state) {
            return;
        }
        info!(job_id = %self.cfg.job_id, state = state_name(state), %reason, "job ended");
        for done in self
            .barriers
            .abort_all(&format!("job ended: {}", state_name(state)))
        {
            self.complete_barrier(done);
        }
        self.set_state(state, reason.clone()).await;
        self.registry.broadcast(
            &Body::JobEnded(JobEnded {
                state: state as i32,
                reason,
            }),
            None,
        );
    }

    async fn persist_job(&self) {
        if let Err(e) = self.store.put_job_state(self.state, &self.reason).await {
            warn!(job_id = %self.cfg.job_id, error = %e, "could not record the job state");
        }
    }

    async fn persist_worker(&self, info: &WorkerInfo) {
        if let Err(e) = self.store.put_worker(info).await {
            warn!(job_id = %self.cfg.job_id, worker_id = info.worker_id, error = %e, "could not record the worker");
        }
    }

    fn status(&self) -> JobStatus {
        JobStatus {
            job_id: self.cfg.job_id.clone(),
            state: self.state as i32,
            reason: self.reason.clone(),
            num_workers: self.cfg.num_workers,
            joined: self.registry.joined(),
            workers: self.registry.worker_list(),
        }
    }

    pub(crate) fn notify_watchers(&mut self) {
        let status = self.status();
        self.watchers.retain(|w| w.send(Ok(status.clone())).is_ok());
    }
}

/// COMPLETED, FAILED or KILLED.
pub fn is_final(s: JobState) -> bool {
    matches!(
        s,
        JobState::JobCompleted | JobState::JobFailed | JobState::JobKilled
    )
}

/// The name users see: `COMPLETED`, not `JOB_COMPLETED`.
pub fn state_name(s: JobState) -> &'static str {
    match s {
        JobState::Unspecified | JobState::Starting => "STARTING",
        JobState::Running => "RUNNING",
        JobState::JobCompleted => "COMPLETED",
        JobState::JobFailed => "FAILED",
        JobState::JobKilled => "KILLED",
    }
}
