//! TLS between agents and a real job master on loopback (real gRPC, the job's certificate
//! from `t2_core::tls::mint`): workers trusting the job's CA register and pass a barrier; a
//! worker given another CA, or checking another name, is refused with one line naming the
//! certificate problem; a plaintext client cannot register at all.
#![cfg(feature = "agent")]

use std::time::Duration;

use t2_core::tls::{local_names, mint, server_config, JobCerts, ALPN_H2};
use t2_jobmaster::JobMasterConfig;
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::{
    worker_to_master::Body as W, BarrierType, NodeInfo, RegisterParams, WorkerInfo, WorkerState,
    WorkerToMaster, PROTOCOL_VERSION,
};
use t2_worker::agent::dial::Dialer;
use t2_worker::agent::link::Link;
use t2_worker::agent::AgentError;

const TOKEN: &str = "t";
/// Deadline of every wait in these tests.
const WAIT: Duration = Duration::from_secs(15);

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

/// A job master of `workers` workers serving TLS with a new certificate for `job`; its
/// address (`https://127.0.0.1:PORT`) and the certificate.
async fn tls_job_master(job: &str, workers: u32) -> (String, JobCerts) {
    let certs = mint(job, &local_names()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("https://{}", listener.local_addr().unwrap());
    let mut cfg = JobMasterConfig::new(job, TOKEN, workers);
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.tls = Some(server_config(&certs.cert_pem, &certs.key_pem, &[ALPN_H2], "test").unwrap());
    tokio::spawn(t2_jobmaster::run(listener, cfg, std::future::pending()));
    (addr, certs)
}

#[tokio::test]
async fn workers_trusting_the_jobs_ca_register_and_pass_a_barrier() {
    let (addr, certs) = tls_job_master("job-tls", 2).await;
    let dialer = Dialer::tls(&certs.ca_pem, "ca.crt").unwrap();
    let w0 = Link::connect_with(&dialer, &addr, params("job-tls", 0), WAIT, false)
        .await
        .expect("worker 0 registers over TLS");
    let w1 = Link::connect_with(&dialer, &addr, params("job-tls", 1), WAIT, false)
        .await
        .expect("worker 1 registers over TLS");
    let (a, b) = tokio::join!(
        w0.barrier(BarrierType::Default, WAIT, WAIT),
        w1.barrier(BarrierType::Default, WAIT, WAIT)
    );
    assert_eq!(a.unwrap().result, t2_proto::BarrierResult::Success as i32);
    assert_eq!(b.unwrap().result, t2_proto::BarrierResult::Success as i32);
    assert_eq!(w0.list_workers(true, WAIT).await.unwrap().len(), 2);
}

/// The error of a refused registration: a final refusal, on one line.
fn refusal(r: Result<Link, AgentError>) -> String {
    match r {
        Err(AgentError::Refused(why)) => {
            assert!(!why.contains('\n'), "more than one line: {why:?}");
            why
        }
        Err(other) => panic!("not a final refusal: {other}"),
        Ok(_) => panic!("registered with an untrusted job master"),
    }
}

#[tokio::test]
async fn a_worker_given_another_jobs_ca_is_refused_naming_the_certificate_problem() {
    let (addr, _) = tls_job_master("job-a", 1).await;
    let other = mint("job-b", &local_names()).unwrap();
    let dialer = Dialer::tls(&other.ca_pem, "/jobs/job-b/ca.crt").unwrap();
    let started = std::time::Instant::now();
    let why = refusal(Link::connect_with(&dialer, &addr, params("job-a", 0), WAIT, false).await);
    assert!(
        why.contains("certificate that is not signed by the job's CA (/jobs/job-b/ca.crt)"),
        "{why}"
    );
    assert!(why.contains(&addr), "names the job master: {why}");
    // Final: not retried until the deadline.
    assert!(started.elapsed() < WAIT, "retried a certificate problem");
}

#[tokio::test]
async fn a_worker_checking_another_name_is_refused() {
    let (addr, certs) = tls_job_master("job-n", 1).await;
    let dialer = Dialer::tls(&certs.ca_pem, "ca.crt")
        .unwrap()
        .with_server_name("job-n-jm.elsewhere.svc");
    let why = refusal(Link::connect_with(&dialer, &addr, params("job-n", 0), WAIT, false).await);
    assert!(why.contains("not valid for the name"), "{why}");
}

#[tokio::test]
async fn a_plaintext_client_cannot_register_with_a_tls_job_master() {
    let (addr, certs) = tls_job_master("job-p", 1).await;
    let plain = addr.replace("https://", "http://");
    // A raw gRPC client: the registration (with the token) never reaches the job master.
    let registered = async {
        let mut client = JobMasterClient::connect(plain.clone()).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(WorkerToMaster {
            body: Some(W::Register(params("job-p", 0))),
        })
        .await?;
        let mut inbound = client
            .attach(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok::<_, Box<dyn std::error::Error>>(inbound.message().await?)
    };
    match tokio::time::timeout(WAIT, registered).await {
        Ok(Ok(Some(m))) => panic!("a plaintext client was answered: {m:?}"),
        Ok(_) => {}
        Err(_) => panic!("no answer at all within {WAIT:?} (expected a refused connection)"),
    }
    // The agent's own plaintext link gives up within its deadline too.
    let r = Link::connect(&plain, params("job-p", 0), Duration::from_secs(1), false).await;
    assert!(r.is_err(), "a plaintext agent registered");
    // And the job master still serves workers that trust its CA.
    let dialer = Dialer::tls(&certs.ca_pem, "ca.crt").unwrap();
    Link::connect_with(&dialer, &addr, params("job-p", 0), WAIT, false)
        .await
        .expect("a TLS worker registers after the plaintext attempts");
}
