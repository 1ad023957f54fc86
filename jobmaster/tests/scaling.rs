//! Scaling a running job over real gRPC on loopback: workers join after a scale-up, removed
//! workers leave without counting as failures, refusals are readable, and the cluster
//! completes the workers' nodes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use t2_jobmaster::cluster::{ClusterError, JobCluster};
use t2_jobmaster::store::MemoryStore;
use t2_jobmaster::{JobMasterConfig, JobOutcome};
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::{
    master_to_worker::Body as M, worker_to_master::Body as W, BarrierParams, BarrierResult,
    BarrierType, JobScaled, JobState, JobStatus, KillParams, ListWorkersParams, MasterToWorker,
    NodeInfo, RegisterParams, ScaleParams, ScaleResult, StateChangeParams, WatchParams, WorkerInfo,
    WorkerState, WorkerToMaster, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

const TOKEN: &str = "t";
/// Deadline of every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A cluster that records what it was asked, optionally refuses, optionally holds each scale
/// until released, and describes nodes by their IP.
struct TestCluster {
    calls: watch::Sender<Vec<u32>>,
    refuse: Option<String>,
    gate: Option<Arc<Semaphore>>,
    /// Only calls for this many workers wait at the gate (all do when unset).
    gate_only: Option<u32>,
    describe: Describe,
}

#[derive(Clone, Copy, PartialEq)]
enum Describe {
    /// The default: adds nothing.
    Nothing,
    /// Rack `rack-<ip>`, datacenter `dc-1`.
    ByIp,
    /// Never answers.
    Hang,
}

impl TestCluster {
    fn new() -> Self {
        Self {
            calls: watch::channel(Vec::new()).0,
            refuse: None,
            gate: None,
            gate_only: None,
            describe: Describe::Nothing,
        }
    }

    fn calls(&self) -> Vec<u32> {
        self.calls.borrow().clone()
    }

    /// Waits until the cluster has been asked `n` times.
    async fn wait_calls(&self, n: usize) {
        let mut rx = self.calls.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|c| c.len() >= n))
            .await
            .expect("the cluster must be asked to scale")
            .unwrap();
    }
}

#[async_trait]
impl JobCluster for TestCluster {
    async fn scale_workers(&self, workers: u32) -> Result<(), ClusterError> {
        self.calls.send_modify(|c| c.push(workers));
        if let Some(gate) = self
            .gate
            .as_ref()
            .filter(|_| self.gate_only.is_none_or(|only| only == workers))
        {
            gate.acquire().await.unwrap().forget();
        }
        match &self.refuse {
            Some(msg) => Err(ClusterError::Refused(msg.clone())),
            None => Ok(()),
        }
    }

    async fn end_job(&self, _state: JobState, _reason: &str) -> Result<(), ClusterError> {
        Ok(())
    }

    async fn describe_node(&self, node: NodeInfo) -> NodeInfo {
        match self.describe {
            Describe::Nothing => node,
            Describe::ByIp => NodeInfo {
                rack: format!("rack-{}", node.node_ip),
                datacenter: "dc-1".into(),
                ..node
            },
            Describe::Hang => std::future::pending().await,
        }
    }
}

struct Jm {
    addr: String,
    handle: tokio::task::JoinHandle<JobOutcome>,
}

fn config(job: &str, workers: u32) -> JobMasterConfig {
    let mut cfg = JobMasterConfig::new(job, TOKEN, workers);
    // These workers send no heartbeats.
    cfg.heartbeat_timeout = Duration::from_secs(120);
    cfg.max_restarts = 0;
    cfg
}

async fn start(cfg: JobMasterConfig, cluster: Option<Arc<TestCluster>>) -> Jm {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let cluster = cluster.map(|c| c as Arc<dyn JobCluster>);
    let handle = tokio::spawn(async move {
        t2_jobmaster::run_with(
            listener,
            cfg,
            Arc::new(MemoryStore::default()),
            cluster,
            std::future::pending(),
        )
        .await
        .unwrap()
    });
    Jm { addr, handle }
}

