//! The job master places workers from the job's topology lists over real gRPC on loopback:
//! rack and datacenter from each worker's node IP (its pod's `status.hostIP` on Kubernetes),
//! without asking the cluster (no node list); a worker list with each rack's workers together;
//! `unknown` for a node no list names, or a failed job when the lists are strict.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use t2_core::topology::{Datacenter, Rack, TopologySpec};
use t2_jobmaster::cluster::{ClusterError, JobCluster};
use t2_jobmaster::store::MemoryStore;
use t2_jobmaster::JobMasterConfig;
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::{
    master_to_worker::Body as M, worker_to_master::Body as W, JobState, MasterToWorker, NodeInfo,
    RegisterParams, WorkerInfo, WorkerToMaster, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

/// A cluster that counts how often it is asked to describe a node (labels would list nodes).
#[derive(Default)]
struct Counting {
    described: AtomicU32,
}

#[async_trait]
impl JobCluster for Counting {
    async fn scale_workers(&self, _: u32) -> Result<(), ClusterError> {
        Ok(())
    }
    async fn end_job(&self, _: JobState, _: &str) -> Result<(), ClusterError> {
        Ok(())
    }
    async fn describe_node(&self, node: NodeInfo) -> NodeInfo {
        self.described.fetch_add(1, Ordering::SeqCst);
        NodeInfo {
            rack: "from-labels".into(),
            ..node
        }
    }
}

fn lists(strict: bool) -> TopologySpec {
    let rack = |name: &str, nodes: &[&str]| Rack {
        name: name.into(),
        nodes: nodes.iter().map(|n| n.to_string()).collect(),
    };
    TopologySpec {
        datacenters: vec![
            Datacenter {
                name: "dc1".into(),
                racks: vec!["blue".into()],
            },
            Datacenter {
                name: "dc2".into(),
                racks: vec!["green".into()],
            },
        ],
        racks: vec![
            rack("green", &["10.0.2.1", "10.0.2.2"]),
            rack("blue", &["10.0.1.1"]),
        ],
        strict,
        ..TopologySpec::default()
    }
}

async fn start(
    cfg: JobMasterConfig,
    cluster: Arc<Counting>,
) -> (String, tokio::task::JoinHandle<t2_jobmaster::JobOutcome>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let cluster: Arc<dyn JobCluster> = cluster;
        t2_jobmaster::run_with(
            listener,
            cfg,
            Arc::new(MemoryStore::default()),
            Some(cluster),
            std::future::pending(),
        )
        .await
        .unwrap()
    });
    (addr, handle)
}

/// Registers worker `id` on node `ip`; returns its sender and stream (or the refusal).
async fn join(
    addr: &str,
    job: &str,
    id: u32,
    ip: &str,
) -> (
    mpsc::UnboundedSender<WorkerToMaster>,
    Result<tonic::Streaming<MasterToWorker>, tonic::Status>,
) {
    let first = WorkerToMaster {
        body: Some(W::Register(RegisterParams {
            job_id: job.into(),
            token: "t".into(),
            protocol_version: PROTOCOL_VERSION,
            info: Some(WorkerInfo {
                worker_id: id,
                host: ip.into(),
                port: 1000 + id,
                node: Some(NodeInfo {
                    node_ip: ip.into(),
                    ..NodeInfo::default()
                }),
                ..Default::default()
            }),
            reconnect: false,
        })),
    };
    let mut client = JobMasterClient::connect(addr.to_string()).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(first).unwrap();
    let resp = client
        .attach(UnboundedReceiverStream::new(rx))
        .await
        .map(|r| r.into_inner());
    (tx, resp)
}

/// The worker list pushed once all have joined.
async fn all_joined(stream: &mut tonic::Streaming<MasterToWorker>) -> Vec<WorkerInfo> {
    let deadline = std::time::Duration::from_secs(10);
    loop {
        let next = tokio::time::timeout(deadline, stream.next())
            .await
            .expect("the worker list within 10 s");
        match next {
            Some(Ok(MasterToWorker {
                body: Some(M::AllJoined(a)),
            })) => return t2_proto::table::decode_single(a.piece, a.pieces, &a.table).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("stream ended before the worker list: {other:?}"),
        }
    }
}

#[tokio::test]
async fn workers_are_placed_from_the_lists_and_listed_rack_by_rack() {
    let mut cfg = JobMasterConfig::new("job-t", "t", 5);
    cfg.topology = Some(lists(false));
    let cluster = Arc::new(Counting::default());
    let (addr, _jm) = start(cfg, cluster.clone()).await;
    // Worker IDs do not follow racks: 0 and 3 are green, 1 is blue, 2 is on no listed node.
    let nodes = [
        "10.0.2.1",
        "10.0.1.1",
        "192.168.9.9",
        "10.0.2.2",
        "192.168.9.9",
    ];
    let mut held = Vec::new();
    for (id, ip) in nodes.iter().enumerate() {
        let (tx, resp) = join(&addr, "job-t", id as u32, ip).await;
        held.push((tx, resp.expect("registered")));
    }
    let list = all_joined(&mut held[0].1).await;
    let got: Vec<(u32, String, String, String)> = list
        .iter()
        .map(|w| {
            let n = w.node.clone().unwrap_or_default();
            (w.worker_id, n.node_ip, n.rack, n.datacenter)
        })
        .collect();
    let want = [
        (1, "10.0.1.1", "blue", "dc1"),
        (0, "10.0.2.1", "green", "dc2"),
        (3, "10.0.2.2", "green", "dc2"),
        (2, "192.168.9.9", "unknown", "unknown"),
        (4, "192.168.9.9", "unknown", "unknown"),
    ];
    let want: Vec<(u32, String, String, String)> = want
        .iter()
        .map(|(i, n, r, d)| (*i, n.to_string(), r.to_string(), d.to_string()))
        .collect();
    assert_eq!(got, want);
    // The lists were enough: the cluster (node labels) was never asked.
    assert_eq!(cluster.described.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn without_lists_the_cluster_describes_nodes() {
    let cluster = Arc::new(Counting::default());
    let (addr, _jm) = start(JobMasterConfig::new("job-l", "t", 1), cluster.clone()).await;
    let (_tx, resp) = join(&addr, "job-l", 0, "10.0.2.1").await;
    let list = all_joined(&mut resp.expect("registered")).await;
    assert_eq!(list[0].node.clone().unwrap_or_default().rack, "from-labels");
    assert_eq!(cluster.described.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn strict_lists_fail_the_job_for_a_worker_on_an_unlisted_node() {
    let mut cfg = JobMasterConfig::new("job-s", "t", 2);
    cfg.topology = Some(lists(true));
    let (addr, jm) = start(cfg, Arc::new(Counting::default())).await;
    let (_tx, ok) = join(&addr, "job-s", 0, "10.0.1.1").await;
    assert!(ok.is_ok());
    let (_tx, refused) = join(&addr, "job-s", 1, "192.168.9.9").await;
    let status = refused.expect_err("refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let want = "worker 1 runs on node 192.168.9.9, which no rack in topology.racks lists, and topology.strict is true";
    assert!(status.message().contains(want), "{}", status.message());
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), jm)
        .await
        .expect("the job ends")
        .unwrap();
    assert_eq!(outcome.state, JobState::JobFailed);
    assert!(outcome.reason.contains(want), "{}", outcome.reason);
}
