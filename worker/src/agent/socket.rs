//! The agent's Unix socket: serves the local API (see [`crate::local_api`]) by forwarding each
//! request to the job master link.

use std::path::Path;
use std::time::Duration;

use t2_proto::{BarrierResult, BarrierType, WorkerInfo};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, Semaphore};
use tracing::{debug, warn};

use super::link::{Link, Pushed};
use crate::local_api::{EventLine, Identity, Request, Response, WorkerEntry};

/// Everything a request needs.
#[derive(Clone)]
pub struct Served {
    /// The job master link.
    pub link: Link,
    /// Who this worker is (its `num_workers` is replaced by the link's current count).
    pub identity: Identity,
    /// Default timeouts of the DEFAULT and INIT barriers.
    pub barrier_timeouts: (Duration, Duration),
    /// How long a `workers --wait` may wait.
    pub join_timeout: Duration,
    /// The job token, for running commands on other workers' agents (never sent to clients).
    pub token: String,
}

/// The longest request line the socket reads, a `send` message included (1 MiB); a longer
/// one gets an error answer and the connection is closed.
pub const MAX_LINE: usize = 1 << 20;

/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 256;

/// Binds `path` and serves until the task is dropped.
pub fn serve(path: &Path, served: Served) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    let slots = std::sync::Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        loop {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let served = served.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(stream, served).await {
                    debug!(error = %e, "local API connection ended");
                }
                drop(slot);
            });
        }
    }))
}

async fn handle(stream: UnixStream, served: Served) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = MAX_LINE as u64 + 1;
        if (&mut reader)
            .take(limit)
            .read_until(b'\n', &mut line)
            .await?
            == 0
        {
            return Ok(());
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > MAX_LINE {
            warn!(
                limit = MAX_LINE,
                "local API request too long; closing the connection"
            );
            let msg = format!(
                "request longer than {MAX_LINE} bytes; send shorter messages (e.g. a file name)"
            );
            return reply(&mut write, &failure(msg)).await;
        }
        let resp = match serde_json::from_slice::<Request>(&line) {
            Ok(Request::Events) => {
                return stream_events(write, served.link.events.subscribe()).await
            }
            Ok(Request::Exec { host, command }) => {
                return super::relay::relay(reader.lines(), write, &served, &host, &command).await
            }
            Ok(req) => answer(req, &served).await,
            Err(e) => failure(format!("bad request: {e}")),
        };
        reply(&mut write, &resp).await?;
    }
}

/// Writes one answer line.
async fn reply(write: &mut OwnedWriteHalf, resp: &Response) -> std::io::Result<()> {
    let mut text = serde_json::to_string(resp).unwrap_or_else(|_| "{\"ok\":false}".into());
    text.push('\n');
    write.write_all(text.as_bytes()).await
}

fn failure(msg: String) -> Response {
    Response {
        ok: false,
        error: Some(msg),
        ..Default::default()
    }
}

fn entry(w: &WorkerInfo) -> WorkerEntry {
    let node = w.node.clone().unwrap_or_default();
    WorkerEntry {
        id: w.worker_id,
        host: w.host.clone(),
        port: w.port,
        node: node.node_ip,
        rack: node.rack,
        datacenter: node.datacenter,
        restart_count: w.restart_count,
    }
}

async fn answer(req: Request, s: &Served) -> Response {
    match req {
        Request::Info => Response {
            ok: true,
            info: Some(Identity {
                num_workers: s.link.num_workers(),
                ..s.identity.clone()
            }),
            ..Default::default()
        },
        Request::Workers { wait } => match s.link.list_workers(wait, s.join_timeout).await {
            Ok(ws) => Response {
                ok: true,
                workers: Some(ws.iter().map(entry).collect()),
                ..Default::default()
            },
            Err(e) => failure(e.to_string()),
        },
        Request::Barrier { timeout_ms, .. }
            if Duration::from_millis(timeout_ms) > t2_core::duration::MAX_WAIT =>
        {
            failure(format!(
                "barrier timeout {timeout_ms}ms is too long: at most {}",
                t2_core::duration::format_duration(t2_core::duration::MAX_WAIT)
            ))
        }
        Request::Barrier { init, timeout_ms } => {
            let (t, default) = if init {
                (BarrierType::Init, s.barrier_timeouts.1)
            } else {
                (BarrierType::Default, s.barrier_timeouts.0)
            };
            match s
                .link
                .barrier(t, Duration::from_millis(timeout_ms), default)
                .await
            {
                Ok(o) => {
                    let result = o.result();
                    let name = match result {
                        BarrierResult::Success => "SUCCESS",
                        BarrierResult::TimedOut => "TIMED_OUT",
                        BarrierResult::JobFaulty => "JOB_FAULTY",
                        BarrierResult::Unspecified => "UNSPECIFIED",
                    };
                    if result == BarrierResult::Success {
                        Response {
                            ok: true,
                            result: Some(name.into()),
                            ..Default::default()
                        }
                    } else {
                        Response {
                            ok: false,
                            result: Some(name.into()),
                            error: Some(format!("{name}: {}", o.reason)),
                            ..Default::default()
                        }
                    }
                }
                Err(e) => failure(e.to_string()),
            }
        }
        Request::Send { message } => match s.link.send_message(message.into_bytes()) {
            Ok(()) => Response {
                ok: true,
                ..Default::default()
            },
            Err(e) => failure(e.to_string()),
        },
        Request::Events => failure("events is a stream".into()),
        Request::Exec { .. } => failure("exec is a stream".into()),
    }
}

async fn stream_events(
    mut write: OwnedWriteHalf,
    mut events: broadcast::Receiver<Pushed>,
) -> std::io::Result<()> {
    loop {
        let line = match events.recv().await {
            Ok(Pushed::AllJoined(ws)) => EventLine::AllJoined {
                num_workers: ws.len() as u32,
            },
            Ok(Pushed::WorkerFailed(worker_id, reason)) => {
                EventLine::WorkerFailed { worker_id, reason }
            }
            Ok(Pushed::WorkerRestarted(i)) => EventLine::WorkerRestarted {
                worker_id: i.worker_id,
                restart_count: i.restart_count,
            },
            Ok(Pushed::Message(m)) => EventLine::Message {
                message: String::from_utf8_lossy(&m).into(),
            },
            Ok(Pushed::JobEnded(e)) => EventLine::JobEnded {
                // The names `t2 status` uses (COMPLETED, FAILED, KILLED), not the enum's.
                state: e
                    .state()
                    .as_str_name()
                    .trim_start_matches("JOB_")
                    .to_string(),
                reason: e.reason,
            },
            Ok(Pushed::Reconnected) => EventLine::JobMasterRestarted {},
            Ok(Pushed::JobScaled {
                num_workers,
                previous,
            }) => EventLine::JobScaled {
                num_workers,
                previous,
            },
            Ok(Pushed::Ack(_)) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        };
        let mut text = serde_json::to_string(&line).unwrap_or_default();
        text.push('\n');
        write.write_all(text.as_bytes()).await?;
    }
}
