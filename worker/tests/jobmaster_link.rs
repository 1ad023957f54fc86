//! The agent's link against real job masters on loopback: a scaled job reaches the program as
//! an event line and a new count, and a job master restarted at the same address (no
//! ZooKeeper) gets its workers back without counting restarts.
#![cfg(feature = "agent")]

use std::sync::Arc;
use std::time::Duration;

use t2_jobmaster::store::{JobStateStore, MemoryStore};
use t2_jobmaster::{JobMasterConfig, JobOutcome};
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::{
    BarrierResult, BarrierType, JobState, NodeInfo, RegisterParams, ScaleParams, WorkerInfo,
    WorkerState, PROTOCOL_VERSION,
};
use t2_worker::agent::finder::reconnect_same_address;
use t2_worker::agent::link::{Link, Pushed};
use t2_worker::agent::socket::{self, Served};
use t2_worker::local_api::{EventLine, Identity, Request, Response};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

const TOKEN: &str = "t";
/// Deadline of every wait in these tests.
const WAIT: Duration = Duration::from_secs(15);

fn config(job: &str, workers: u32) -> JobMasterConfig {
    let mut cfg = JobMasterConfig::new(job, TOKEN, workers);
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.heartbeat_timeout = Duration::from_secs(3);
    cfg.join_timeout = Duration::from_secs(30);
    cfg.max_restarts = 0;
    cfg
}

fn params(job: &str, id: u32) -> RegisterParams {
    RegisterParams {
        job_id: job.into(),
        token: TOKEN.into(),
        protocol_version: PROTOCOL_VERSION,
        info: Some(WorkerInfo {
            worker_id: id,
            host: "127.0.0.1".into(),
            port: 3000 + id,
            node: Some(NodeInfo::default()),
            restart_count: 0,
            state: WorkerState::Started as i32,
            agent_port: 0,
        }),
        reconnect: false,
    }
}

async fn scale(addr: &str, workers: u32) -> (u32, u32) {
    let mut client = JobMasterClient::connect(addr.to_string()).await.unwrap();
    let r = client
        .scale(ScaleParams {
            token: TOKEN.into(),
            num_workers: workers,
        })
        .await
        .unwrap()
        .into_inner();
    (r.previous, r.num_workers)
}

/// Waits until the link's worker list (from AllJoined) has `n` workers.
async fn all_joined(link: &Link, n: usize) {
    let mut workers = link.workers.clone();
    tokio::time::timeout(
        WAIT,
        workers.wait_for(|w| w.as_ref().is_some_and(|w| w.len() == n)),
    )
    .await
    .unwrap_or_else(|_| panic!("no AllJoined with {n} workers"))
    .unwrap();
}

