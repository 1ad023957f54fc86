//! Direct delivery: for each pod, `t2 pod receive --bytes N --sha256 H` runs in the pod's init
//! container (and once in the job master's container, whose copy pods made later fetch) over
//! the exec API and reads exactly N bytes from stdin; the launcher streams the
//! package file into it and waits for `received H` (or the pod's refusal, which may come
//! before everything was sent). Up to 3 attempts per pod, each with a deadline that grows
//! with the package size.

use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use indicatif::ProgressBar;
use k8s_openapi::api::core::v1::Pod;
use kube::api::AttachParams;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::warn;

use super::Deliverer;
use crate::client::Kube;
use crate::error::Op;
use crate::manifests::pod::INIT_CONTAINER;

/// Attempts per pod.
pub const ATTEMPTS: u32 = 3;
/// Bytes written to the exec stream at once.
const CHUNK: usize = 256 * 1024;

/// The command run in the init container to receive `bytes` bytes of package `sha256`.
pub fn receive_command(bytes: u64, sha256: &str) -> Vec<String> {
    vec![
        "t2".into(),
        "pod".into(),
        "receive".into(),
        "--bytes".into(),
        bytes.to_string(),
        "--sha256".into(),
        sha256.into(),
    ]
}

/// The line `t2 pod receive` prints once the package is verified and in place.
pub fn received_line(sha256: &str) -> String {
    format!("received {sha256}")
}

/// Streams the package over exec.
pub struct ExecDeliverer {
    kube: Kube,
    package: PathBuf,
    sha256: String,
    bytes: u64,
    bar: Arc<ProgressBar>,
    deadline: Option<Duration>,
}

/// Why sending stopped: the package file (end the attempt now: the pod would wait for the
/// rest), or the stream (then the pod's answer, if any, says more).
enum SendError {
    Local(String),
    Stream(String),
}

impl ExecDeliverer {
    /// A deliverer of `package` (`bytes` long, hash `sha256`), counting sent bytes on `bar`.
    pub fn new(
        kube: Kube,
        package: PathBuf,
        sha256: &str,
        bytes: u64,
        bar: Arc<ProgressBar>,
    ) -> Self {
        Self {
            kube,
            package,
            sha256: sha256.into(),
            bytes,
            bar,
            deadline: None,
        }
    }

    /// Gives each attempt `deadline` instead of [`ExecDeliverer::attempt_deadline`]'s default.
    pub fn with_attempt_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Deadline of one attempt: by default a minute plus the package at 1 MiB/s.
    pub fn attempt_deadline(&self) -> Duration {
        self.deadline
            .unwrap_or_else(|| Duration::from_secs(60 + self.bytes / (1024 * 1024)))
    }

