//! The job master over real gRPC on loopback: who may register, and what a silent worker gets.

mod common;

use std::time::Duration;

use t2_jobmaster::JobMasterConfig;
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::{
    master_to_worker::Body as M, worker_to_master::Body as W, JobState, MasterToWorker,
    WatchParams, WorkerToMaster, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

use common::register;

async fn start(
    cfg: JobMasterConfig,
) -> (String, tokio::task::JoinHandle<t2_jobmaster::JobOutcome>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        t2_jobmaster::run(listener, cfg, std::future::pending())
            .await
            .unwrap()
    });
    (addr, handle)
}

/// The job master's outcome, which must come within `within`.
async fn outcome_of(
    jm: tokio::task::JoinHandle<t2_jobmaster::JobOutcome>,
    within: Duration,
) -> t2_jobmaster::JobOutcome {
    tokio::time::timeout(within, jm)
        .await
        .expect("job master must end")
        .unwrap()
}

/// Opens a worker stream; returns the sender and the response (or refusal).
async fn attach(
    addr: &str,
    first: WorkerToMaster,
) -> (
    mpsc::UnboundedSender<WorkerToMaster>,
    Result<tonic::Streaming<MasterToWorker>, tonic::Status>,
) {
    let mut client = JobMasterClient::connect(addr.to_string()).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(first).unwrap();
    let resp = client
        .attach(UnboundedReceiverStream::new(rx))
        .await
        .map(|r| r.into_inner());
    (tx, resp)
}

#[tokio::test]
async fn wrong_token_protocol_job_or_id_is_refused_with_a_reason() {
    let (addr, _jm) = start(JobMasterConfig::new("job-a", "secret", 2)).await;
    let cases = [
        (
            register("job-a", "guess", PROTOCOL_VERSION, 0),
            tonic::Code::Unauthenticated,
            "worker 0 presented a wrong job token for job 'job-a'",
        ),
        (
            register("job-a", "secret", PROTOCOL_VERSION + 1, 0),
            tonic::Code::FailedPrecondition,
            &format!(
                "speaks protocol version {}, this job master speaks {PROTOCOL_VERSION}",
                PROTOCOL_VERSION + 1
            ),
        ),
        (
            register("job-b", "secret", PROTOCOL_VERSION, 0),
            tonic::Code::FailedPrecondition,
            "belongs to job 'job-b'",
        ),
        (
            register("job-a", "secret", PROTOCOL_VERSION, 7),
            tonic::Code::InvalidArgument,
            "worker ID 7 is out of range",
        ),
    ];
    for (msg, code, want) in cases {
        let (_tx, resp) = attach(&addr, msg).await;
        let status = resp.expect_err("must be refused");
        assert_eq!(status.code(), code, "{}", status.message());
        assert!(status.message().contains(want), "{}", status.message());
    }
    // A good registration then works, and a second one for the same ID is refused.
    let (_tx, resp) = attach(&addr, register("job-a", "secret", PROTOCOL_VERSION, 0)).await;
    let mut stream = resp.unwrap();
    assert!(matches!(
        stream.next().await,
        Some(Ok(MasterToWorker {
            body: Some(M::Registered(_))
        }))
    ));
    let (_tx2, resp) = attach(&addr, register("job-a", "secret", PROTOCOL_VERSION, 0)).await;
    assert_eq!(resp.unwrap_err().code(), tonic::Code::AlreadyExists);
}

#[tokio::test]
async fn a_worker_closing_its_stream_is_lost_with_that_reason() {
    let mut cfg = JobMasterConfig::new("job-c", "t", 1);
    cfg.max_restarts = 0;
    let (addr, jm) = start(cfg).await;
    let (tx, resp) = attach(&addr, register("job-c", "t", PROTOCOL_VERSION, 0)).await;
    let _stream = resp.unwrap();
    // The worker ends its side of the stream without saying it finished.
    drop(tx);
    let outcome = outcome_of(jm, Duration::from_secs(10)).await;
    assert_eq!(outcome.state, JobState::JobFailed);
    assert!(
        outcome
            .reason
            .contains("worker 0 lost: it closed its stream to the job master"),
        "{}",
        outcome.reason
    );
}

