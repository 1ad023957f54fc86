//! The master task: owns every piece of job state and handles events one at a time, so there
//! are no locks and no races between registrations, failures, barriers and timeouts.
//!
//! This module holds the state, the event loop and the job's end; the handlers are `impl Master`
//! blocks in `register`, `messages`, `failures`, `tick`, `recover`, `status`, `topology` and
//! [`crate::scale`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use t2_proto::{
    master_to_worker::Body, worker_to_master, JobEnded, JobState, JobStatus, RegisterParams,
    RegisterResult, WorkerInfo, WorkerState,
};
use tokio::sync::{mpsc, oneshot, watch};
use tonic::Status;
use tracing::{info, warn};

use crate::barrier::Barriers;
use crate::cluster::JobCluster;
use crate::messages::FanOut;
use crate::registry::{Beat, Connection, Outbox, Registry};
use crate::reporters::Reporter;
use crate::scale::{self, ScaleReply};
use crate::store::JobStateStore;
use crate::JobMasterConfig;

/// Events waiting for the master: a bound, so that a flood of streams slows down their
/// readers (backpressure on their sockets) rather than growing the job master's memory.
pub const EVENTS_CAPACITY: usize = 8192;

/// Most registrations handled (and written to the store) as one batch.
pub const REGISTER_BATCH: usize = 1024;

/// Where job status snapshots go: the latest one, which every watcher reads (a slow watcher
/// skips snapshots rather than queueing them).
pub type StatusBoard = Arc<watch::Sender<JobStatus>>;