    /// Copies the package file to `stdin`, counting on `sent` and the bar. The stream stays
    /// open: the receiver reads exactly `bytes`, and closing stdin would end the whole exec
    /// session on API servers speaking `v4.channel.k8s.io` (no half-close) before the pod
    /// has answered.
    async fn send(
        &self,
        file: &mut tokio::fs::File,
        stdin: &mut (impl AsyncWrite + Unpin),
        sent: &mut u64,
    ) -> Result<(), SendError> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf).await.map_err(|e| {
                SendError::Local(format!("cannot read {}: {e}", self.package.display()))
            })?;
            if n == 0 {
                break;
            }
            stdin.write_all(&buf[..n]).await.map_err(|e| {
                SendError::Stream(format!("the exec stream broke after {sent} bytes: {e}"))
            })?;
            *sent += n as u64;
            self.bar.inc(n as u64);
        }
        stdin
            .flush()
            .await
            .map_err(|e| SendError::Stream(format!("the exec stream broke at the end: {e}")))
    }

    async fn once(&self, pod: &str, container: &str, sent: &mut u64) -> Result<(), String> {
        let mut file = tokio::fs::File::open(&self.package)
            .await
            .map_err(|e| format!("cannot read {}: {e}", self.package.display()))?;
        let ap = AttachParams::default()
            .container(container)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .max_stdin_buf_size(CHUNK);
        let api = self.kube.api::<Pod>();
        let mut proc = api
            .exec(pod, receive_command(self.bytes, &self.sha256), &ap)
            .await
            .map_err(|e| {
                Op::named("create", "pods/exec", &self.kube.namespace, pod)
                    .error(&self.kube.server, e)
                    .to_string()
            })?;
        let mut stdin = proc.stdin().ok_or("the exec stream has no stdin")?;
        let mut stdout = proc.stdout().ok_or("the exec stream has no stdout")?;
        let mut stderr = proc.stderr().ok_or("the exec stream has no stderr")?;
        let status = proc
            .take_status()
            .ok_or("the exec stream has no status channel")?;
        // Both at once: kube buffers each channel in a small pipe, and a full stderr pipe
        // would stall the stream while stdout is read to its end.
        let (ended_tx, ended) = watch::channel(false);
        let reader = tokio::spawn(async move {
            tokio::join!(
                collect(&mut stdout, ended.clone()),
                collect(&mut stderr, ended)
            )
        });
        let mut status = pin!(status);
        // The pod may answer before it has taken everything (it failed early): then stop
        // sending, or the write would wait forever on a stream nobody reads any more.
        let (st, broke) = tokio::select! {
            r = self.send(&mut file, &mut stdin, sent) => match r {
                Ok(()) => (status.await, None),
                Err(SendError::Local(e)) => return Err(e),
                Err(SendError::Stream(e)) => (status.await, Some(e)),
            },
            st = &mut status => (st, None),
        };
        // The status came, or the stream ended: the exec task is done or ending.
        drop(stdin);
        let _ = proc.join().await;
        let _ = ended_tx.send(true);
        let (out, err) = reader.await.unwrap_or_default();
        let ok_status = st
            .as_ref()
            .is_none_or(|s| s.status.as_deref() != Some("Failure"));
        if ok_status && out.lines().any(|l| l.trim() == received_line(&self.sha256)) {
            return Ok(());
        }
        let why = [
            err.trim(),
            broke.as_deref().unwrap_or(""),
            st.as_ref().and_then(|s| s.message.as_deref()).unwrap_or(""),
        ]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("the pod did not confirm the package")
        .to_string();
        Err(crate::error::one_line(&why))
    }
}

/// Reads `r` to its end, or, once `ended` (the exec task finished), what is left in it: a
/// task that failed drops its end of the pipe without closing it, so no end would come.
async fn collect(r: &mut (impl AsyncRead + Unpin), mut ended: watch::Receiver<bool>) -> String {
    let mut text = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            biased;
            n = r.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => text.extend_from_slice(&buf[..n]),
            },
            _ = ended.wait_for(|e| *e) => {
                while let Some(Ok(n)) = r.read(&mut buf).now_or_never() {
                    if n == 0 {
                        break;
                    }
                    text.extend_from_slice(&buf[..n]);
                }
                break;
            }
        }
    }
    String::from_utf8_lossy(&text).into_owned()
}

#[async_trait]
impl Deliverer for ExecDeliverer {
    async fn deliver(&self, pod: &str) -> Result<(), String> {
        self.deliver_to(pod, INIT_CONTAINER).await
    }

    async fn deliver_to(&self, pod: &str, container: &str) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut sent = 0u64;
            let r = tokio::time::timeout(
                self.attempt_deadline(),
                self.once(pod, container, &mut sent),
            )
            .await;
            match r {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e,
                Err(_) => {
                    last = format!(
                        "'t2 pod receive' did not confirm the package within {} ({sent} of {} bytes sent); check the pod with 'kubectl describe pod {pod}'",
                        t2_core::duration::format_duration(self.attempt_deadline()),
                        self.bytes
                    )
                }
            }
            self.bar
                .set_position(self.bar.position().saturating_sub(sent));
            if attempt < ATTEMPTS {
                warn!(pod, attempt, error = %last, "package delivery failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
            }
        }
        Err(format!("{last} (after {ATTEMPTS} attempts)"))
    }
}