async fn serve_job_master(
    listener: tokio::net::TcpListener,
    cfg: JobMasterConfig,
    store: Arc<dyn JobStateStore>,
) -> JobOutcome {
    t2_jobmaster::run_with(listener, cfg, store, None, std::future::pending())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_agent_turns_job_scaled_into_an_event_line_and_a_new_count() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve_job_master(
        listener,
        config("job-ev", 2),
        Arc::new(MemoryStore::default()),
    ));
    let w0 = Link::connect(&addr, params("job-ev", 0), WAIT, false)
        .await
        .unwrap();
    let w1 = Link::connect(&addr, params("job-ev", 1), WAIT, false)
        .await
        .unwrap();
    all_joined(&w0, 2).await;

    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let server = socket::serve(
        &sock,
        Served {
            link: w0.clone(),
            identity: Identity {
                job_id: "job-ev".into(),
                worker_id: 0,
                num_workers: 2,
                restart_count: 0,
            },
            barrier_timeouts: (WAIT, WAIT),
            join_timeout: WAIT,
            token: String::new(),
            peers: t2_worker::agent::dial::Dialer::plain(),
        },
    )
    .unwrap();
    let stream = UnixStream::connect(&sock).await.unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(b"{\"op\":\"events\"}\n").await.unwrap();
    let mut lines = BufReader::new(read).lines();
    // The stream is live once a message from worker 1 comes through it.
    tokio::time::timeout(WAIT, async {
        loop {
            w1.send_message(b"ping".to_vec()).unwrap();
            if let Ok(line) =
                tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await
            {
                let line = line.unwrap().expect("event stream closed");
                let ev: EventLine = serde_json::from_str(&line).unwrap();
                assert_eq!(
                    ev,
                    EventLine::Message {
                        message: "ping".into()
                    }
                );
                return;
            }
        }
    })
    .await
    .expect("the event stream never carried a message");

    assert_eq!(scale(&addr, 3).await, (2, 3));
    let scaled = tokio::time::timeout(WAIT, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("event stream closed");
            let ev: EventLine = serde_json::from_str(&line).unwrap();
            if matches!(ev, EventLine::JobScaled { .. }) {
                return (ev, line);
            }
        }
    })
    .await
    .expect("no job_scaled event");
    assert_eq!(
        scaled.0,
        EventLine::JobScaled {
            num_workers: 3,
            previous: 2
        }
    );
    assert!(
        scaled.1.contains("\"event\":\"job_scaled\""),
        "what `t2 worker events` prints: {}",
        scaled.1
    );
    assert_eq!(w0.num_workers(), 3);

    // `info` answers with the new count.
    let mut info = UnixStream::connect(&sock).await.unwrap();
    let mut req = serde_json::to_string(&Request::Info).unwrap();
    req.push('\n');
    info.write_all(req.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, BufReader::new(info).read_line(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let resp: Response = serde_json::from_str(&answer).unwrap();
    assert_eq!(resp.info.unwrap().num_workers, 3);
    server.abort();
}

/// Binds `addr` again once the crashed job master's socket is gone.
async fn bind_again(addr: std::net::SocketAddr) -> tokio::net::TcpListener {
    tokio::time::timeout(WAIT, async {
        loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => return l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await
    .expect("the crashed job master's port never became free")
}

#[tokio::test]
async fn a_job_master_restarted_at_the_same_address_gets_its_workers_back() {
    let store = Arc::new(MemoryStore::default());
    // The first job master runs on a runtime of its own, so it can crash: dropping the
    // runtime drops its tasks and closes its sockets, like a killed process.
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let sock_addr = std_listener.local_addr().unwrap();
    let addr = format!("http://{sock_addr}");
    let store1: Arc<dyn JobStateStore> = store.clone();
    first.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
        serve_job_master(listener, config("job-rs", 1), store1).await
    });

    let w0 = Link::connect(&addr, params("job-rs", 0), WAIT, true)
        .await
        .unwrap();
    all_joined(&w0, 1).await;
    // Scaled to 2 before the crash: the restarted job master must know (it is configured
    // with the submitted count, 1).
    let mut events = w0.events.subscribe();
    assert_eq!(scale(&addr, 2).await, (1, 2));
    tokio::time::timeout(WAIT, async {
        while !matches!(
            events.recv().await,
            Ok(Pushed::JobScaled { num_workers: 2, .. })
        ) {}
    })
    .await
    .expect("worker 0 never heard of the scale");
    let w1 = Link::connect(&addr, params("job-rs", 1), WAIT, true)
        .await
        .unwrap();
    all_joined(&w1, 2).await;
    // A request in flight across the restart.
    let waiting = {
        let w0 = w0.clone();
        tokio::spawn(async move { w0.barrier(BarrierType::Default, WAIT, WAIT).await })
    };

    first.shutdown_background();
    for w in [&w0, &w1] {
        let mut closed = w.closed.clone();
        tokio::time::timeout(WAIT, closed.wait_for(|c| c.is_some()))
            .await
            .expect("the link must notice the crash")
            .unwrap();
    }
    let second = tokio::spawn(serve_job_master(
        bind_again(sock_addr).await,
        config("job-rs", 1),
        store.clone(),
    ));
    let (r0, r1) = tokio::join!(
        reconnect_same_address(&w0, &addr, WAIT),
        reconnect_same_address(&w1, &addr, WAIT)
    );
    r0.unwrap();
    r1.unwrap();

    let b1 = w1.barrier(BarrierType::Default, WAIT, WAIT).await.unwrap();
    assert_eq!(b1.result(), BarrierResult::Success, "{}", b1.reason);
    let b0 = waiting.await.unwrap().unwrap();
    assert_eq!(b0.result(), BarrierResult::Success, "{}", b0.reason);
    let listed = w0.list_workers(true, WAIT).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|w| w.restart_count == 0),
        "reconnecting is not restarting: {listed:?}"
    );

    for w in [&w0, &w1] {
        assert!(
            w.report(WorkerState::Completed, 0, String::new(), WAIT)
                .await
        );
    }
    let outcome = tokio::time::timeout(WAIT, second)
        .await
        .expect("the restarted job master must end the job")
        .unwrap();
    assert_eq!(outcome.state, JobState::JobCompleted, "{}", outcome.reason);
    let recorded = store.workers().await.unwrap();
    assert_eq!(
        recorded
            .iter()
            .map(|w| (w.worker_id, w.restart_count, w.state()))
            .collect::<Vec<_>>(),
        vec![
            (0, 0, WorkerState::Completed),
            (1, 0, WorkerState::Completed)
        ]
    );
}