/// Everything that can happen to a job master.
#[derive(Debug)]
pub enum Event {
    /// A worker's first message arrived on a new stream.
    Register {
        /// Its registration.
        params: RegisterParams,
        /// Where to send it messages.
        outbox: Outbox,
        /// Its stream's last heartbeat.
        beat: Beat,
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
    pub(crate) reason: String,
    pub(crate) ever_all_joined: bool,
    /// List requests waiting for all workers: worker ID → request IDs.
    pub(crate) pending_lists: BTreeMap<u32, Vec<u64>>,
    /// The latest job status, read by every watcher.
    pub(crate) board: StatusBoard,
    /// Something changed since the status was last published (published at the next tick:
    /// 10 000 registrations must not build 10 000 statuses of 10 000 workers).
    pub(crate) status_dirty: bool,
    /// When the status was last published.
    pub(crate) published_at: Instant,
    /// The worker list encoded once for every stream, and the registry version it shows.
    pub(crate) list_cache: Option<(u64, bytes::Bytes)>,
    /// The budget of user-message bytes fanned out to workers.
    pub(crate) fan_out: FanOut,
    pub(crate) started: Instant,
    /// Failed (or newly added) workers and when they must be back by.
    pub(crate) rejoin_deadlines: BTreeMap<u32, Instant>,
    pub(crate) last_tick: Instant,
    /// Since when most workers look silent (see `tick`).
    pub(crate) behind_since: Option<Instant>,
    /// When the job master last caught up on heartbeats after being behind.
    pub(crate) caught_up_at: Option<Instant>,
    /// When the last registration was admitted.
    pub(crate) last_registration: Option<Instant>,
    /// Workers a restarted job master waits for, and when it was restored.
    pub(crate) reconnecting: BTreeSet<u32>,
    pub(crate) restored_at: Option<Instant>,
    /// Workers that registered and have not been sent the full list since.
    pub(crate) awaiting_list: BTreeSet<u32>,
    pub(crate) next_conn: u64,
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
    /// Where the job is reported (the dashboard), if anywhere.
    pub(crate) reporter: Option<Reporter>,
    /// When every worker was last handed to the reporter.
    pub(crate) last_snapshot: Instant,
    /// Node IPs the topology lists do not name (warned about once each).
    pub(crate) unlisted_nodes: BTreeSet<String>,
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
            board: Arc::new(watch::channel(JobStatus::default()).0),
            status_dirty: true,
            published_at: now,
            list_cache: None,
            fan_out: FanOut::new(now),
            started: now,
            rejoin_deadlines: BTreeMap::new(),
            last_tick: now,
            behind_since: None,
            caught_up_at: None,
            last_registration: None,
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
            reporter: None,
            last_snapshot: now,
            unlisted_nodes: BTreeSet::new(),
        }
    }

    /// The same master, reporting its job through `reporter` (see [`crate::reporters`]).
    pub fn with_reporter(mut self, reporter: Option<Reporter>) -> Self {
        self.reporter = reporter;
        self
    }

    /// The same master, scaling its workers and describing their nodes through `cluster`.
    pub fn with_cluster(mut self, cluster: Option<Arc<dyn JobCluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Where watchers read the job's status.
    pub fn status_board(&self) -> StatusBoard {
        self.board.clone()
    }

    /// Handles events until the job ends; returns how it ended.
    pub async fn run(mut self, mut events: mpsc::Receiver<Event>) -> JobOutcome {
        let tick_every = (self.cfg.heartbeat_interval / 2).clamp(
            std::time::Duration::from_millis(20),
            std::time::Duration::from_millis(200),
        );
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Some(outcome) = self.recover().await {
            self.state = outcome.state;
            self.reason = outcome.reason.clone();
            self.publish_status();
            return outcome;
        }
        self.publish_status();
        self.report_job();
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
                    Some(ev @ Event::Register { .. }) => {
                        // Registrations that queued up together are handled as one batch:
                        // one store write for all of them, one check for "all joined".
                        let mut batch = vec![ev];
                        let mut next = None;
                        while batch.len() < REGISTER_BATCH {
                            match events.try_recv() {
                                Ok(ev @ Event::Register { .. }) => batch.push(ev),
                                Ok(other) => {
                                    next = Some(other);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        self.register_batch(batch).await;
                        if let Some(ev) = next {
                            self.handle(ev).await;
                        }
                    }
                    Some(ev) => self.handle(ev).await,
                    None => self.end(JobState::JobFailed, "job master lost its event channel".into()).await,
                },
                _ = tick.tick() => {
                    self.on_tick().await;
                    if self.status_due() {
                        self.publish_status();
                    }
                    self.report_tick();
                }
                reason = &mut lost => {
                    warn!(job_id = %self.cfg.job_id, %reason, "state store lost");
                    self.end(JobState::JobFailed, reason).await;
                }
            }
            self.drop_lagging().await;
        }
        if let Err(e) = self.store.remove_job().await {
            warn!(job_id = %self.cfg.job_id, error = %e, "could not remove the job's stored state");
        }
        JobOutcome {
            state: self.state,
            reason: self.reason.clone(),
        }
    }

    async fn handle(&mut self, ev: Event) {
        match ev {
            ev @ Event::Register { .. } => self.register_batch(vec![ev]).await,
            Event::FromWorker {
                worker_id,
                conn,
                body,
            } => {
                if self.is_current(worker_id, conn) {
                    self.registry.touch(worker_id);
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
            Event::Kill { reason } => {
                info!(job_id = %self.cfg.job_id, %reason, "job killed");
                self.end(JobState::JobKilled, reason).await;
            }
            Event::Scale { workers, reply } => self.on_scale(workers, reply).await,
        }
    }

    /// Drops the streams of workers that fell behind (a full queue) and treats them as lost.
    async fn drop_lagging(&mut self) {
        for (id, conn) in self.registry.take_lagging() {
            if !self.is_current(id, conn) || crate::master::is_final(self.state) {
                continue;
            }
            let cause = format!(
                "its stream fell behind: {} messages unread",
                crate::registry::OUTBOX_CAPACITY
            );
            self.on_disconnect(id, cause).await;
        }
    }

    pub(crate) fn is_current(&self, id: u32, conn: u64) -> bool {
        self.registry
            .get(id)
            .and_then(|e| e.conn.as_ref())
            .is_some_and(|c| c.id == conn)
    }

    pub(crate) async fn set_state(&mut self, state: JobState, reason: String) {
        self.state = state;
        self.reason = reason;
        self.persist_job().await;
        if is_final(state) && !self.cfg.final_status_delay.is_zero() {
            // Test hook: the final status reaches watchers late (after the job master has
            // gone), as a slow watch stream would have it.
            let (board, status, delay) = (
                self.board.clone(),
                self.status(),
                self.cfg.final_status_delay,
            );
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                board.send_replace(status);
            });
            self.report_job();
            return;
        }
        // A change of the job's state goes out at once.
        self.publish_status();
        self.report_job();
    }

    /// Ends the job: answers everyone, tells workers and watchers.
    pub(crate) async fn end(&mut self, state: JobState, reason: String) {
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
        let why = if reason.is_empty() {
            String::new()
        } else {
            format!(": {reason}")
        };
        self.report_event("JOB", None, format!("job {}{why}", state_name(state)));
        if state != JobState::JobCompleted {
            self.stop_running_workers();
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

    /// A killed or failed job ends every worker still running with it: they are KILLED from
    /// now on, in the job's status and on the dashboard, not left STARTED.
    fn stop_running_workers(&mut self) {
        let mut stopped = Vec::new();
        for e in self.registry.iter_mut() {
            if matches!(
                e.state(),
                WorkerState::Unspecified | WorkerState::Started | WorkerState::Restarted
            ) {
                e.info.set_state(WorkerState::Killed);
                stopped.push(e.info.worker_id);
            }
        }
        for id in stopped {
            self.report_worker(id);
        }
    }

    pub(crate) async fn persist_job(&self) {
        if let Err(e) = self.store.put_job_state(self.state, &self.reason).await {
            warn!(job_id = %self.cfg.job_id, error = %e, "could not record the job state");
        }
    }

    pub(crate) async fn persist_worker(&self, info: &WorkerInfo) {
        if let Err(e) = self.store.put_worker(info).await {
            warn!(job_id = %self.cfg.job_id, worker_id = info.worker_id, error = %e, "could not record the worker");
        }
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
