//! The agent's link to the job master: one bidirectional stream at a time, requests matched to
//! answers by request ID, pushed events fanned out, heartbeats both ways. For fault-tolerant jobs
//! the link survives a job master restart: [`Link::reconnect`] opens a stream to the new job
//! master, re-registers, and re-sends every request still waiting for an answer (barriers
//! included), so user code never notices beyond a delay. The link also follows the job's
//! number of workers, which changes when the job is scaled ([`Link::num_workers`]).
//!
//! Worker lists arrive as a compact table in pieces (see `t2_proto::table`) and are joined
//! and decoded here. What the agent sends waits in a bounded queue ([`OUTGOING_CAPACITY`]);
//! user messages are limited in size and rate before they leave, with a readable error.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::limits::{DEFAULT_MESSAGE_BYTES, MAX_USER_MESSAGE_BYTES};
use t2_proto::table::{self, Assembler};
use t2_proto::{
    master_to_worker::Body as M, worker_to_master::Body as W, BarrierOutcome, BarrierParams,
    BarrierType, Heartbeat, JobEnded, ListWorkersParams, MasterToWorker, RegisterParams,
    RegisterResult, StateChangeParams, UserMessage, WorkerInfo, WorkerState, WorkerToMaster,
};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use super::dial::{DialError, Dialer};
use super::AgentError;

/// Something the job master pushed.
#[derive(Debug, Clone)]
pub enum Pushed {
    /// All workers joined; the full list.
    AllJoined(Vec<WorkerInfo>),
    /// Another worker failed.
    WorkerFailed(u32, String),
    /// Another worker restarted.
    WorkerRestarted(WorkerInfo),
    /// A user message.
    Message(Vec<u8>),
    /// The job ended.
    JobEnded(JobEnded),
    /// The job master acknowledged a state change.
    Ack(i32),
    /// This worker reconnected to a restarted job master.
    Reconnected,
    /// The job was scaled: it has `num_workers` workers now, `previous` before.
    JobScaled {
        /// The new number of workers.
        num_workers: u32,
        /// The number before.
        previous: u32,
    },
}

/// Messages the agent may have waiting to go to the job master.
pub const OUTGOING_CAPACITY: usize = 1024;

/// User messages an agent sends per second at most (the job master holds workers to the same).
pub const MESSAGES_PER_SECOND: f64 = 100.0;

/// The current stream.
struct Conn {
    tx: mpsc::Sender<WorkerToMaster>,
    generation: u64,
}

/// Requests waiting for an answer: their bodies (to re-send) and who waits.
type Pending = HashMap<u64, (W, oneshot::Sender<M>)>;

struct Shared {
    conn: Mutex<Conn>,
    pending: Mutex<Pending>,
    next_id: AtomicU64,
    num_workers: AtomicU32,
    params: RegisterParams,
    fault_tolerant: bool,
    /// How the job master is dialled (again, on reconnection).
    dialer: Dialer,
    workers_tx: watch::Sender<Option<Vec<WorkerInfo>>>,
    closed_tx: watch::Sender<Option<String>>,
    /// Tokens for user messages, and when they were last topped up.
    message_tokens: Mutex<(f64, Instant)>,
}

/// A registered connection to the job master.
#[derive(Clone)]
pub struct Link {
    shared: Arc<Shared>,
    /// Pushed events.
    pub events: broadcast::Sender<Pushed>,
    /// The latest full worker list (set at AllJoined).
    pub workers: watch::Receiver<Option<Vec<WorkerInfo>>>,
    /// Set when the current stream is lost (with the reason) or the job ended.
    pub closed: watch::Receiver<Option<String>>,
    /// The job master's answer to our registration.
    pub registered: RegisterResult,
}

/// A stream just opened and registered.
struct Opened {
    tx: mpsc::Sender<WorkerToMaster>,
    inbound: tonic::Streaming<MasterToWorker>,
    registered: RegisterResult,
}

