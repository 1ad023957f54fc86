//! The tonic service: each worker stream becomes a registration event, then message events,
//! then one disconnect event; clients get status streams and can kill or scale the job.
//!
//! A stream's own task notes its worker's heartbeats (they never reach the master's queue),
//! and enforces the per-worker limits on user messages (size and rate, see `messages`).

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use t2_core::secret::constant_time_eq;
use t2_proto::job_master_server::JobMaster;
use t2_proto::{
    master_to_worker::Body, worker_to_master, Heartbeat, JobStatus, KillParams, KillResult,
    MasterToWorker, ScaleParams, ScaleResult, WatchParams, WorkerToMaster, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::{ReceiverStream, WatchStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info_span, warn, Instrument};

use crate::cluster::JobCluster;
use crate::master::{Event, StatusBoard};
use crate::messages::{Bucket, MAX_USER_MESSAGE_BYTES, MESSAGES_PER_SECOND};
use crate::registry::{now_ms, Outgoing, OUTBOX_CAPACITY};

/// How long a new stream may take to send its registration.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the cluster may take to describe a registering worker's node.
const DESCRIBE_NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// The gRPC face of the job master.
#[derive(Clone)]
pub struct JobMasterService {
    events: mpsc::Sender<Event>,
    board: Option<watch::Receiver<JobStatus>>,
    job_id: String,
    token: String,
    heartbeat_interval: Duration,
    cluster: Option<Arc<dyn JobCluster>>,
}

impl std::fmt::Debug for JobMasterService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobMasterService")
            .field("job_id", &self.job_id)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("cluster", &self.cluster.is_some())
            .finish_non_exhaustive()
    }
}

impl JobMasterService {
    /// A service feeding `events`; `token` authenticates workers and clients.
    pub fn new(
        events: mpsc::Sender<Event>,
        job_id: &str,
        token: &str,
        heartbeat_interval: Duration,
    ) -> Self {
        Self {
            events,
            board: None,
            job_id: job_id.into(),
            token: token.into(),
            heartbeat_interval,
            cluster: None,
        }
    }

    /// The same service, answering watchers from `board` (it holds a reader only, so that
    /// status streams end when the master is done).
    pub fn with_board(mut self, board: &StatusBoard) -> Self {
        self.board = Some(board.subscribe());
        self
    }

    /// The same service, completing registering workers' nodes through `cluster`.
    pub fn with_cluster(mut self, cluster: Option<Arc<dyn JobCluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Completes a worker's node with what the cluster knows (rack, datacenter), unless the
    /// cluster takes longer than [`DESCRIBE_NODE_TIMEOUT`]: then the worker's own word stands.
    async fn describe_node(&self, info: &mut t2_proto::WorkerInfo) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let node = info.node.clone().unwrap_or_default();
        match tokio::time::timeout(DESCRIBE_NODE_TIMEOUT, cluster.describe_node(node)).await {
            Ok(described) => info.node = Some(described),
            Err(_) => {
                warn!(job_id = %self.job_id, worker_id = info.worker_id, "the cluster did not describe the worker's node within {DESCRIBE_NODE_TIMEOUT:?}; using what the worker said")
            }
        }
    }