#[tokio::test]
async fn a_silent_worker_is_declared_lost_and_the_job_fails_past_its_restarts() {
    let mut cfg = JobMasterConfig::new("job-h", "t", 1);
    cfg.heartbeat_interval = Duration::from_millis(50);
    cfg.heartbeat_timeout = Duration::from_millis(300);
    cfg.max_restarts = 0;
    let (addr, jm) = start(cfg).await;
    let mut client = JobMasterClient::connect(addr.clone()).await.unwrap();
    let mut watch = client
        .watch(WatchParams { token: "t".into() })
        .await
        .unwrap()
        .into_inner();
    // Registers, then never sends a heartbeat (a hung process keeps its socket open).
    let (_tx, resp) = attach(&addr, register("job-h", "t", PROTOCOL_VERSION, 0)).await;
    let _stream = resp.unwrap();
    let outcome = outcome_of(jm, Duration::from_secs(5)).await;
    assert_eq!(outcome.state, JobState::JobFailed);
    assert!(
        outcome.reason.contains("worker 0 lost: no heartbeat"),
        "{}",
        outcome.reason
    );
    assert!(
        outcome.reason.contains("max_restarts = 0"),
        "{}",
        outcome.reason
    );
    let mut last = None;
    while let Some(Ok(s)) = watch.next().await {
        last = Some(s);
    }
    assert_eq!(last.unwrap().state(), JobState::JobFailed);
}

#[tokio::test]
async fn nobody_joining_fails_the_job_at_its_join_deadline() {
    let mut cfg = JobMasterConfig::new("job-j", "t", 3);
    cfg.join_timeout = Duration::from_millis(300);
    let (addr, jm) = start(cfg).await;
    let (_tx, resp) = attach(&addr, register("job-j", "t", PROTOCOL_VERSION, 1)).await;
    let _s = resp.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(5), jm)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.state, JobState::JobFailed);
    assert!(
        outcome.reason.contains("only 1 of 3 workers joined")
            && outcome.reason.contains("missing worker(s) 0, 2"),
        "{}",
        outcome.reason
    );
}

/// The same worker (same restart count) reconnecting on a new stream, `reconnect: true`.
fn reconnect(job: &str, token: &str, id: u32) -> WorkerToMaster {
    let mut msg = register(job, token, PROTOCOL_VERSION, id);
    if let Some(W::Register(p)) = msg.body.as_mut() {
        p.reconnect = true;
    }
    msg
}

#[tokio::test]
async fn a_reconnect_replaces_a_stream_the_job_master_still_thinks_alive() {
    // A network blip: the worker's stream broke on its side, the job master has not noticed
    // (no failure yet), and the worker reconnects to the same job master.
    let mut cfg = JobMasterConfig::new("job-r", "t", 2);
    cfg.max_restarts = 0;
    let (addr, jm) = start(cfg).await;
    let (old_tx, resp) = attach(&addr, register("job-r", "t", PROTOCOL_VERSION, 0)).await;
    let mut old = resp.unwrap();
    assert!(matches!(
        old.next().await,
        Some(Ok(MasterToWorker {
            body: Some(M::Registered(_))
        }))
    ));
    // Not a reconnect: still refused while the old stream is registered.
    let (_tx, resp) = attach(&addr, register("job-r", "t", PROTOCOL_VERSION, 0)).await;
    assert_eq!(resp.unwrap_err().code(), tonic::Code::AlreadyExists);
    // A reconnect with the same restart count takes the worker's place.
    let (new_tx, resp) = attach(&addr, reconnect("job-r", "t", 0)).await;
    let mut new = resp.expect("a reconnect of the same worker must be accepted");
    assert!(matches!(
        new.next().await,
        Some(Ok(MasterToWorker {
            body: Some(M::Registered(_))
        }))
    ));
    // The old stream is dropped by the job master; its end is not a failure (max_restarts = 0
    // would fail the job), and the worker goes on through its new stream.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = old.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the job master must drop the stale stream");
    let (w1_tx, resp) = attach(&addr, register("job-r", "t", PROTOCOL_VERSION, 1)).await;
    let w1 = resp.unwrap();
    for (tx, mut stream) in [(&new_tx, new), (&w1_tx, w1)] {
        tx.send(WorkerToMaster {
            body: Some(W::StateChange(t2_proto::StateChangeParams {
                state: t2_proto::WorkerState::Completed as i32,
                exit_code: 0,
                reason: String::new(),
            })),
        })
        .unwrap();
        // Keep reading so the acknowledgement and the end of the job arrive.
        tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    }
    let outcome = outcome_of(jm, Duration::from_secs(10)).await;
    assert_eq!(outcome.state, JobState::JobCompleted, "{}", outcome.reason);
    drop(old_tx);
}