/// Dials `addr` with `dialer` (retrying until `deadline`) and registers with `params`. A
/// refusal, or a job master whose certificate this worker does not trust, is final.
async fn open(
    dialer: &Dialer,
    addr: &str,
    params: RegisterParams,
    deadline: Duration,
) -> Result<Opened, AgentError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(20);
    let channel = loop {
        let endpoint = tonic::transport::Endpoint::from_shared(addr.to_string())
            .map_err(|e| AgentError::JobMaster(format!("bad job master address '{addr}': {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        match dialer.channel(endpoint).await {
            Ok(c) => break c,
            Err(DialError::Final(why)) => return Err(AgentError::Refused(why)),
            Err(DialError::NotYet(e)) if started.elapsed() < deadline => {
                debug!(error = %e, "job master not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(DialError::NotYet(e)) => {
                return Err(AgentError::JobMaster(format!(
                    "cannot reach the job master at {addr} within {deadline:?}: {e}"
                )))
            }
        }
    };
    let (tx, rx) = mpsc::channel(OUTGOING_CAPACITY);
    let _ = tx.try_send(WorkerToMaster {
        body: Some(W::Register(params)),
    });
    // Only the job master's own verdicts are final; a connection that breaks while the
    // stream opens (a job master going away, a Service still pointing at it) is tried again.
    let refused = |s: tonic::Status| match s.code() {
        tonic::Code::Unavailable
        | tonic::Code::Unknown
        | tonic::Code::Cancelled
        | tonic::Code::DeadlineExceeded
        | tonic::Code::Aborted => AgentError::JobMaster(format!(
            "the stream to the job master at {addr} did not open: {}",
            s.message()
        )),
        _ => AgentError::Refused(format!(
            "job master at {addr} refused this worker: {}",
            s.message()
        )),
    };
    // Worker lists come in pieces of at most 1 MiB, so the default limit holds at any size.
    let mut client = JobMasterClient::new(channel).max_decoding_message_size(DEFAULT_MESSAGE_BYTES);
    let mut inbound = client
        .attach(ReceiverStream::new(rx))
        .await
        .map_err(refused)?
        .into_inner();
    match inbound.next().await {
        Some(Ok(MasterToWorker {
            body: Some(M::Registered(registered)),
        })) => Ok(Opened {
            tx,
            inbound,
            registered,
        }),
        Some(Err(s)) => Err(refused(s)),
        _ => Err(AgentError::JobMaster(format!(
            "job master at {addr} did not confirm the registration"
        ))),
    }
}

impl Link {
    /// Connects to `addr`, retrying until `deadline`, and registers. A refusal (wrong token,
    /// protocol, ID) is final and not retried. With `fault_tolerant`, requests survive a lost
    /// stream (see [`Link::reconnect`]); otherwise they fail with it.
    pub async fn connect(
        addr: &str,
        params: RegisterParams,
        deadline: Duration,
        fault_tolerant: bool,
    ) -> Result<Link, AgentError> {
        Self::connect_with(&Dialer::plain(), addr, params, deadline, fault_tolerant).await
    }

    /// [`Link::connect`] dialling with `dialer` (TLS for a job with `tls: true`).
    pub async fn connect_with(
        dialer: &Dialer,
        addr: &str,
        params: RegisterParams,
        deadline: Duration,
        fault_tolerant: bool,
    ) -> Result<Link, AgentError> {
        let opened = open(dialer, addr, params.clone(), deadline).await?;
        let (events, _) = broadcast::channel(1024);
        let (workers_tx, workers) = watch::channel(None);
        let (closed_tx, closed) = watch::channel(None);
        let shared = Arc::new(Shared {
            conn: Mutex::new(Conn {
                tx: opened.tx.clone(),
                generation: 1,
            }),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            num_workers: AtomicU32::new(opened.registered.num_workers),
            params,
            fault_tolerant,
            dialer: dialer.clone(),
            workers_tx,
            closed_tx,
            message_tokens: Mutex::new((MESSAGES_PER_SECOND, Instant::now())),
        });
        let link = Link {
            shared,
            events,
            workers,
            closed,
            registered: opened.registered,
        };
        link.spawn_tasks(opened, 1);
        Ok(link)
    }

    /// Opens a new stream to `addr` (a restarted job master), re-registers as the same worker,
    /// and re-sends every request still waiting for an answer.
    pub async fn reconnect(&self, addr: &str, deadline: Duration) -> Result<(), AgentError> {
        let mut params = self.shared.params.clone();
        params.reconnect = true;
        let opened = open(&self.shared.dialer, addr, params, deadline).await?;
        self.shared
            .num_workers
            .store(opened.registered.num_workers, Ordering::Relaxed);
        let generation = {
            let mut conn = self.shared.conn.lock().map_err(|_| poisoned())?;
            conn.generation += 1;
            conn.tx = opened.tx.clone();
            conn.generation
        };
        let _ = self.shared.closed_tx.send(None);
        if let Ok(pending) = self.shared.pending.lock() {
            for (body, _) in pending.values() {
                let _ = opened.tx.try_send(WorkerToMaster {
                    body: Some(body.clone()),
                });
            }
        }
        self.spawn_tasks(opened, generation);
        let _ = self.events.send(Pushed::Reconnected);
        Ok(())
    }

    /// The job's current number of workers: as registered, then as the job was scaled.
    pub fn num_workers(&self) -> u32 {
        self.shared.num_workers.load(Ordering::Relaxed)
    }

    fn current_generation(&self) -> u64 {
        self.shared.conn.lock().map(|c| c.generation).unwrap_or(0)
    }

    /// The reader (answers, pushed events, the job master's heartbeats) and the heartbeat
    /// sender of one stream; both stop when a newer stream replaces it.
    fn spawn_tasks(&self, opened: Opened, generation: u64) {
        let Opened {
            tx,
            mut inbound,
            registered,
        } = opened;
        let hb_timeout = Duration::from_millis(registered.heartbeat_timeout_ms.max(100));
        let hb_interval = Duration::from_millis(registered.heartbeat_interval_ms.max(10));
        let last_seen = Arc::new(Mutex::new(Instant::now()));
        let (reader, seen) = (self.clone(), last_seen.clone());
        tokio::spawn(async move {
            let mut lists = Lists::default();
            let reason = loop {
                match inbound.next().await {
                    Some(Ok(msg)) => {
                        if let Ok(mut t) = seen.lock() {
                            *t = Instant::now();
                        }
                        if let Some(body) = msg.body {
                            match lists.join(body) {
                                Ok(Some(body)) => {
                                    if let Some(ended) = reader.dispatch(body) {
                                        break ended;
                                    }
                                }
                                Ok(None) => {}
                                Err(e) => break e.to_string(),
                            }
                        }
                    }
                    Some(Err(s)) => {
                        break format!("stream to the job master broke: {}", s.message())
                    }
                    None => break "the job master closed the stream".to_string(),
                }
            };
            if reader.current_generation() == generation {
                let _ = reader.shared.closed_tx.send(Some(reason));
            }
        });
        let hb = self.clone();
        tokio::spawn(async move {
            let mut seq = 0u64;
            let mut tick = tokio::time::interval(hb_interval);
            loop {
                tick.tick().await;
                if hb.current_generation() != generation || hb.closed.borrow().is_some() {
                    return;
                }
                seq += 1;
                // A full queue is sent as fast as the stream allows; it needs no heartbeat.
                if let Err(TrySendError::Closed(_)) = tx.try_send(WorkerToMaster {
                    body: Some(W::Heartbeat(Heartbeat { seq })),
                }) {
                    return;
                }
                let silent = last_seen.lock().map(|t| t.elapsed()).unwrap_or_default();
                if silent > hb_timeout {
                    warn!(?silent, "no heartbeat from the job master");
                    if hb.current_generation() == generation {
                        let _ = hb.shared.closed_tx.send(Some(format!(
                            "no heartbeat from the job master for {silent:?}"
                        )));
                    }
                    return;
                }
            }
        });
    }

    /// Handles one pushed message; returns a reason when the job ended.
    fn dispatch(&self, body: M) -> Option<String> {
        match body {
            M::Heartbeat(_) | M::Registered(_) => {}
            M::JobScaled(s) => {
                self.shared
                    .num_workers
                    .store(s.num_workers, Ordering::Relaxed);
                let _ = self.events.send(Pushed::JobScaled {
                    num_workers: s.num_workers,
                    previous: s.previous,
                });
            }
            M::StateAck(a) => {
                let _ = self.events.send(Pushed::Ack(a.state));
            }
            M::Workers(ref r) => self.answer(r.request_id, body.clone()),
            M::Barrier(ref r) => self.answer(r.request_id, body.clone()),
            M::AllJoined(j) => match table::decode(&j.table) {
                Ok(workers) => {
                    let _ = self.shared.workers_tx.send(Some(workers.clone()));
                    let _ = self.events.send(Pushed::AllJoined(workers));
                }
                Err(e) => warn!(error = %e, "ignoring a worker list"),
            },
            M::WorkerFailed(f) => {
                let _ = self
                    .events
                    .send(Pushed::WorkerFailed(f.worker_id, f.reason));
            }
            M::WorkerRestarted(r) => {
                if let Some(info) = r.info {
                    let _ = self.events.send(Pushed::WorkerRestarted(info));
                }
            }
            M::Message(m) => {
                let _ = self.events.send(Pushed::Message(m.payload.to_vec()));
            }
            M::JobEnded(e) => {
                let _ = self.events.send(Pushed::JobEnded(e.clone()));
                return Some(format!("job ended: {}", e.reason));
            }
        }
        None
    }

    fn answer(&self, id: u64, body: M) {
        if let Some((_, tx)) = self
            .shared
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&id))
        {
            let _ = tx.send(body);
        }
    }

    fn send(&self, body: W) -> Result<(), AgentError> {
        let conn = self.shared.conn.lock().map_err(|_| poisoned())?;
        // With fault tolerance a send into a dead stream is fine: the request is re-sent on
        // reconnection. Without it, a dead stream is an error.
        match conn.tx.try_send(WorkerToMaster { body: Some(body) }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(AgentError::JobMaster(format!(
                "{OUTGOING_CAPACITY} messages are already waiting to go to the job master; try again later"
            ))),
            Err(TrySendError::Closed(_)) if self.shared.fault_tolerant => Ok(()),
            Err(TrySendError::Closed(_)) => Err(AgentError::JobMaster(
                "the link to the job master is closed".into(),
            )),
        }
    }

    fn request_id(&self) -> u64 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    async fn request(&self, id: u64, body: W, wait: Duration) -> Result<M, AgentError> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.shared.pending.lock() {
            p.insert(id, (body.clone(), tx));
        }
        let result = self.await_answer(body, rx, wait).await;
        if let Ok(mut p) = self.shared.pending.lock() {
            p.remove(&id);
        }
        result
    }

    async fn await_answer(
        &self,
        body: W,
        rx: oneshot::Receiver<M>,
        wait: Duration,
    ) -> Result<M, AgentError> {
        self.send(body)?;
        let closed_link = || AgentError::JobMaster("the link to the job master is closed".into());
        let mut closed = self.closed.clone();
        let answer = async {
            if self.shared.fault_tolerant {
                // A lost stream is reconnected; keep waiting (bounded by `wait`).
                rx.await.map_err(|_| closed_link())
            } else {
                tokio::select! {
                    r = rx => r.map_err(|_| closed_link()),
                    why = closed_reason(&mut closed) => Err(AgentError::JobMaster(why)),
                }
            }
        };
        tokio::time::timeout(wait, answer).await.map_err(|_| {
            AgentError::JobMaster(format!("the job master did not answer within {wait:?}"))
        })?
    }

    /// The worker list; with `wait_for_all`, once all workers have joined.
    pub async fn list_workers(
        &self,
        wait_for_all: bool,
        wait: Duration,
    ) -> Result<Vec<WorkerInfo>, AgentError> {
        let request_id = self.request_id();
        let body = W::ListWorkers(ListWorkersParams {
            request_id,
            wait_for_all,
        });
        match self.request(request_id, body, wait).await? {
            M::Workers(r) => {
                table::decode(&r.table).map_err(|e| AgentError::JobMaster(e.to_string()))
            }
            other => Err(AgentError::JobMaster(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Waits on a barrier; the local wait is bounded by twice its timeout plus a margin.
    pub async fn barrier(
        &self,
        t: BarrierType,
        timeout: Duration,
        default: Duration,
    ) -> Result<BarrierOutcome, AgentError> {
        let request_id = self.request_id();
        let effective = if timeout.is_zero() { default } else { timeout };
        let body = W::Barrier(BarrierParams {
            request_id,
            barrier_type: t as i32,
            timeout_ms: timeout.as_millis() as u64,
        });
        match self
            .request(request_id, body, effective * 2 + Duration::from_secs(5))
            .await?
        {
            M::Barrier(r) => Ok(r),
            other => Err(AgentError::JobMaster(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Sends a user message: at most [`MAX_USER_MESSAGE_BYTES`], at most
    /// [`MESSAGES_PER_SECOND`] (in a burst, or on average).
    pub fn send_message(&self, payload: Vec<u8>) -> Result<(), AgentError> {
        if payload.len() > MAX_USER_MESSAGE_BYTES {
            return Err(AgentError::JobMaster(format!(
                "a message of {} bytes is over the limit of {} KiB; send less, or share larger data through files or the workers' own connections",
                payload.len(),
                MAX_USER_MESSAGE_BYTES >> 10
            )));
        }
        {
            let mut tokens = self.shared.message_tokens.lock().map_err(|_| poisoned())?;
            let now = Instant::now();
            let refill = now.duration_since(tokens.1).as_secs_f64() * MESSAGES_PER_SECOND;
            *tokens = ((tokens.0 + refill).min(MESSAGES_PER_SECOND), now);
            if tokens.0 < 1.0 {
                return Err(AgentError::JobMaster(format!(
                    "more than {MESSAGES_PER_SECOND} messages a second; send fewer, larger messages"
                )));
            }
            tokens.0 -= 1.0;
        }
        let request_id = self.request_id();
        self.send(W::Message(UserMessage {
            request_id,
            payload: payload.into(),
        }))
    }

    /// Reports a state change (COMPLETED, FAILED, KILLED) and waits up to `wait` for the
    /// job master's acknowledgement. Returns false when none came.
    pub async fn report(
        &self,
        state: WorkerState,
        exit_code: i32,
        reason: String,
        wait: Duration,
    ) -> bool {
        let mut events = self.events.subscribe();
        let body = W::StateChange(StateChangeParams {
            state: state as i32,
            exit_code,
            reason,
        });
        if self.send(body).is_err() {
            return false;
        }
        let acked = async {
            loop {
                match events.recv().await {
                    Ok(Pushed::Ack(s)) if s == state as i32 => return true,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return false,
                }
            }
        };
        tokio::time::timeout(wait, acked).await.unwrap_or(false)
    }
}

/// Joins the pieces of worker lists; passes everything else through.
#[derive(Default)]
struct Lists {
    all_joined: Assembler,
    answers: Assembler,
}

impl Lists {
    /// `Some(body)` when `body` is complete (a list once its last piece arrived, with the
    /// whole table in it).
    fn join(&mut self, body: M) -> Result<Option<M>, table::TableError> {
        Ok(match body {
            M::AllJoined(mut j) => self.all_joined.push(j.piece, j.pieces, &j.table)?.map(|t| {
                j.table = t.into();
                j.piece = 0;
                j.pieces = 1;
                M::AllJoined(j)
            }),
            M::Workers(mut r) => self.answers.push(r.piece, r.pieces, &r.table)?.map(|t| {
                r.table = t.into();
                r.piece = 0;
                r.pieces = 1;
                M::Workers(r)
            }),
            other => Some(other),
        })
    }
}

fn poisoned() -> AgentError {
    AgentError::JobMaster("internal: link state poisoned".into())
}

/// Waits until the link closes and returns why.
pub async fn closed_reason(closed: &mut watch::Receiver<Option<String>>) -> String {
    match closed.wait_for(|c| c.is_some()).await {
        Ok(r) => r.clone().unwrap_or_default(),
        Err(_) => "the link to the job master closed".into(),
    }
}
