//! A local job's use of an uploader (`t2 submit local --uploader URL|local`): the submit
//! records the choice in the job folder; the supervisor uploads the package (or finds it there
//! already), hands its URL to every agent, renews the job's lease on it while the job runs (so
//! the uploader's TTL sweep never removes it under the job), and deletes it when the job ends,
//! whatever the end.
//! With `local` the supervisor runs a `t2 uploader` of its own for the job's lifetime.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use t2_core::jobdir::{now_rfc3339, JobDir, JobRecord, RecordedState};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tracing::{info, warn};

use crate::error::LauncherError;
use crate::local::process::t2_exe;
use t2_uploader::auth::write_private;
use t2_uploader::client::{Deleted, Uploaded, UploaderClient};

/// The job folder's record of the choice.
const SETTINGS: &str = "uploader.json";
/// The uploader token, mode 0600.
const TOKEN: &str = "uploader.token";
/// The CA certificate an `https://` uploader is trusted by (`--uploader-ca`), mode 0600.
const CA: &str = "uploader-ca.crt";
/// The package URL agents fetch, written once the package is on the uploader.
const PACKAGE_URL: &str = "package.url";
/// How long a local uploader may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long the end-of-job delete may take.
const DELETE_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize, Deserialize)]
struct Settings {
    /// `local`, or the uploader's base URL.
    url: String,
}

/// Records `--uploader` (and its token) in the job folder; checks the URL first.
pub fn configure(
    dir: &JobDir,
    url: Option<&str>,
    token: Option<&str>,
    ca: Option<&Path>,
) -> Result<(), LauncherError> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(());
    };
    if let Some(ca) = ca {
        // The job's own copy: the agents read it from the job folder.
        let pem = t2_core::tls::read_pem(ca)
            .map_err(|e| LauncherError::Usage(format!("--uploader-ca: {e}")))?;
        write_private(&dir.root().join(CA), &pem)?;
    }
    let token = if url == "local" {
        hex::encode(rand::random::<[u8; 32]>())
    } else {
        UploaderClient::new(url, None)
            .map_err(|e| LauncherError::Usage(format!("--uploader: {e}")))?;
        token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                LauncherError::Usage(format!(
                    "--uploader {url} needs the uploader's token: pass --uploader-token or set T2_UPLOADER_TOKEN"
                ))
            })?
            .to_string()
    };
    write_private(&dir.root().join(TOKEN), &token)?;
    let text = serde_json::to_string(&Settings {
        url: url.to_string(),
    })
    .map_err(LauncherError::json("cannot encode the uploader settings"))?;
    let path = dir.root().join(SETTINGS);
    std::fs::write(&path, text).map_err(LauncherError::io(format!(
        "cannot write {}",
        path.display()
    )))
}

/// A package ID no job has (not the sha256 of anything known), for [`check`].
const NO_PACKAGE: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Checks `--uploader URL` and its token before the job exists, so that a wrong token or an
/// unreachable uploader leaves nothing behind: a DELETE of a package no job has needs the
/// token and changes nothing. `local` (started by the supervisor) and no uploader pass.
pub fn check(
    url: Option<&str>,
    token: Option<&str>,
    ca: Option<&Path>,
) -> Result<(), LauncherError> {
    let Some(url) = url
        .map(str::trim)
        .filter(|u| !u.is_empty() && *u != "local")
    else {
        return Ok(());
    };
    let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) else {
        return Err(LauncherError::Usage(format!(
            "--uploader {url} needs the uploader's token: pass --uploader-token or set T2_UPLOADER_TOKEN"
        )));
    };
    let tls = ca
        .map(t2_worker::agent::http::HttpTls::from_ca_file)
        .transpose()
        .map_err(|e| LauncherError::Usage(format!("--uploader-ca: {e}")))?;
    let client = UploaderClient::new(url, Some(token.to_string()))
        .map_err(|e| LauncherError::Usage(format!("--uploader: {e}")))?
        .with_tls(tls);
    let answer = crate::runtime()?.block_on(client.delete(NO_PACKAGE, None));
    match answer {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            let prefix = format!("{}: ", client.package_url(NO_PACKAGE));
            let cause = text.split_once(&prefix).map_or(text.as_str(), |(_, c)| c);
            Err(LauncherError::Failed(
                if cause.starts_with("401") || cause.starts_with("403") {
                    format!("--uploader {url} refused the token ({cause}); pass its token with --uploader-token or T2_UPLOADER_TOKEN")
                } else {
                    format!("--uploader {url} cannot be used: {cause}")
                },
            ))
        }
    }
}

