//! The caller's side of running a command on another worker: an `exec` request on the local
//! socket (from `t2 worker rsh`, which mpirun runs) is carried to the target worker's agent
//! service ([`super::exec`]) with the job's token, which never leaves the agents. Frames are
//! relayed both ways until the command exits; the local client going away closes the gRPC
//! stream, which ends the remote command.

use std::time::{Duration, Instant};

use futures::StreamExt;
use t2_proto::agent::agent_client::AgentClient;
use t2_proto::agent::{exec_input::Body as In, exec_output::Body as Out, ExecInput, ExecStart};
use tokio::io::{AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info};

use super::socket::Served;
use crate::local_api::{ExecFrameIn, ExecFrameOut};

/// How long reaching the target agent may take (it may still be starting its service).
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// How long the job master may take to give the worker list.
const LIST_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames buffered towards the target.
const QUEUE: usize = 64;

async fn send(write: &mut OwnedWriteHalf, frame: &ExecFrameOut) -> std::io::Result<()> {
    let mut text = serde_json::to_string(frame).unwrap_or_default();
    text.push('\n');
    write.write_all(text.as_bytes()).await
}

/// Serves one `exec` request: runs `command` on the worker whose host is `host`.
pub async fn relay(
    mut lines: Lines<BufReader<OwnedReadHalf>>,
    mut write: OwnedWriteHalf,
    served: &Served,
    host: &str,
    command: &str,
) -> std::io::Result<()> {
    let fail = |message: String| ExecFrameOut::Error { message };
    let workers = match served.link.list_workers(false, LIST_TIMEOUT).await {
        Ok(w) => w,
        Err(e) => return send(&mut write, &fail(format!("cannot list the workers: {e}"))).await,
    };
    let Some(target) = workers.iter().find(|w| w.host == host) else {
        let hosts: Vec<&str> = workers.iter().map(|w| w.host.as_str()).collect();
        let msg = format!(
            "no worker of job {} has host '{host}' (hosts: {})",
            served.identity.job_id,
            hosts.join(", ")
        );
        return send(&mut write, &fail(msg)).await;
    };
    if target.agent_port == 0 {
        let msg = format!(
            "worker {} ({host}) runs no agent service; only MPI jobs (mpi: true) have one",
            target.worker_id
        );
        return send(&mut write, &fail(msg)).await;
    }
    let addr = format!("http://{}", join_host_port(host, target.agent_port));
    let channel = match connect(&addr).await {
        Ok(c) => c,
        Err(e) => {
            let msg = format!(
                "cannot reach the agent of worker {} at {addr}: {e}",
                target.worker_id
            );
            return send(&mut write, &fail(msg)).await;
        }
    };
    let (tx, rx) = mpsc::channel::<ExecInput>(QUEUE);
    let start = ExecStart {
        job_id: served.identity.job_id.clone(),
        token: served.token.clone(),
        from_worker: served.identity.worker_id,
        command: command.to_string(),
    };
    let _ = tx
        .send(ExecInput {
            body: Some(In::Start(start)),
        })
        .await;
    let mut client = AgentClient::new(channel);
    let mut outputs = match client.exec(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            let msg = format!(
                "worker {} refused to run the command: {}",
                target.worker_id,
                s.message()
            );
            return send(&mut write, &fail(msg)).await;
        }
    };
    info!(target_worker = target.worker_id, %host, "running a command on another worker");
    let target_id = target.worker_id;
    // The local client's frames go to the target; its leaving drops `tx`, which closes the
    // stream and makes the target end the command.
    let forward = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let body = match serde_json::from_str::<ExecFrameIn>(&line) {
                Ok(ExecFrameIn::Stdin { hex }) => match hex::decode(hex) {
                    Ok(b) => In::Stdin(b),
                    Err(_) => continue,
                },
                Ok(ExecFrameIn::StdinClosed) => In::StdinClosed(true),
                Ok(ExecFrameIn::Signal { signal }) => In::Signal(signal),
                Err(e) => {
                    debug!(error = %e, "bad exec frame ignored");
                    continue;
                }
            };
            if tx.send(ExecInput { body: Some(body) }).await.is_err() {
                return;
            }
        }
    });
    let result = loop {
        let frame = match outputs.next().await {
            Some(Ok(o)) => match o.body {
                Some(Out::Started(s)) => ExecFrameOut::Started {
                    worker_id: target_id,
                    pid: s.pid,
                },
                Some(Out::Stdout(b)) => ExecFrameOut::Stdout {
                    hex: hex::encode(b),
                },
                Some(Out::Stderr(b)) => ExecFrameOut::Stderr {
                    hex: hex::encode(b),
                },
                Some(Out::Exit(e)) => {
                    break send(
                        &mut write,
                        &ExecFrameOut::Exit {
                            code: e.code,
                            description: e.description,
                        },
                    )
                    .await
                }
                None => continue,
            },
            Some(Err(s)) => {
                break send(
                    &mut write,
                    &fail(format!(
                        "the session with worker {target_id} broke: {}",
                        s.message()
                    )),
                )
                .await
            }
            None => {
                break send(
                    &mut write,
                    &fail(format!(
                        "worker {target_id} ended the session without an exit status"
                    )),
                )
                .await
            }
        };
        if let Err(e) = send(&mut write, &frame).await {
            // The local client is gone; dropping the stream ends the remote command.
            break Err(e);
        }
    };
    forward.abort();
    result
}

/// `host:port`, with brackets for an IPv6 address.
fn join_host_port(host: &str, port: u32) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn connect(addr: &str) -> Result<tonic::transport::Channel, String> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(20);
    loop {
        let endpoint = tonic::transport::Endpoint::from_shared(addr.to_string())
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        match endpoint.connect().await {
            Ok(c) => return Ok(c),
            Err(e) if started.elapsed() < CONNECT_DEADLINE => {
                debug!(error = %e, "target agent not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(e) => return Err(format!("gave up after {CONNECT_DEADLINE:?}: {e}")),
        }
    }
}
