//! One exec session of the fake API server, as the kubelet runs it: the WebSocket upgrade
//! with the channel subprotocol, then the command as a real process — stdin frames
//! (channel 0) into it, its stdout and stderr out on channels 1 and 2, its exit status as a
//! `v1.Status` on channel 3, then a close.

use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::json;
use t2_kubernetes::incluster::env::PACKAGE_PATH_OVERRIDE;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::fake_api::{Behaviour, ExecCall, FakePod, Protocol, Shared};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;

fn refuse(st: &Shared, code: u16, why: &str) -> Response {
    st.unexpected.lock().unwrap().push(why.to_string());
    Response::builder()
        .status(code)
        .body(Body::from(why.to_string()))
        .unwrap()
}

/// Records the exec request `req` for `pod` and switches it to a WebSocket session.
pub async fn accept(
    st: Arc<Shared>,
    pod: String,
    query: &[(String, String)],
    mut req: Request,
) -> Response {
    let headers = req.headers().clone();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let call = ExecCall {
        pod: pod.clone(),
        container: param("container"),
        command: query
            .iter()
            .filter(|(n, _)| n == "command")
            .map(|(_, v)| v.clone())
            .collect(),
        streams: (
            param("stdin").as_deref() == Some("true"),
            param("stdout").as_deref() == Some("true"),
            param("stderr").as_deref() == Some("true"),
        ),
        protocols: header("sec-websocket-protocol"),
    };
    st.execs.lock().unwrap().push(call.clone());
    let key = header("sec-websocket-key");
    if !header("upgrade").eq_ignore_ascii_case("websocket") || key.is_empty() {
        return refuse(&st, 400, "exec without a WebSocket upgrade");
    }
    let proto = st.protocol.as_str();
    if !call.protocols.split(',').any(|p| p.trim() == proto) {
        return refuse(&st, 400, &format!("exec not offering {proto}"));
    }
    let Some(setup) = st.pods.get(&pod).cloned() else {
        return refuse(&st, 404, "no such pod");
    };
    st.begin();
    let mut open = Open(Some(st.clone()));
    if setup.behaviour == Behaviour::HangBeforeUpgrade {
        // Ends only when the client gives up and the connection is dropped.
        std::future::pending::<()>().await;
    }
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(up) = upgrade.await {
            let ws = WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Server, None).await;
            session(&st, &setup, &call.command, ws, &mut open).await;
        }
    });
    Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .header("sec-websocket-protocol", proto)
        .body(Body::empty())
        .unwrap()
}

/// An open session; it counts as ended once [`Open::close`] ran or it is dropped.
struct Open(Option<Arc<Shared>>);

impl Open {
    fn close(&mut self) {
        if let Some(st) = self.0.take() {
            st.end();
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.close();
    }
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::binary(v)
}

/// The `v1.Status` the kubelet sends on channel 3 when the command ends.
fn exit_status(s: ExitStatus) -> Vec<u8> {
    let v = match s.code() {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        code => {
            let code = code.map_or("signal".to_string(), |c| c.to_string());
            json!({"metadata": {}, "status": "Failure",
                   "message": format!("command terminated with non-zero exit code: exit status {code}"),
                   "reason": "NonZeroExitCode",
                   "details": {"causes": [{"reason": "ExitCode", "message": code}]}})
        }
    };
    v.to_string().into_bytes()
}

async fn forward(mut r: impl AsyncRead + Unpin, channel: u8, tx: mpsc::UnboundedSender<Message>) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 || tx.send(frame(channel, &buf[..n])).is_err() {
            return;
        }
    }
}

async fn session<S>(
    st: &Shared,
    pod: &FakePod,
    command: &[String],
    ws: WebSocketStream<S>,
    open: &mut Open,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    if pod.behaviour == Behaviour::HangAfterUpgrade {
        while let Some(Ok(_)) = stream.next().await {}
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    // The API server opens each channel with an empty frame.
    for ch in [STDOUT, STDERR, STATUS] {
        let _ = tx.send(frame(ch, &[]));
    }
    let spawned = Command::new(&st.exe)
        .args(command.iter().skip(1))
        .env(PACKAGE_PATH_OVERRIDE, &pod.dest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(c) if command.first().map(String::as_str) == Some("t2") => c,
        _ => {
            let msg = format!("exec: {command:?}: executable file not found");
            let st = json!({"metadata": {}, "status": "Failure", "message": msg});
            let _ = tx.send(frame(STATUS, st.to_string().as_bytes()));
            drop(tx);
            let _ = writer.await;
            return;
        }
    };
    let mut child_in = child.stdin.take();
    let limit = match pod.behaviour {
        Behaviour::TruncateAfter(n) => Some(n),
        _ => None,
    };
    let v4 = st.protocol == Protocol::V4;
    // Client → process. Ends when the client closes the session (with v4 that is also how
    // it says stdin is done) or goes away.
    let mut pump = tokio::spawn(async move {
        let mut taken = 0usize;
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Binary(b) = msg else {
                if matches!(msg, Message::Close(_)) {
                    return;
                }
                continue;
            };
            match (b.first(), b.get(1)) {
                (Some(&STDIN), _) if b.len() > 1 => {
                    let data = &b[1..];
                    if let Some(w) = child_in.as_mut() {
                        let room = limit.map_or(data.len(), |l| (l - taken).min(data.len()));
                        if w.write_all(&data[..room]).await.is_err() {
                            child_in = None;
                        }
                        taken += room;
                        if limit == Some(taken) {
                            child_in = None;
                        }
                    }
                }
                (Some(&CLOSE), Some(&STDIN)) if !v4 => child_in = None,
                _ => {}
            }
        }
    });
    let out = tokio::spawn(forward(child.stdout.take().unwrap(), STDOUT, tx.clone()));
    let err = tokio::spawn(forward(child.stderr.take().unwrap(), STDERR, tx.clone()));
    tokio::select! {
        status = child.wait() => {
            let _ = out.await;
            let _ = err.await;
            if let Some(gate) = &st.gate {
                gate.acquire().await.unwrap().forget();
            }
            let Ok(status) = status else { return };
            if status.success() {
                st.mark_running(&pod.name);
            }
            // Closed before the client can hear the answer and open its next session.
            open.close();
            let _ = tx.send(frame(STATUS, &exit_status(status)));
            drop(tx);
            let _ = writer.await;
            // A WebSocket close handshake: keep taking what the client still sends until it
            // has read the answer and goes (dropping the connection at once would make its
            // kernel discard the unread answer).
            if pod.behaviour != Behaviour::RunThenDrop {
                let _ = tokio::time::timeout(Duration::from_secs(20), &mut pump).await;
            }
            pump.abort();
        }
        _ = &mut pump => {
            // The client closed the session: the API server tears it down, and the
            // process's answer is lost.
            let _ = child.kill().await;
            writer.abort();
        }
    }
}
