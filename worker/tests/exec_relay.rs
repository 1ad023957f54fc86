//! The MPI exec relay against a real job master and a real target agent service on loopback:
//! a session through worker 0's socket runs a command on worker 1 (stdin in, stdout out, in
//! frames of at most `EXEC_CHUNK` bytes), and a frame longer than `MAX_EXEC_FRAME` from the
//! local client ends the session with an error line and ends the remote command. With the
//! job's agent certificate (`tls: true`) the session runs over TLS, and a relay that does not
//! trust the job's CA, or dials in plaintext, gets no session.
#![cfg(feature = "agent")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use t2_core::tls::rustls::ServerConfig;
use t2_jobmaster::store::MemoryStore;
use t2_jobmaster::JobMasterConfig;
use t2_proto::{NodeInfo, RegisterParams, WorkerInfo, WorkerState, PROTOCOL_VERSION};
use t2_worker::agent::dial::Dialer;
use t2_worker::agent::exec::{ExecEnv, ExecService, Known};
use t2_worker::agent::link::Link;
use t2_worker::agent::socket::{self, Served};
use t2_worker::agent::AgentTls;
use t2_worker::local_api::{
    ExecFrameIn, ExecFrameOut, Identity, Request, EXEC_CHUNK, MAX_EXEC_FRAME,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// The tests run one at a time: an agent service ends every process below its own process
/// that it did not start (a stray), and the tests' services share this test process, so two at
/// once would end each other's commands.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const JOB: &str = "job-relay";
const TOKEN: &str = "relay-token";
/// Deadline of every wait in these tests.
const WAIT: Duration = Duration::from_secs(20);

fn params(id: u32, host: &str, agent_port: u32) -> RegisterParams {
    RegisterParams {
        job_id: JOB.into(),
        token: TOKEN.into(),
        protocol_version: PROTOCOL_VERSION,
        info: Some(WorkerInfo {
            worker_id: id,
            host: host.into(),
            port: 3000 + id,
            node: Some(NodeInfo::default()),
            restart_count: 0,
            state: WorkerState::Started as i32,
            agent_port,
        }),
        reconnect: false,
    }
}

type Kept = Vec<Box<dyn std::any::Any + Send>>;

/// A job master, worker 1's agent service on 127.0.0.1 (over TLS with `service_tls`) and
/// worker 0's socket, whose relay dials with `peers`; returns the socket's path (and what
/// must stay alive).
async fn two_workers(
    service_tls: Option<Arc<ServerConfig>>,
    peers: Dialer,
) -> (std::path::PathBuf, Kept) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let mut cfg = JobMasterConfig::new(JOB, TOKEN, 2);
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.join_timeout = Duration::from_secs(30);
    tokio::spawn(t2_jobmaster::run_with(
        listener,
        cfg,
        Arc::new(MemoryStore::default()),
        None,
        std::future::pending(),
    ));
    let work = tempfile::tempdir().unwrap();
    let (_ready_tx, ready) = tokio::sync::watch::channel(Some(Arc::new(ExecEnv {
        dir: work.path().to_path_buf(),
        env: BTreeMap::new(),
    })));
    let service_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = service_listener.local_addr().unwrap().port();
    let service = ExecService::new(JOB, TOKEN, 1, ready, Arc::new(Known::default()))
        .serve(service_listener, service_tls);
    let w0 = Link::connect(&addr, params(0, "127.9.9.9", 0), WAIT, false)
        .await
        .unwrap();
    let w1 = Link::connect(&addr, params(1, "127.0.0.1", u32::from(port)), WAIT, false)
        .await
        .unwrap();
    let sock = work.path().join("agent.sock");
    let server = socket::serve(
        &sock,
        Served {
            link: w0.clone(),
            identity: Identity {
                job_id: JOB.into(),
                worker_id: 0,
                num_workers: 2,
                restart_count: 0,
            },
            barrier_timeouts: (WAIT, WAIT),
            join_timeout: WAIT,
            token: TOKEN.into(),
            peers,
        },
    )
    .unwrap();
    (
        sock,
        vec![
            Box::new(work),
            Box::new(_ready_tx),
            Box::new(AbortOnDrop(service)),
            Box::new(AbortOnDrop(server)),
            Box::new(w0),
            Box::new(w1),
        ],
    )
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn line<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut t = serde_json::to_vec(v).unwrap();
    t.push(b'\n');
    t
}

/// Asks for an exec session for `command` on 127.0.0.1 (worker 1); returns its frames.
async fn open(
    sock: &std::path::Path,
    command: &str,
) -> (Lines<BufReader<OwnedReadHalf>>, OwnedWriteHalf) {
    let (read, mut write) = UnixStream::connect(sock).await.unwrap().into_split();
    let req = Request::Exec {
        host: "127.0.0.1".into(),
        command: command.into(),
    };
    write.write_all(&line(&req)).await.unwrap();
    (BufReader::new(read).lines(), write)
}

/// Opens an exec session for `command` on 127.0.0.1 (worker 1); returns the started pid.
async fn session(
    sock: &std::path::Path,
    command: &str,
) -> (Lines<BufReader<OwnedReadHalf>>, OwnedWriteHalf, u32) {
    let (mut lines, write) = open(sock, command).await;
    match next(&mut lines).await {
        ExecFrameOut::Started { worker_id, pid } => {
            assert_eq!(worker_id, 1);
            (lines, write, pid)
        }
        other => panic!("expected started, got {other:?}"),
    }
}

