//! `t2 worker rsh HOST CMD…`: a remote shell for OpenMPI (`--mca plm_rsh_agent`). It asks
//! its own agent (over `T2_AGENT_SOCKET`) to run `CMD…` on the worker whose host is HOST, as
//! `ssh HOST CMD…` would: the words are joined with spaces and run by `/bin/sh -c` there.
//! stdin, stdout and stderr stream through; SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and
//! SIGUSR2 are forwarded to the remote command's process group; the exit code is the remote
//! command's, or 255 when it could not be run (as ssh does). If this process dies or its
//! parent (mpirun) does, the connection closes and the agents end the remote command.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::socket::{read_line, LineRead};
use crate::local_api::{ExecFrameIn, ExecFrameOut, Request, EXEC_CHUNK, MAX_EXEC_FRAME};

/// The exit code for "could not run it" (ssh's).
pub const RSH_FAILED: i32 = 255;
/// How long after forwarding a terminating signal this process waits for the remote command
/// to end before it leaves (which ends the remote command too).
const AFTER_TERM: Duration = Duration::from_secs(3);

/// Runs `words` on `host` through the agent at `socket`; returns the exit code to use.
pub async fn run(socket: &Path, host: &str, words: &[String]) -> i32 {
    // Die with mpirun: a SIGKILLed mpirun must not leave this session open.
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM);
    match session(socket, host, &words.join(" ")).await {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("t2 worker rsh: {msg}");
            RSH_FAILED
        }
    }
}

fn line<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut text = serde_json::to_string(v).unwrap_or_default();
    text.push('\n');
    text.into_bytes()
}

async fn session(socket: &Path, host: &str, command: &str) -> Result<i32, String> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|e| format!("cannot reach the t2 agent at {}: {e}", socket.display()))?;
    let (read, mut write) = stream.into_split();
    let request = Request::Exec {
        host: host.to_string(),
        command: command.to_string(),
    };
    write
        .write_all(&line(&request))
        .await
        .map_err(|e| format!("cannot talk to the t2 agent: {e}"))?;

    // Everything this process sends goes through one writer task, in order.
    let (tx, mut rx) = mpsc::channel::<ExecFrameIn>(64);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if write.write_all(&line(&frame)).await.is_err() {
                return;
            }
        }
    });
    let stdin_tx = tx.clone();
    let stdin = tokio::spawn(async move {
        let mut input = tokio::io::stdin();
        let mut buf = vec![0u8; EXEC_CHUNK];
        loop {
            match input.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = stdin_tx.send(ExecFrameIn::StdinClosed).await;
                    return;
                }
                Ok(n) => {
                    let hex = hex::encode(&buf[..n]);
                    if stdin_tx.send(ExecFrameIn::Stdin { hex }).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let (term_tx, mut term_rx) = mpsc::channel::<i32>(8);
    for kind in [
        SignalKind::terminate(),
        SignalKind::interrupt(),
        SignalKind::hangup(),
        SignalKind::quit(),
        SignalKind::user_defined1(),
        SignalKind::user_defined2(),
    ] {
        let Ok(mut sig) = signal(kind) else { continue };
        let (tx, term_tx) = (tx.clone(), term_tx.clone());
        let n = kind.as_raw_value();
        tokio::spawn(async move {
            while sig.recv().await.is_some() {
                let _ = tx.send(ExecFrameIn::Signal { signal: n }).await;
                if [libc_term(), libc_int(), libc_hup()].contains(&n) {
                    let _ = term_tx.send(n).await;
                }
            }
        });
    }
    drop(tx);

    let mut reader = BufReader::new(read);
    let mut frame = Vec::new();
    let mut out = tokio::io::stdout();
    let mut err = tokio::io::stderr();
    let mut leave_at: Option<(tokio::time::Instant, i32)> = None;
    let result = loop {
        let deadline = async {
            match leave_at {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            next = read_line(&mut reader, &mut frame, MAX_EXEC_FRAME) => match next {
                Ok(LineRead::TooLong) => break Err(format!("the t2 agent sent a frame longer than {MAX_EXEC_FRAME} bytes")),
                Ok(LineRead::Line) => match serde_json::from_slice::<ExecFrameOut>(&std::mem::take(&mut frame)) {
                    Ok(ExecFrameOut::Stdout { hex }) => {
                        let _ = out.write_all(&hex::decode(hex).unwrap_or_default()).await;
                        let _ = out.flush().await;
                    }
                    Ok(ExecFrameOut::Stderr { hex }) => {
                        let _ = err.write_all(&hex::decode(hex).unwrap_or_default()).await;
                        let _ = err.flush().await;
                    }
                    Ok(ExecFrameOut::Started { .. }) => {}
                    Ok(ExecFrameOut::Exit { code, .. }) => break Ok(code),
                    Ok(ExecFrameOut::Error { message }) => break Err(message),
                    Err(e) => break Err(format!("the t2 agent sent a bad frame: {e}")),
                },
                Ok(LineRead::End) | Err(_) => break Err("the t2 agent closed the session before the command ended".into()),
            },
            Some(n) = term_rx.recv() => {
                leave_at.get_or_insert((tokio::time::Instant::now() + AFTER_TERM, n));
            }
            _ = deadline => break Ok(128 + leave_at.map(|(_, n)| n).unwrap_or(15)),
        }
    };
    stdin.abort();
    writer.abort();
    result
}

fn libc_term() -> i32 {
    SignalKind::terminate().as_raw_value()
}
fn libc_int() -> i32 {
    SignalKind::interrupt().as_raw_value()
}
fn libc_hup() -> i32 {
    SignalKind::hangup().as_raw_value()
}
