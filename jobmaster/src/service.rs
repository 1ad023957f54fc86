//! The tonic service: each worker stream becomes a registration event, then message events,
//! then one disconnect event; clients get status streams and can kill or scale the job.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use t2_core::secret::constant_time_eq;
use t2_proto::job_master_server::JobMaster;
use t2_proto::{
    master_to_worker::Body, worker_to_master, Heartbeat, JobStatus, KillParams, KillResult,
    MasterToWorker, ScaleParams, ScaleResult, WatchParams, WorkerToMaster, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info_span, warn, Instrument};

use crate::cluster::JobCluster;
use crate::master::Event;

/// How long a new stream may take to send its registration.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the cluster may take to describe a registering worker's node.
const DESCRIBE_NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// The gRPC face of the job master.
#[derive(Clone)]
pub struct JobMasterService {
    events: mpsc::UnboundedSender<Event>,
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
        events: mpsc::UnboundedSender<Event>,
        job_id: &str,
        token: &str,
        heartbeat_interval: Duration,
    ) -> Self {
        Self {
            events,
            job_id: job_id.into(),
            token: token.into(),
            heartbeat_interval,
            cluster: None,
        }
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

    fn send(&self, ev: Event) -> Result<(), Status> {
        self.events
            .send(ev)
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
        let mut inbound = request.into_inner();
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

        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        self.send(Event::Register {
            params,
            outbox: out_tx.clone(),
            reply: reply_tx,
        })?;
        let (conn, _registered) = reply_rx
            .await
            .map_err(|_| Status::unavailable("the job has ended"))??;
        // Heartbeats to the worker come from here, independent of the master task, for as
        // long as the stream is open.
        // A weak sender: the stream still ends when the master drops its side.
        let interval = self.heartbeat_interval;
        let weak = out_tx.downgrade();
        drop(out_tx);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            let mut seq = 0u64;
            loop {
                tick.tick().await;
                seq += 1;
                let beat = MasterToWorker {
                    body: Some(Body::Heartbeat(Heartbeat { seq })),
                };
                match weak.upgrade() {
                    Some(tx) if tx.send(Ok(beat)).is_ok() => {}
                    _ => return,
                }
            }
        });

        let events = self.events.clone();
        let span = info_span!("worker_stream", job_id = %self.job_id, worker_id, conn);
        tokio::spawn(
            async move {
                let cause = loop {
                    match inbound.next().await {
                        Some(Ok(WorkerToMaster { body: Some(body) })) => {
                            if events
                                .send(Event::FromWorker {
                                    worker_id,
                                    conn,
                                    body,
                                })
                                .is_err()
                            {
                                return;
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break format!("stream broke: {}", e.message()),
                        None => break "stream closed".to_string(),
                    }
                };
                if events
                    .send(Event::Disconnected {
                        worker_id,
                        conn,
                        cause,
                    })
                    .is_err()
                {
                    debug!("job master gone before the disconnect was handled");
                }
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(
            out_rx,
        ))))
    }

    async fn watch(
        &self,
        request: Request<WatchParams>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.check_token(&request.get_ref().token, "a watcher")?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.send(Event::Watch { outbox: tx })?;
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn kill(&self, request: Request<KillParams>) -> Result<Response<KillResult>, Status> {
        let params = request.into_inner();
        self.check_token(&params.token, "a kill request")?;
        let reason = if params.reason.is_empty() {
            "killed by user".into()
        } else {
            params.reason
        };
        self.send(Event::Kill { reason })?;
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
            .map_err(|_| ended())?;
        let result = answer.await.map_err(|_| ended())??;
        Ok(Response::new(result))
    }
}
