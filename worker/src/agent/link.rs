//! The agent's link to the job master: one bidirectional stream, requests matched to answers
//! by request ID, pushed events fanned out, heartbeats both ways.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::{
    master_to_worker::Body as M, worker_to_master::Body as W, BarrierOutcome, BarrierParams,
    BarrierType, Heartbeat, JobEnded, ListWorkersParams, RegisterParams, RegisterResult,
    StateChangeParams, UserMessage, WorkerInfo, WorkerState, WorkerToMaster,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tracing::{debug, warn};

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
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<M>>>>;

/// A registered connection to the job master.
#[derive(Clone)]
pub struct Link {
    tx: mpsc::UnboundedSender<WorkerToMaster>,
    pending: Pending,
    next_id: Arc<AtomicU64>,
    /// Pushed events.
    pub events: broadcast::Sender<Pushed>,
    /// The latest full worker list (set at AllJoined).
    pub workers: watch::Receiver<Option<Vec<WorkerInfo>>>,
    /// Set when the link is lost (with the reason) or the job ended.
    pub closed: watch::Receiver<Option<String>>,
    /// The job master's answer to our registration.
    pub registered: RegisterResult,
}

impl Link {
    /// Connects to `addr`, retrying until `deadline`, and registers. A refusal (wrong token,
    /// protocol, ID) is final and not retried.
    pub async fn connect(
        addr: &str,
        params: RegisterParams,
        deadline: Duration,
    ) -> Result<Link, AgentError> {
        let started = Instant::now();
        let mut backoff = Duration::from_millis(20);
        let channel = loop {
            let endpoint = tonic::transport::Endpoint::from_shared(addr.to_string())
                .map_err(|e| {
                    AgentError::JobMaster(format!("bad job master address '{addr}': {e}"))
                })?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true);
            match endpoint.connect().await {
                Ok(c) => break c,
                Err(e) if started.elapsed() < deadline => {
                    debug!(error = %e, "job master not reachable yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
                Err(e) => {
                    return Err(AgentError::JobMaster(format!(
                        "cannot reach the job master at {addr} within {deadline:?}: {e}"
                    )))
                }
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(WorkerToMaster {
            body: Some(W::Register(params)),
        });
        let mut client = JobMasterClient::new(channel);
        let response = client
            .attach(UnboundedReceiverStream::new(rx))
            .await
            .map_err(|s| {
                AgentError::Refused(format!(
                    "job master at {addr} refused this worker: {}",
                    s.message()
                ))
            })?;
        let mut inbound = response.into_inner();
        let registered = match inbound.next().await {
            Some(Ok(t2_proto::MasterToWorker {
                body: Some(M::Registered(r)),
            })) => r,
            Some(Err(s)) => {
                return Err(AgentError::Refused(format!(
                    "job master at {addr} refused this worker: {}",
                    s.message()
                )))
            }
            _ => {
                return Err(AgentError::JobMaster(format!(
                    "job master at {addr} did not confirm the registration"
                )))
            }
        };
        let pending: Pending = Arc::default();
        let (events, _) = broadcast::channel(1024);
        let (workers_tx, workers) = watch::channel(None);
        let (closed_tx, closed) = watch::channel(None);
        let link = Link {
            tx,
            pending: pending.clone(),
            next_id: Arc::new(AtomicU64::new(1)),
            events: events.clone(),
            workers,
            closed,
            registered,
        };
        let hb_timeout = Duration::from_millis(registered.heartbeat_timeout_ms.max(100));
        let hb_interval = Duration::from_millis(registered.heartbeat_interval_ms.max(10));
        // Reader: answers, pushed events, and the job master's heartbeats.
        let last_seen = Arc::new(Mutex::new(Instant::now()));
        let seen = last_seen.clone();
        let closer = closed_tx.clone();
        tokio::spawn(async move {
            let reason = loop {
                match inbound.next().await {
                    Some(Ok(msg)) => {
                        if let Ok(mut t) = seen.lock() {
                            *t = Instant::now();
                        }
                        let Some(body) = msg.body else { continue };
                        match body {
                            M::Heartbeat(_) | M::Registered(_) => {}
                            M::StateAck(a) => {
                                let _ = events.send(Pushed::Ack(a.state));
                            }
                            M::Workers(ref r) => answer(&pending, r.request_id, body),
                            M::Barrier(ref r) => answer(&pending, r.request_id, body),
                            M::AllJoined(j) => {
                                let _ = workers_tx.send(Some(j.workers.clone()));
                                let _ = events.send(Pushed::AllJoined(j.workers));
                            }
                            M::WorkerFailed(f) => {
                                let _ = events.send(Pushed::WorkerFailed(f.worker_id, f.reason));
                            }
                            M::WorkerRestarted(r) => {
                                if let Some(info) = r.info {
                                    let _ = events.send(Pushed::WorkerRestarted(info));
                                }
                            }
                            M::Message(m) => {
                                let _ = events.send(Pushed::Message(m.payload));
                            }
                            M::JobEnded(e) => {
                                let _ = events.send(Pushed::JobEnded(e.clone()));
                                break format!("job ended: {}", e.reason);
                            }
                        }
                    }
                    Some(Err(s)) => {
                        break format!("stream to the job master broke: {}", s.message())
                    }
                    None => break "the job master closed the stream".to_string(),
                }
            };
            let _ = closer.send(Some(reason));
        });
        // Heartbeats out, and a watchdog on the job master's.
        let hb = link.clone();
        tokio::spawn(async move {
            let mut seq = 0u64;
            let mut tick = tokio::time::interval(hb_interval);
            loop {
                tick.tick().await;
                if hb.closed.borrow().is_some() {
                    return;
                }
                seq += 1;
                if hb
                    .tx
                    .send(WorkerToMaster {
                        body: Some(W::Heartbeat(Heartbeat { seq })),
                    })
                    .is_err()
                {
                    return;
                }
                let silent = last_seen.lock().map(|t| t.elapsed()).unwrap_or_default();
                if silent > hb_timeout {
                    warn!(?silent, "no heartbeat from the job master");
                    let _ = closed_tx.send(Some(format!(
                        "no heartbeat from the job master for {silent:?}"
                    )));
                    return;
                }
            }
        });
        Ok(link)
    }

    fn request_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    async fn request(&self, id: u64, body: W, wait: Option<Duration>) -> Result<M, AgentError> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        self.tx
            .send(WorkerToMaster { body: Some(body) })
            .map_err(|_| AgentError::JobMaster("the link to the job master is closed".into()))?;
        let mut closed = self.closed.clone();
        let answer = async {
            tokio::select! {
                r = rx => r.map_err(|_| AgentError::JobMaster("the link to the job master is closed".into())),
                why = closed_reason(&mut closed) => Err(AgentError::JobMaster(why)),
            }
        };
        match wait {
            Some(d) => tokio::time::timeout(d, answer).await.map_err(|_| {
                AgentError::JobMaster(format!("the job master did not answer within {d:?}"))
            })?,
            None => answer.await,
        }
    }

    /// The worker list; with `wait_for_all`, once all workers have joined.
    pub async fn list_workers(
        &self,
        wait_for_all: bool,
        wait: Duration,
    ) -> Result<Vec<WorkerInfo>, AgentError> {
        let request_id = self.request_id();
        match self
            .request(
                request_id,
                W::ListWorkers(ListWorkersParams {
                    request_id,
                    wait_for_all,
                }),
                Some(wait),
            )
            .await?
        {
            M::Workers(r) => Ok(r.workers),
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
            .request(
                request_id,
                body,
                Some(effective * 2 + Duration::from_secs(5)),
            )
            .await?
        {
            M::Barrier(r) => Ok(r),
            other => Err(AgentError::JobMaster(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Sends a user message.
    pub fn send_message(&self, payload: Vec<u8>) -> Result<(), AgentError> {
        let request_id = self.request_id();
        self.tx
            .send(WorkerToMaster {
                body: Some(W::Message(UserMessage {
                    request_id,
                    payload,
                })),
            })
            .map_err(|_| AgentError::JobMaster("the link to the job master is closed".into()))
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
        let sent = self.tx.send(WorkerToMaster {
            body: Some(W::StateChange(StateChangeParams {
                state: state as i32,
                exit_code,
                reason,
            })),
        });
        if sent.is_err() {
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

fn answer(pending: &Pending, id: u64, body: M) {
    if let Some(tx) = pending.lock().ok().and_then(|mut p| p.remove(&id)) {
        let _ = tx.send(body);
    }
}

/// Waits until the link closes and returns why.
pub async fn closed_reason(closed: &mut watch::Receiver<Option<String>>) -> String {
    match closed.wait_for(|c| c.is_some()).await {
        Ok(r) => r.clone().unwrap_or_default(),
        Err(_) => "the link to the job master closed".into(),
    }
}