    fn check_token(&self, given: &str, who: &str) -> Result<(), Status> {
        if constant_time_eq(given.as_bytes(), self.token.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated(format!(
                "{who} presented a wrong job token for job '{}'",
                self.job_id
            )))
        }
    }

    /// Opens a worker's stream: waits for its registration, admits it, and returns the queue
    /// of what the job master sends it (the stream's own task handles what it sends). Served
    /// through `attach::Route`, which frames that queue itself.
    pub async fn open(
        &self,
        mut inbound: Streaming<WorkerToMaster>,
    ) -> Result<mpsc::Receiver<Outgoing>, Status> {
        let first = tokio::time::timeout(REGISTER_TIMEOUT, inbound.next())
            .await
            .map_err(|_| Status::deadline_exceeded("no registration within 10s of connecting"))?;
        let mut params = match first {
            Some(Ok(WorkerToMaster {
                body: Some(worker_to_master::Body::Register(p)),
            })) => p,
            Some(Ok(_)) => {
                return Err(Status::failed_precondition(
                    "the first message on a worker stream must be a registration",
                ))
            }
            Some(Err(e)) => return Err(e),
            None => return Err(Status::cancelled("stream closed before registration")),
        };
        let worker_id = params
            .info
            .as_ref()
            .map(|i| i.worker_id)
            .unwrap_or_default();
        if params.protocol_version != PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "worker {worker_id} speaks protocol version {}, this job master speaks {PROTOCOL_VERSION}; run the same t2 version everywhere",
                params.protocol_version
            )));
        }
        self.check_token(&params.token, &format!("worker {worker_id}"))?;
        if let Some(info) = params.info.as_mut() {
            self.describe_node(info).await;
        }

        let (out_tx, out_rx) = mpsc::channel(OUTBOX_CAPACITY);
        let (reply_tx, reply_rx) = oneshot::channel();
        let beat = Arc::new(AtomicU64::new(now_ms()));
        self.send(Event::Register {
            params,
            outbox: out_tx.clone(),
            beat: beat.clone(),
            reply: reply_tx,
        })
        .await?;
        let (conn, registered) = reply_rx
            .await
            .map_err(|_| Status::unavailable("the job has ended"))??;
        // The job master answers the worker's heartbeats with its own, from the stream's task:
        // independent of the master task, no timer per stream (10 000 workers send 40 000
        // heartbeats a second), and at most every quarter of the heartbeat timeout. A weak sender: the stream still ends when the master drops its side.
        let weak = out_tx.downgrade();
        drop(out_tx);
        let answer_every =
            (registered.heartbeat_timeout_ms / 4).max(registered.heartbeat_interval_ms);
        let answer_every = Duration::from_millis(answer_every);
        let events = self.events.clone();
        let span = info_span!("worker_stream", job_id = %self.job_id, worker_id, conn);
        tokio::spawn(
            async move {
                let mut rate = Bucket::new(MESSAGES_PER_SECOND, Instant::now());
                let mut answered = Instant::now() - answer_every;
                let cause = loop {
                    match inbound.next().await {
                        Some(Ok(WorkerToMaster { body: Some(body) })) => {
                            beat.store(now_ms(), Ordering::Relaxed);
                            if let worker_to_master::Body::Heartbeat(Heartbeat { seq }) = body {
                                let answer = MasterToWorker {
                                    body: Some(Body::Heartbeat(Heartbeat { seq })),
                                };
                                // At most every quarter of the heartbeat timeout: enough for
                                // the worker to notice a dead job master in time, a quarter
                                // of the writes. A full queue needs no heartbeat on top.
                                if answered.elapsed() >= answer_every {
                                    answered = Instant::now();
                                    match weak.upgrade() {
                                        Some(tx) => {
                                            let _ = tx.try_send(Ok(Box::new(answer)));
                                        }
                                        None => break "the job master dropped the stream".to_string(),
                                    }
                                }
                                continue;
                            }
                            if let worker_to_master::Body::Message(m) = &body {
                                if m.payload.len() > MAX_USER_MESSAGE_BYTES {
                                    warn!(bytes = m.payload.len(), "user message dropped: over {MAX_USER_MESSAGE_BYTES} bytes");
                                    continue;
                                }
                                if !rate.take(1.0, Instant::now()) {
                                    warn!("user message dropped: more than {MESSAGES_PER_SECOND} a second from this worker");
                                    continue;
                                }
                            }
                            if events
                                .send(Event::FromWorker {
                                    worker_id,
                                    conn,
                                    body,
                                })
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            break format!("its connection to the job master broke ({})", e.message())
                        }
                        None => break "it closed its stream to the job master".to_string(),
                    }
                };
                if events
                    .send(Event::Disconnected {
                        worker_id,
                        conn,
                        cause,
                    })
                    .await
                    .is_err()
                {
                    debug!("job master gone before the disconnect was handled");
                }
            }
            .instrument(span),
        );
        Ok(out_rx)
    }

    async fn send(&self, ev: Event) -> Result<(), Status> {
        self.events
            .send(ev)
            .await
            .map_err(|_| Status::unavailable("the job has ended"))
    }
}

type OutStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl JobMaster for JobMasterService {
    type AttachStream = OutStream<MasterToWorker>;
    type WatchStream = OutStream<JobStatus>;

    async fn attach(
        &self,
        request: Request<Streaming<WorkerToMaster>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let outbox = self.open(request.into_inner()).await?;
        let messages = ReceiverStream::new(outbox).map(|m| m.map(|m| *m));
        Ok(Response::new(Box::pin(messages)))
    }

    async fn watch(
        &self,
        request: Request<WatchParams>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.check_token(&request.get_ref().token, "a watcher")?;
        let board = self
            .board
            .as_ref()
            .ok_or_else(|| Status::unavailable("this job master reports no status"))?;
        // The latest status, then each newer one; a watcher that reads slowly skips some,
        // never the last.
        let statuses = WatchStream::new(board.clone()).map(Ok);
        Ok(Response::new(Box::pin(statuses)))
    }

    async fn kill(&self, request: Request<KillParams>) -> Result<Response<KillResult>, Status> {
        let params = request.into_inner();
        self.check_token(&params.token, "a kill request")?;
        let reason = if params.reason.is_empty() {
            "killed by user".into()
        } else {
            params.reason
        };
        self.send(Event::Kill { reason }).await?;
        Ok(Response::new(KillResult {}))
    }

    async fn scale(&self, request: Request<ScaleParams>) -> Result<Response<ScaleResult>, Status> {
        let params = request.into_inner();
        self.check_token(&params.token, "a scale request")?;
        let ended = || {
            Status::failed_precondition(format!(
                "job {} has ended; only a running job can be scaled",
                self.job_id
            ))
        };
        let (reply, answer) = oneshot::channel();
        self.events
            .send(Event::Scale {
                workers: params.num_workers,
                reply,
            })
            .await
            .map_err(|_| ended())?;
        let result = answer.await.map_err(|_| ended())??;
        Ok(Response::new(result))
    }
}