/// What the job's agents trust for an `https://` uploader (`--uploader-ca`, copied into the
/// job folder), if anything.
pub fn package_tls(dir: &JobDir) -> Result<Option<t2_worker::agent::http::HttpTls>, LauncherError> {
    let path = dir.root().join(CA);
    if !path.is_file() {
        return Ok(None);
    }
    t2_worker::agent::http::HttpTls::from_ca_file(&path)
        .map(Some)
        .map_err(LauncherError::Failed)
}

/// The extra arguments for a worker agent: `--package-url URL` once the package is uploaded.
pub fn agent_args(dir: &JobDir) -> Vec<String> {
    match std::fs::read_to_string(dir.root().join(PACKAGE_URL)) {
        Ok(url) if !url.trim().is_empty() => vec!["--package-url".into(), url.trim().to_string()],
        _ => Vec::new(),
    }
}

/// The job's package on an uploader, to be deleted at the end.
pub struct JobUpload {
    client: UploaderClient,
    sha256: String,
    job_id: String,
    local: Option<Child>,
    foreground: bool,
    /// Renews the job's lease on the package until the job ends.
    renewer: Option<tokio::task::JoinHandle<()>>,
}

/// Puts the job's package on its uploader (starting a local one if asked); `None` when the
/// job does not use one. On failure the job is recorded as FAILED with the reason.
pub async fn start(
    dir: &JobDir,
    record: &mut JobRecord,
    foreground: bool,
) -> Result<Option<JobUpload>, LauncherError> {
    let Ok(text) = std::fs::read_to_string(dir.root().join(SETTINGS)) else {
        return Ok(None);
    };
    match start_inner(dir, record, foreground, &text).await {
        Ok(u) => Ok(Some(u)),
        Err(e) => {
            record.state = RecordedState::Failed;
            record.reason = Some(e.to_string());
            record.ended_at = Some(now_rfc3339());
            record.supervisor_pid = None;
            let _ = dir.write_record(record);
            Err(e)
        }
    }
}

async fn start_inner(
    dir: &JobDir,
    record: &JobRecord,
    foreground: bool,
    settings: &str,
) -> Result<JobUpload, LauncherError> {
    let settings: Settings = serde_json::from_str(settings).map_err(LauncherError::json(
        dir.root().join(SETTINGS).display().to_string(),
    ))?;
    let token_path = dir.root().join(TOKEN);
    let token = std::fs::read_to_string(&token_path)
        .map_err(LauncherError::io(format!(
            "cannot read {}",
            token_path.display()
        )))?
        .trim()
        .to_string();
    let (url, local) = if settings.url == "local" {
        let (url, child) = start_local(dir, &token_path).await?;
        (url, Some(child))
    } else {
        (settings.url, None)
    };
    let client = UploaderClient::new(&url, Some(token))?.with_tls(package_tls(dir)?);
    let mut upload = JobUpload {
        client,
        sha256: record.package_sha256.clone(),
        job_id: record.id.clone(),
        local,
        foreground,
        renewer: None,
    };
    let package = dir.package_path();
    let size = std::fs::metadata(&package)
        .map_err(LauncherError::io(format!(
            "cannot read {}",
            package.display()
        )))?
        .len();
    let started = Instant::now();
    let sent = upload
        .client
        .upload(
            &package,
            &upload.sha256,
            size,
            Some(&upload.job_id),
            foreground,
        )
        .await;
    let sent = match sent {
        Ok(s) => s,
        Err(e) => {
            upload.stop_local().await;
            return Err(e.into());
        }
    };
    upload.renewer = Some(tokio::spawn(
        upload
            .client
            .clone()
            .keep_lease(upload.sha256.clone(), upload.job_id.clone()),
    ));
    let package_url = upload.client.package_url(&upload.sha256);
    if foreground {
        match sent {
            Uploaded::Skipped => eprintln!(
                "t2: the uploader already has this package; not uploading it again ({package_url})"
            ),
            Uploaded::Sent => eprintln!(
                "t2: package uploaded to {package_url} ({} in {:.1?})",
                human_size(size),
                started.elapsed()
            ),
        }
    }
    let path = dir.root().join(PACKAGE_URL);
    std::fs::write(&path, &package_url).map_err(LauncherError::io(format!(
        "cannot write {}",
        path.display()
    )))?;
    Ok(upload)
}