async fn outcome(jm: Jm) -> JobOutcome {
    tokio::time::timeout(WAIT, jm.handle)
        .await
        .expect("the job must end")
        .unwrap()
}

async fn scale(addr: &str, token: &str, workers: u32) -> Result<ScaleResult, tonic::Status> {
    let mut client = JobMasterClient::connect(addr.to_string()).await.unwrap();
    client
        .scale(ScaleParams {
            token: token.into(),
            num_workers: workers,
        })
        .await
        .map(|r| r.into_inner())
}

/// One worker stream, driven by hand.
struct Worker {
    tx: mpsc::UnboundedSender<WorkerToMaster>,
    rx: tonic::Streaming<MasterToWorker>,
    next_request: u64,
}

async fn try_join(addr: &str, job: &str, id: u32, node_ip: &str) -> Result<Worker, tonic::Status> {
    let mut client = JobMasterClient::connect(addr.to_string()).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(WorkerToMaster {
        body: Some(W::Register(RegisterParams {
            job_id: job.into(),
            token: TOKEN.into(),
            protocol_version: PROTOCOL_VERSION,
            info: Some(WorkerInfo {
                worker_id: id,
                host: "127.0.0.1".into(),
                port: 2000 + id,
                node: Some(NodeInfo {
                    node_ip: node_ip.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            reconnect: false,
        })),
    })
    .unwrap();
    let mut rx = client
        .attach(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    match tokio::time::timeout(WAIT, rx.next()).await {
        Ok(Some(Ok(MasterToWorker {
            body: Some(M::Registered(_)),
        }))) => {}
        other => panic!("worker {id}: expected Registered, got {other:?}"),
    }
    Ok(Worker {
        tx,
        rx,
        next_request: 1,
    })
}

async fn join(addr: &str, job: &str, id: u32) -> Worker {
    try_join(addr, job, id, "127.0.0.1").await.unwrap()
}

impl Worker {
    /// The next pushed message that `pick` accepts (heartbeats and others are skipped).
    async fn until<T>(&mut self, what: &str, mut pick: impl FnMut(&M) -> Option<T>) -> T {
        let wait = async {
            loop {
                match self.rx.next().await {
                    Some(Ok(MasterToWorker { body: Some(b) })) => {
                        if let Some(t) = pick(&b) {
                            return t;
                        }
                    }
                    Some(Ok(_)) => {}
                    other => panic!("stream ended while waiting for {what}: {other:?}"),
                }
            }
        };
        tokio::time::timeout(WAIT, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
    }

    async fn all_joined(&mut self) -> Vec<WorkerInfo> {
        self.until("AllJoined", |b| match b {
            M::AllJoined(j) => {
                Some(t2_proto::table::decode_single(j.piece, j.pieces, &j.table).unwrap())
            }
            _ => None,
        })
        .await
    }

    async fn job_scaled(&mut self) -> JobScaled {
        self.until("JobScaled", |b| match b {
            M::JobScaled(s) => Some(JobScaled {
                num_workers: s.num_workers,
                previous: s.previous,
            }),
            _ => None,
        })
        .await
    }

    fn send(&self, body: W) {
        self.tx.send(WorkerToMaster { body: Some(body) }).unwrap();
    }

    fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    /// Enters the DEFAULT barrier; returns the request ID.
    fn barrier(&mut self) -> u64 {
        let request_id = self.request_id();
        self.send(W::Barrier(BarrierParams {
            request_id,
            barrier_type: BarrierType::Default as i32,
            timeout_ms: 60_000,
        }));
        request_id
    }

    /// Lists the workers now; once answered, everything sent before was handled.
    async fn list_now(&mut self) -> Vec<WorkerInfo> {
        let request_id = self.request_id();
        self.send(W::ListWorkers(ListWorkersParams {
            request_id,
            wait_for_all: false,
        }));
        self.until("the worker list", |b| match b {
            M::Workers(r) if r.request_id == request_id => {
                Some(t2_proto::table::decode_single(r.piece, r.pieces, &r.table).unwrap())
            }
            _ => None,
        })
        .await
    }

    /// Reports a state and waits for the job master's acknowledgement.
    async fn report(&mut self, state: WorkerState) {
        self.send(W::StateChange(StateChangeParams {
            state: state as i32,
            exit_code: if state == WorkerState::Completed {
                0
            } else {
                1
            },
            reason: String::new(),
        }));
        self.until("the state acknowledgement", |b| match b {
            M::StateAck(a) if a.state == state as i32 => Some(()),
            _ => None,
        })
        .await
    }

    /// Every message until the job ends.
    async fn rest(mut self) -> Vec<M> {
        let mut seen = Vec::new();
        self.until("JobEnded", |b| {
            seen.push(b.clone());
            matches!(b, M::JobEnded(_)).then_some(())
        })
        .await;
        seen
    }
}

async fn watch(addr: &str) -> tonic::Streaming<JobStatus> {
    let mut client = JobMasterClient::connect(addr.to_string()).await.unwrap();
    client
        .watch(WatchParams {
            token: TOKEN.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn status_until(
    stream: &mut tonic::Streaming<JobStatus>,
    pick: impl Fn(&JobStatus) -> bool,
) -> JobStatus {
    tokio::time::timeout(WAIT, async {
        loop {
            let s = stream.next().await.expect("watch ended").unwrap();
            if pick(&s) {
                return s;
            }
        }
    })
    .await
    .expect("the status never showed what was expected")
}

fn ids(workers: &[WorkerInfo]) -> Vec<u32> {
    workers.iter().map(|w| w.worker_id).collect()
}

#[tokio::test]
async fn scaling_up_lets_new_workers_join_and_tells_everyone() {
    let cluster = Arc::new(TestCluster::new());
    let jm = start(config("job-up", 2), Some(cluster.clone())).await;
    let mut status = watch(&jm.addr).await;
    let mut w0 = join(&jm.addr, "job-up", 0).await;
    let mut w1 = join(&jm.addr, "job-up", 1).await;
    assert_eq!(ids(&w0.all_joined().await), vec![0, 1]);
    assert_eq!(ids(&w1.all_joined().await), vec![0, 1]);
    // Worker 2 does not belong to a job of 2 workers.
    let refused = try_join(&jm.addr, "job-up", 2, "127.0.0.1").await;
    assert_eq!(
        refused.err().map(|s| s.code()),
        Some(tonic::Code::InvalidArgument)
    );

    let result = scale(&jm.addr, TOKEN, 3).await.unwrap();
    assert_eq!((result.previous, result.num_workers), (2, 3), "{result:?}");
    assert_eq!(cluster.calls(), vec![3]);
    for w in [&mut w0, &mut w1] {
        let s = w.job_scaled().await;
        assert_eq!((s.num_workers, s.previous), (3, 2));
    }
    let s = status_until(&mut status, |s| s.num_workers == 3).await;
    assert_eq!(s.state(), JobState::Running, "the job stays running");

    let mut w2 = join(&jm.addr, "job-up", 2).await;
    for w in [&mut w0, &mut w1, &mut w2] {
        assert_eq!(ids(&w.all_joined().await), vec![0, 1, 2]);
    }
    status_until(&mut status, |s| s.joined == 3).await;
    for w in [&mut w0, &mut w1, &mut w2] {
        w.report(WorkerState::Completed).await;
    }
    assert_eq!(outcome(jm).await.state, JobState::JobCompleted);
}

#[tokio::test]
async fn scaling_down_removes_workers_without_failing_them() {
    let gate = Arc::new(Semaphore::new(0));
    let cluster = Arc::new(TestCluster {
        gate: Some(gate.clone()),
        ..TestCluster::new()
    });
    let jm = start(config("job-down", 3), Some(cluster.clone())).await;
    let mut status = watch(&jm.addr).await;
    let mut w0 = join(&jm.addr, "job-down", 0).await;
    let mut w1 = join(&jm.addr, "job-down", 1).await;
    let mut w2 = join(&jm.addr, "job-down", 2).await;
    for w in [&mut w0, &mut w1, &mut w2] {
        w.all_joined().await;
    }
    // Workers 0 and 1 wait on a barrier that only worker 2 is missing from.
    let b0 = w0.barrier();
    let b1 = w1.barrier();
    w0.list_now().await;
    w1.list_now().await;

    let addr = jm.addr.clone();
    let scaling = tokio::spawn(async move { scale(&addr, TOKEN, 2).await });
    cluster.wait_calls(1).await;
    // While the cluster works, a second scale is refused...
    let busy = scale(&jm.addr, TOKEN, 4).await.unwrap_err();
    assert_eq!(busy.code(), tonic::Code::FailedPrecondition);
    assert!(
        busy.message().contains("already being scaled from 3 to 2"),
        "{}",
        busy.message()
    );
    // ...and worker 2, being stopped, reports a failure: with max_restarts = 0 that would
    // fail the job if it counted.
    w2.report(WorkerState::Failed).await;
    drop(w2);
    gate.add_permits(1);
    let result = scaling.await.unwrap().unwrap();
    assert_eq!((result.previous, result.num_workers), (3, 2));
    assert_eq!(cluster.calls(), vec![2]);

    for (w, request_id) in [(&mut w0, b0), (&mut w1, b1)] {
        let s = w.job_scaled().await;
        assert_eq!((s.num_workers, s.previous), (2, 3));
        let r = w
            .until("the barrier outcome", |b| match b {
                M::Barrier(o) if o.request_id == request_id => Some(o.result()),
                _ => None,
            })
            .await;
        assert_eq!(r, BarrierResult::Success);
        assert_eq!(ids(&w.all_joined().await), vec![0, 1]);
    }
    let s = status_until(&mut status, |s| s.num_workers == 2).await;
    assert_eq!(ids(&s.workers), vec![0, 1]);
    w0.report(WorkerState::Completed).await;
    w1.report(WorkerState::Completed).await;
    let rest = w0.rest().await;
    assert!(
        !rest.iter().any(|m| matches!(m, M::WorkerFailed(_))),
        "a removed worker was reported failed: {rest:?}"
    );
    let out = outcome(jm).await;
    assert_eq!(out.state, JobState::JobCompleted, "{}", out.reason);
}

#[tokio::test]
async fn bad_scale_requests_are_refused_with_a_reason() {
    let cluster = Arc::new(TestCluster {
        refuse: Some("the namespace quota allows 4 worker pods".into()),
        ..TestCluster::new()
    });
    let mut cfg = config("job-r", 1);
    // The server outlives the job long enough to answer a late scale request.
    cfg.end_grace = Duration::from_secs(30);
    let jm = start(cfg, Some(cluster.clone())).await;
    let mut w0 = join(&jm.addr, "job-r", 0).await;
    w0.all_joined().await;

    let cases = [
        (
            "guess",
            2,
            tonic::Code::Unauthenticated,
            "a scale request presented a wrong job token for job 'job-r'",
        ),
        (
            TOKEN,
            0,
            tonic::Code::InvalidArgument,
            "cannot scale job job-r to 0 workers",
        ),
        (
            TOKEN,
            5,
            tonic::Code::FailedPrecondition,
            "cannot scale job job-r to 5 workers: the namespace quota allows 4 worker pods",
        ),
    ];
    for (token, workers, code, want) in cases {
        let status = scale(&jm.addr, token, workers).await.unwrap_err();
        assert_eq!(status.code(), code, "{}", status.message());
        assert!(status.message().contains(want), "{}", status.message());
    }
    // Only the valid request reached the cluster; the count did not change.
    assert_eq!(cluster.calls(), vec![5]);
    let same = scale(&jm.addr, TOKEN, 1).await.unwrap();
    assert_eq!((same.previous, same.num_workers), (1, 1));
    assert_eq!(cluster.calls(), vec![5], "a no-op does not ask the cluster");
    assert_eq!(ids(&w0.list_now().await), vec![0]);

    let mut status = watch(&jm.addr).await;
    let mut client = JobMasterClient::connect(jm.addr.clone()).await.unwrap();
    client
        .kill(KillParams {
            token: TOKEN.into(),
            reason: "done".into(),
        })
        .await
        .unwrap();
    status_until(&mut status, |s| s.state() == JobState::JobKilled).await;
    let ended = scale(&jm.addr, TOKEN, 2).await.unwrap_err();
    assert_eq!(ended.code(), tonic::Code::FailedPrecondition);
    assert!(
        ended.message().contains("job-r has ended"),
        "{}",
        ended.message()
    );
}

#[tokio::test]
async fn the_cluster_completes_each_workers_node() {
    let cluster = Arc::new(TestCluster {
        describe: Describe::ByIp,
        ..TestCluster::new()
    });
    let jm = start(config("job-n", 2), Some(cluster)).await;
    let mut w0 = try_join(&jm.addr, "job-n", 0, "10.0.0.7").await.unwrap();
    let _w1 = try_join(&jm.addr, "job-n", 1, "10.0.0.8").await.unwrap();
    let nodes: Vec<NodeInfo> = w0
        .all_joined()
        .await
        .into_iter()
        .map(|w| w.node.unwrap_or_default())
        .collect();
    let want = |ip: &str| NodeInfo {
        node_ip: ip.into(),
        rack: format!("rack-{ip}"),
        datacenter: "dc-1".into(),
    };
    assert_eq!(nodes, vec![want("10.0.0.7"), want("10.0.0.8")]);
}

#[tokio::test]
async fn a_cluster_that_cannot_describe_a_node_does_not_stop_registration() {
    let cluster = Arc::new(TestCluster {
        describe: Describe::Hang,
        ..TestCluster::new()
    });
    let jm = start(config("job-slow", 1), Some(cluster)).await;
    let mut w0 = try_join(&jm.addr, "job-slow", 0, "10.0.0.9").await.unwrap();
    let list = w0.all_joined().await;
    let node = list[0].node.clone().unwrap_or_default();
    assert_eq!(node.node_ip, "10.0.0.9", "the worker's own word stands");
    assert_eq!(node.rack, "");
}

#[tokio::test]
async fn a_cluster_that_does_not_answer_in_time_fails_the_scale_not_the_job() {
    // The cluster never answers the scale to 2, so it may still carry it out later: the job
    // master asks it for the old count again, which it does.
    let cluster = Arc::new(TestCluster {
        gate: Some(Arc::new(Semaphore::new(0))),
        gate_only: Some(2),
        ..TestCluster::new()
    });
    let mut cfg = config("job-t", 1);
    cfg.scale_timeout = Duration::from_millis(300);
    let jm = start(cfg, Some(cluster.clone())).await;
    let mut w0 = join(&jm.addr, "job-t", 0).await;
    w0.all_joined().await;
    let status = scale(&jm.addr, TOKEN, 2).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status
            .message()
            .contains("cannot scale job job-t to 2 workers: the cluster did not scale the workers within 300ms; the cluster was set back to 1 workers"),
        "{}",
        status.message()
    );
    assert_eq!(cluster.calls(), vec![2, 1]);
    // The job goes on with its one worker.
    assert_eq!(ids(&w0.list_now().await), vec![0]);
    w0.report(WorkerState::Completed).await;
    assert_eq!(outcome(jm).await.state, JobState::JobCompleted);
}

#[tokio::test]
async fn a_worker_added_by_scaling_that_never_joins_fails_the_job_by_its_deadline() {
    let mut cfg = config("job-late", 1);
    cfg.join_timeout = Duration::from_millis(500);
    let jm = start(cfg, None).await;
    let mut w0 = join(&jm.addr, "job-late", 0).await;
    w0.all_joined().await;
    assert_eq!(scale(&jm.addr, TOKEN, 2).await.unwrap().num_workers, 2);
    let out = outcome(jm).await;
    assert_eq!(out.state, JobState::JobFailed);
    assert!(
        out.reason
            .contains("worker 1, added by scaling the job to 2 workers, did not join within 500ms"),
        "{}",
        out.reason
    );
}
