//! `t2 pod init`, the init container of worker pods: puts the verified package at the
//! package path. With `T2_PACKAGE_URL` it downloads it from the uploader (retried, resumed,
//! sha256 checked, all within `T2_PACKAGE_TIMEOUT`); otherwise it waits that long for the
//! launcher to stream it in (`t2 pod receive`), and meanwhile asks the job master for its copy
//! every few seconds ([`from_jobmaster`](super::from_jobmaster)): that is how pods made after
//! the submit (a scale-up, a rescheduled pod) get it. It never hangs: at the deadline it fails
//! the pod with one line that says what to do, which the submit's pod watch then reports.

use std::time::Duration;

use tokio::time::Instant;

use super::env::{self, package_path};
use super::from_jobmaster::{fetch_from_jobmaster, FetchFailure};
use super::receive::file_sha256;
use crate::manifests::pod::env as names;

/// How often the package path is looked at while waiting.
const POLL: Duration = Duration::from_millis(200);
/// How often the job master is asked for its copy.
const ASK_JOBMASTER: Duration = Duration::from_secs(3);

/// Runs the init container; the error is the line to print.
pub async fn run_init() -> Result<String, String> {
    let sha256 = env::required(names::PACKAGE_SHA256)?.to_ascii_lowercase();
    let bytes: u64 = env::number(names::PACKAGE_BYTES)?;
    let timeout = env::duration(names::PACKAGE_TIMEOUT, Duration::from_secs(600))?;
    let dest = package_path();
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if let Ok(url) = env::required(names::PACKAGE_URL) {
        let spec = t2_worker::agent::fetch::FetchSpec {
            url: url.clone(),
            dest: dest.clone(),
            sha256: sha256.clone(),
            deadline: timeout,
            max_bytes: bytes.max(1),
            tls: None,
        };
        t2_worker::agent::fetch::fetch(&spec)
            .await
            .map_err(|e| format!("cannot download the package: {e}"))?;
        return Ok(format!("package {sha256} downloaded from {url}"));
    }
    let deadline = Instant::now() + timeout;
    // The job master's address and the job token (absent in pods of older submits).
    let jobmaster = env::required(names::JOB_MASTER)
        .ok()
        .zip(env::required(names::JOB_TOKEN).ok());
    // A job with TLS gives its pods the job's CA; the job master is dialled trusting it only.
    let dialer = env::jobmaster_dialer(std::env::var_os(names::JOB_CA).is_some())?;
    let mut ask_at = Instant::now() + ASK_JOBMASTER;
    let mut last_answer = String::new();
    loop {
        if dest.is_file() {
            let got = file_sha256(&dest).await?;
            if got == sha256 {
                return Ok(format!("package {sha256} received"));
            }
            return Err(format!(
                "the package at {} has sha256 {got}, expected {sha256}; submit the job again",
                dest.display()
            ));
        }
        if let Some((url, token)) = jobmaster.as_ref().filter(|_| Instant::now() >= ask_at) {
            let left = deadline.saturating_duration_since(Instant::now());
            match fetch_from_jobmaster(&dialer, url, token, &sha256, bytes, &dest, left).await {
                Ok(()) => return Ok(format!("package {sha256} fetched from the job master")),
                Err(FetchFailure::Fatal(why)) => return Err(why),
                Err(FetchFailure::NotYet(why)) => last_answer = why,
            }
            ask_at = Instant::now() + ASK_JOBMASTER;
            continue;
        }
        if Instant::now() >= deadline {
            let asked = if last_answer.is_empty() {
                String::new()
            } else {
                format!(" (last answer of the job master: {last_answer})")
            };
            return Err(format!(
                "no package arrived within {}: 't2 submit' streams it into the pods that exist while it waits, and the job master, which gets a copy from the first workers, hands it to pods made later, but neither reached this pod{asked}; an uploader (deploy/uploader.yaml) serves every pod",
                t2_core::duration::format_duration(timeout)
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}