/// A size for people: `472 bytes`, `3.4 KiB`, `12.0 MiB`, `1.2 GiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Starts `t2 uploader` on a free loopback port with the store under `$T2_HOME/uploader`.
async fn start_local(dir: &JobDir, token_file: &Path) -> Result<(String, Child), LauncherError> {
    let home: PathBuf = dir
        .root()
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.root().to_path_buf());
    let log_path = dir.logs_dir().join("uploader.log");
    let log = std::fs::File::create(&log_path).map_err(LauncherError::io(format!(
        "cannot create {}",
        log_path.display()
    )))?;
    let mut child = Command::new(t2_exe())
        .args(["uploader", "--listen", "127.0.0.1:0", "--dir"])
        .arg(home.join("uploader"))
        .arg("--token-file")
        .arg(token_file)
        .arg("--parent-pid")
        .arg(std::process::id().to_string())
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env_remove("T2_UPLOADER_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(LauncherError::io("cannot start a local uploader"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| LauncherError::Failed("the local uploader has no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(START_DEADLINE, lines.next_line()).await;
    let Some(url) = first
        .ok()
        .and_then(|l| l.ok().flatten())
        .and_then(|l| l.strip_prefix("T2_UPLOADER_ADDR=").map(str::to_string))
    else {
        let _ = child.kill().await;
        return Err(LauncherError::Failed(format!(
            "the local uploader did not start within {START_DEADLINE:?}; see {}",
            log_path.display()
        )));
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    info!(%url, "local uploader started");
    Ok((url, child))
}

impl Drop for JobUpload {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

impl JobUpload {
    /// Deletes the job's package from the uploader (kept there while other jobs use it) and
    /// stops a local uploader. Failures are reported, never fatal: the TTL sweep is the backstop.
    pub async fn finish(mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        let outcome = tokio::time::timeout(
            DELETE_DEADLINE,
            self.client.delete(&self.sha256, Some(&self.job_id)),
        )
        .await;
        let url = self.client.package_url(&self.sha256);
        match outcome {
            Ok(Ok(Deleted::Removed)) => {
                info!(job_id = %self.job_id, %url, "package deleted from the uploader")
            }
            Ok(Ok(Deleted::Kept(why))) => {
                info!(job_id = %self.job_id, %url, why, "package kept on the uploader")
            }
            Ok(Ok(Deleted::Missing)) => {
                info!(job_id = %self.job_id, %url, "package already gone from the uploader")
            }
            Ok(Err(e)) => self.warn(&e.to_string()),
            Err(_) => self.warn(&format!(
                "cannot delete the package at {url}: no answer within {DELETE_DEADLINE:?}"
            )),
        }
        self.stop_local().await;
    }

    fn warn(&self, text: &str) {
        warn!(job_id = %self.job_id, "{text}");
        if self.foreground {
            eprintln!("t2: warning: {text} (the uploader's TTL sweep will remove it)");
        }
    }

    async fn stop_local(&mut self) {
        let Some(mut child) = self.local.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            crate::local::process::signal_group(pid, nix::sys::signal::Signal::SIGTERM);
        }
        // It holds nothing worth waiting for: the package is already deleted.
        if tokio::time::timeout(Duration::from_millis(500), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
}