async fn next(lines: &mut Lines<BufReader<OwnedReadHalf>>) -> ExecFrameOut {
    let text = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a frame within the deadline")
        .unwrap()
        .expect("the session closed early");
    assert!(
        text.len() <= MAX_EXEC_FRAME,
        "a frame of {} bytes",
        text.len()
    );
    serde_json::from_str(&text).unwrap()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_runs_on_the_other_worker_and_a_too_long_frame_ends_it_and_its_command() {
    let _serial = SERIAL.lock().await;
    // Both workers are registered once their links connected, so the relay finds worker 1.
    let (sock, _keep) = two_workers(None, Dialer::plain()).await;

    // Output larger than one frame comes in pieces of at most EXEC_CHUNK bytes.
    let (mut lines, _w, _) = session(&sock, "head -c 200000 /dev/zero").await;
    let mut total = 0;
    loop {
        match next(&mut lines).await {
            ExecFrameOut::Stdout { hex } => {
                let n = hex::decode(hex).unwrap().len();
                assert!(n <= EXEC_CHUNK, "{n} bytes in one frame");
                total += n;
            }
            ExecFrameOut::Exit { code, description } => {
                assert_eq!(code, 0, "{description}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(total, 200_000);

    // stdin reaches the command; then a frame past the bound ends the session.
    let (mut lines, mut write, pid) = session(&sock, "cat").await;
    let hello = ExecFrameIn::Stdin {
        hex: hex::encode(b"hello\n"),
    };
    write.write_all(&line(&hello)).await.unwrap();
    match next(&mut lines).await {
        ExecFrameOut::Stdout { hex } => assert_eq!(hex::decode(hex).unwrap(), b"hello\n"),
        other => panic!("expected cat's output, got {other:?}"),
    }
    assert!(alive(pid), "cat (pid {pid}) runs until stdin ends");
    let mut long = b"{\"op\":\"stdin\",\"hex\":\"".to_vec();
    long.extend(std::iter::repeat_n(b'6', MAX_EXEC_FRAME + 10));
    long.extend(b"\"}\n");
    // The relay stops reading past the bound, so the rest may never be taken: write in the
    // background.
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&long).await;
        write
    });
    match next(&mut lines).await {
        ExecFrameOut::Error { message } => assert!(
            message.contains(&format!("longer than {MAX_EXEC_FRAME} bytes")),
            "{message}"
        ),
        other => panic!("expected an error frame, got {other:?}"),
    }
    // The remote command was ended with the session.
    let start = std::time::Instant::now();
    while alive(pid) {
        assert!(start.elapsed() < WAIT, "cat (pid {pid}) still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And the connection is closed after the error.
    let end = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap();
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
    writer.abort();
}

/// Sends `hello` to `cat` through a session and checks it comes back, then ends stdin and
/// expects exit 0.
async fn echo_through(sock: &std::path::Path) {
    let (mut lines, mut write, _) = session(sock, "cat").await;
    let hello = ExecFrameIn::Stdin {
        hex: hex::encode(b"hello over tls\n"),
    };
    write.write_all(&line(&hello)).await.unwrap();
    match next(&mut lines).await {
        ExecFrameOut::Stdout { hex } => {
            assert_eq!(hex::decode(hex).unwrap(), b"hello over tls\n")
        }
        other => panic!("expected cat's output, got {other:?}"),
    }
    write
        .write_all(&line(&ExecFrameIn::StdinClosed))
        .await
        .unwrap();
    match next(&mut lines).await {
        ExecFrameOut::Exit { code, .. } => assert_eq!(code, 0),
        other => panic!("expected cat's exit, got {other:?}"),
    }
}

/// The first frame of a session that must not start: its error message.
async fn refused(sock: &std::path::Path) -> String {
    let (mut lines, _write) = open(sock, "echo should-not-run").await;
    match next(&mut lines).await {
        ExecFrameOut::Error { message } => message,
        other => panic!("expected no session, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_agents_certificate_sessions_run_over_tls_and_nothing_else_reaches_the_service() {
    let _serial = SERIAL.lock().await;
    let certs = t2_core::tls::mint(JOB, &t2_core::tls::local_names()).unwrap();
    let tls = AgentTls::from_pem(
        &certs.ca_pem,
        "ca.crt",
        &certs.agent_cert_pem,
        &certs.agent_key_pem,
        "agent.crt",
    )
    .unwrap();
    let (sock, _keep) = two_workers(Some(tls.server.clone()), tls.peers.clone()).await;
    echo_through(&sock).await;

    // A relay trusting another job's CA: refused at once, naming the certificate.
    let other = t2_core::tls::mint("other-job", &t2_core::tls::local_names()).unwrap();
    let stranger = Dialer::agents(&other.ca_pem, "the other job's ca.crt").unwrap();
    let (sock, _keep2) = two_workers(Some(tls.server.clone()), stranger).await;
    let message = refused(&sock).await;
    assert!(message.contains("not signed by"), "{message}");
    assert!(
        message.contains("the agent at https://127.0.0.1:"),
        "{message}"
    );

    // A plaintext relay never gets a session (its token goes nowhere in the clear).
    let (sock, _keep3) = two_workers(Some(tls.server.clone()), Dialer::plain()).await;
    let message = refused(&sock).await;
    assert!(
        message.contains("cannot reach the agent of worker 1")
            || message.contains("worker 1 refused to run the command"),
        "{message}"
    );

    // Another job's agent certificate is not one this job's relay trusts either.
    let impostor = AgentTls::from_pem(
        &other.ca_pem,
        "ca.crt",
        &other.agent_cert_pem,
        &other.agent_key_pem,
        "agent.crt",
    )
    .unwrap();
    let (sock, _keep4) = two_workers(Some(impostor.server), tls.peers.clone()).await;
    let message = refused(&sock).await;
    assert!(message.contains("not signed by"), "{message}");
}
