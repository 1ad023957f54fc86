//! The caller's side of running a command on another worker: an `exec` request on the local
//! socket (from `t2 worker rsh`, which mpirun runs) is carried to the target worker's agent
//! service ([`super::exec`]) with the job's token, which never leaves the agents (over TLS
//! in a job with `tls: true`, checking the agents' certificate). Frames are
//! relayed both ways until the command exits; the local client going away closes the gRPC
//! stream, which ends the remote command. Every frame from the local client is read with a
//! bound ([`MAX_EXEC_FRAME`]): a longer one ends the session with an `error` frame (and the
//! remote command), and output reaches the client in frames of at most [`EXEC_CHUNK`] bytes.

use std::time::{Duration, Instant};

use futures::StreamExt;
use t2_proto::agent::agent_client::AgentClient;
use t2_proto::agent::{exec_input::Body as In, exec_output::Body as Out, ExecInput, ExecStart};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use super::dial::{DialError, Dialer};
use super::socket::{read_line, LineRead, Served};
use crate::local_api::{ExecFrameIn, ExecFrameOut, EXEC_CHUNK, MAX_EXEC_FRAME};

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

/// Sends `bytes` as frames of at most [`EXEC_CHUNK`] bytes each.
async fn send_output(
    write: &mut OwnedWriteHalf,
    bytes: &[u8],
    frame: fn(String) -> ExecFrameOut,
) -> std::io::Result<()> {
    for piece in bytes.chunks(EXEC_CHUNK) {
        send(write, &frame(hex::encode(piece))).await?;
    }
    Ok(())
}

/// Reads the local client's frames and passes them on to the target until the client leaves
/// (`None`) or sends a frame longer than [`MAX_EXEC_FRAME`] (why, as one line).
async fn forward(
    mut reader: BufReader<OwnedReadHalf>,
    tx: mpsc::Sender<ExecInput>,
) -> Option<String> {
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line(&mut reader, &mut line, MAX_EXEC_FRAME).await {
            Ok(LineRead::Line) => {}
            Ok(LineRead::End) | Err(_) => return None,
            Ok(LineRead::TooLong) => {
                warn!(
                    limit = MAX_EXEC_FRAME,
                    "exec frame too long; ending the session"
                );
                return Some(format!(
                    "exec frame longer than {MAX_EXEC_FRAME} bytes; send stdin in pieces of at most {EXEC_CHUNK} bytes (as t2 worker rsh does)"
                ));
            }
        }
        let body = match serde_json::from_slice::<ExecFrameIn>(&line) {
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
            return None;
        }
    }
}

/// Serves one `exec` request: runs `command` on the worker whose host is `host`.
pub async fn relay(
    reader: BufReader<OwnedReadHalf>,
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
    let scheme = if served.peers.is_tls() {
        "https"
    } else {
        "http"
    };
    let addr = format!("{scheme}://{}", join_host_port(host, target.agent_port));
    let channel = match connect(&served.peers, &addr).await {
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
    let mut forwarder = tokio::spawn(forward(reader, tx));
    let mut forwarding = true;
    let result = loop {
        let next = tokio::select! {
            next = outputs.next() => next,
            ended = &mut forwarder, if forwarding => {
                forwarding = false;
                match ended {
                    // Dropping the stream on the way out ends the remote command.
                    Ok(Some(message)) => break send(&mut write, &fail(message)).await,
                    _ => continue,
                }
            }
        };
        let sent = match next {
            Some(Ok(o)) => match o.body {
                Some(Out::Started(s)) => {
                    send(
                        &mut write,
                        &ExecFrameOut::Started {
                            worker_id: target_id,
                            pid: s.pid,
                        },
                    )
                    .await
                }
                Some(Out::Stdout(b)) => {
                    send_output(&mut write, &b, |hex| ExecFrameOut::Stdout { hex }).await
                }
                Some(Out::Stderr(b)) => {
                    send_output(&mut write, &b, |hex| ExecFrameOut::Stderr { hex }).await
                }
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
        if let Err(e) = sent {
            // The local client is gone; dropping the stream ends the remote command.
            break Err(e);
        }
    };
    forwarder.abort();
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

async fn connect(dialer: &Dialer, addr: &str) -> Result<tonic::transport::Channel, String> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(20);
    loop {
        let endpoint = tonic::transport::Endpoint::from_shared(addr.to_string())
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        match dialer.channel(endpoint).await {
            Ok(c) => return Ok(c),
            // A certificate the job's CA did not sign, or no TLS: retrying cannot help.
            Err(DialError::Final(e)) => return Err(e),
            Err(DialError::NotYet(e)) if started.elapsed() < CONNECT_DEADLINE => {
                debug!(error = %e, "target agent not reachable yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
            Err(DialError::NotYet(e)) => {
                return Err(format!("gave up after {CONNECT_DEADLINE:?}: {e}"))
            }
        }
    }
}
