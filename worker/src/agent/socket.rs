//! The agent's Unix socket: serves the local API (see [`crate::local_api`]) by forwarding each
//! request to the job master link.

use std::path::Path;
use std::time::Duration;

use t2_proto::{BarrierResult, BarrierType, WorkerInfo};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
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
    /// How other workers' agents are dialled (TLS in an MPI job with `tls: true`).
    pub peers: super::dial::Dialer,
}

/// The longest request line the socket reads, a `send` message included (1 MiB); a longer
/// one gets an error answer and the connection is closed.
pub const MAX_LINE: usize = 1 << 20;

/// Connections served at once; more wait to be accepted.
pub const MAX_CONNECTIONS: usize = 256;

/// What [`read_line`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRead {
    /// A line (in the buffer, without its newline; the last one may lack it).
    Line,
    /// The other side closed the connection.
    End,
    /// The line is longer than the limit (what was read of it is in the buffer).
    TooLong,
}

/// Reads one line of at most `limit` bytes into `line`, never buffering more than `limit + 1`
/// bytes of it: a peer cannot make the agent hold an endless line. `line` must be empty when
/// a line starts (clear it after using one). Cancel-safe: a call cancelled part-way leaves
/// what it read in `line`, and the next call goes on from there.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<LineRead> {
    let room = (limit + 1).saturating_sub(line.len());
    let n = if room == 0 {
        0
    } else {
        reader.take(room as u64).read_until(b'\n', line).await?
    };
    if line.last() == Some(&b'\n') {
        line.pop();
        Ok(LineRead::Line)
    } else if line.len() > limit {
        Ok(LineRead::TooLong)
    } else if n == 0 && line.is_empty() {
        Ok(LineRead::End)
    } else {
        // The last line, without a newline.
        Ok(LineRead::Line)
    }
}

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
        match read_line(&mut reader, &mut line, MAX_LINE).await? {
            LineRead::End => return Ok(()),
            LineRead::Line => {}
            LineRead::TooLong => {
                warn!(
                    limit = MAX_LINE,
                    "local API request too long; closing the connection"
                );
                let msg = format!(
                    "request longer than {MAX_LINE} bytes; send shorter messages (e.g. a file name)"
                );
                return reply(&mut write, &failure(msg)).await;
            }
        }
        let resp = match serde_json::from_slice::<Request>(&line) {
            Ok(Request::Events) => {
                return stream_events(write, served.link.events.subscribe()).await
            }
            Ok(Request::Exec { host, command }) => {
                return super::relay::relay(reader, write, &served, &host, &command).await
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

/// The name [`WorkerEntry::state`] gives a worker state.
pub fn state_name(s: t2_proto::WorkerState) -> &'static str {
    use t2_proto::WorkerState as S;
    match s {
        S::Unspecified => "PENDING",
        S::Started => "STARTED",
        S::Restarted => "RESTARTED",
        S::Completed => "COMPLETED",
        S::Failed => "FAILED",
        S::Killed => "KILLED",
        S::FullyFailed => "FULLY_FAILED",
    }
}

/// A worker as the local API describes it.
pub(crate) fn entry(w: &WorkerInfo) -> WorkerEntry {
    let node = w.node.clone().unwrap_or_default();
    WorkerEntry {
        id: w.worker_id,
        host: w.host.clone(),
        port: w.port,
        node: node.node_ip,
        rack: node.rack,
        datacenter: node.datacenter,
        restart_count: w.restart_count,
        state: state_name(w.state()).to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_are_read_up_to_the_limit_and_no_further() {
        let input: &[u8] = b"short\nexactly-10\nfar-too-long-line\n";
        let mut r = BufReader::new(input);
        let mut line = Vec::new();
        assert_eq!(
            read_line(&mut r, &mut line, 10).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(line, b"short");
        line.clear();
        assert_eq!(
            read_line(&mut r, &mut line, 10).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(line, b"exactly-10");
        line.clear();
        assert_eq!(
            read_line(&mut r, &mut line, 10).await.unwrap(),
            LineRead::TooLong
        );
        // No more than the limit and one byte was taken from the peer.
        assert_eq!(line.len(), 11);
        let mut last = BufReader::new(&b"no newline"[..]);
        line.clear();
        assert_eq!(
            read_line(&mut last, &mut line, 10).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(line, b"no newline");
        line.clear();
        assert_eq!(
            read_line(&mut last, &mut line, 10).await.unwrap(),
            LineRead::End
        );
    }

    #[tokio::test]
    async fn a_cancelled_read_keeps_what_it_read_and_the_limit_counts_it() {
        let (client, server) = tokio::io::duplex(64);
        let mut r = BufReader::new(server);
        let (mut w, mut line) = (client, Vec::new());
        w.write_all(b"{\"op\":").await.unwrap();
        // Cancelled before the line ends (as a select! in `t2 worker rsh` may do).
        let cut =
            tokio::time::timeout(Duration::from_millis(50), read_line(&mut r, &mut line, 12)).await;
        assert!(cut.is_err());
        assert_eq!(line, b"{\"op\":");
        w.write_all(b"\"x\"}\n").await.unwrap();
        assert_eq!(
            read_line(&mut r, &mut line, 12).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(line, b"{\"op\":\"x\"}");
        // The part read before a cancel counts towards the limit.
        line.clear();
        w.write_all(b"0123456").await.unwrap();
        let _ =
            tokio::time::timeout(Duration::from_millis(50), read_line(&mut r, &mut line, 12)).await;
        w.write_all(b"789abcdef\n").await.unwrap();
        assert_eq!(
            read_line(&mut r, &mut line, 12).await.unwrap(),
            LineRead::TooLong
        );
        assert_eq!(line.len(), 13);
    }
}
