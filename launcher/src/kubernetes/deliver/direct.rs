//! Direct delivery: for each pod, `t2 pod receive --bytes N --sha256 H` runs in the pod's init
//! container over the exec API and reads exactly N bytes from stdin; the launcher streams the
//! package file into it and waits for `received H`. Up to 3 attempts per pod, each with a
//! deadline that grows with the package size.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use indicatif::ProgressBar;
use k8s_openapi::api::core::v1::Pod;
use kube::api::AttachParams;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

use super::Deliverer;
use crate::kubernetes::client::Kube;
use crate::kubernetes::error::Op;
use crate::kubernetes::manifests::pod::INIT_CONTAINER;

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
        }
    }

    /// Deadline of one attempt: a minute plus the package at 1 MiB/s.
    fn attempt_deadline(&self) -> Duration {
        Duration::from_secs(60 + self.bytes / (1024 * 1024))
    }

    async fn once(&self, pod: &str, sent: &mut u64) -> Result<(), String> {
        let ap = AttachParams::default()
            .container(INIT_CONTAINER)
            .stdin(true)
            .stdout(true)
            .stderr(true);
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
        let status = proc.take_status();
        let mut file = tokio::fs::File::open(&self.package)
            .await
            .map_err(|e| format!("cannot read {}: {e}", self.package.display()))?;
        let reader = tokio::spawn(async move {
            let mut out = String::new();
            let mut err = String::new();
            let _ = stdout.read_to_string(&mut out).await;
            let _ = stderr.read_to_string(&mut err).await;
            (out, err)
        });
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| format!("cannot read {}: {e}", self.package.display()))?;
            if n == 0 {
                break;
            }
            stdin
                .write_all(&buf[..n])
                .await
                .map_err(|e| format!("the stream broke after {sent} bytes: {e}"))?;
            *sent += n as u64;
            self.bar.inc(n as u64);
        }
        stdin
            .flush()
            .await
            .map_err(|e| format!("the stream broke at the end: {e}"))?;
        drop(stdin);
        let st = match status {
            Some(s) => s.await,
            None => None,
        };
        let (out, err) = reader.await.unwrap_or_default();
        let _ = proc.join().await;
        let ok_status = st
            .as_ref()
            .is_none_or(|s| s.status.as_deref() != Some("Failure"));
        if ok_status && out.lines().any(|l| l.trim() == received_line(&self.sha256)) {
            return Ok(());
        }
        let why = [
            err.trim(),
            st.as_ref().and_then(|s| s.message.as_deref()).unwrap_or(""),
        ]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("the pod did not confirm the package")
        .to_string();
        Err(crate::kubernetes::error::one_line(&why))
    }
}

#[async_trait]
impl Deliverer for ExecDeliverer {
    async fn deliver(&self, pod: &str) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let mut sent = 0u64;
            let r = tokio::time::timeout(self.attempt_deadline(), self.once(pod, &mut sent)).await;
            match r {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e,
                Err(_) => last = format!("no confirmation within {:?}", self.attempt_deadline()),
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
