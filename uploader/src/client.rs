//! The launcher's side of the uploader: HEAD to skip a package the uploader already has, PUT
//! with a progress bar (retried when the uploader is busy or the connection breaks), the job's
//! reference (a lease, renewed while the job runs) and DELETE at job end. Every call is bounded; errors are one line naming the URL.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, StatusCode};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use t2_worker::agent::http::{self, BaseUrl, Body};
use tokio::io::AsyncReadExt;
use tracing::warn;

use crate::error::UploaderError;
use crate::lease::{DEFAULT_LEASE, LEASE_HEADER};

/// Time for anything but the body of an upload.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts at an upload.
const UPLOAD_ATTEMPTS: u32 = 4;

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uploaded {
    /// The uploader already had the package; nothing was sent.
    Skipped,
    /// The package was sent.
    Sent,
}

/// What a delete did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// The package is gone.
    Removed,
    /// Other jobs still use it (the uploader's message).
    Kept(String),
    /// It was not there.
    Missing,
}

/// A client of one uploader.
#[derive(Debug, Clone)]
pub struct UploaderClient {
    base: BaseUrl,
    token: Option<String>,
    /// For an `https://` uploader: the CA certificates trusted.
    tls: Option<http::HttpTls>,
}

impl UploaderClient {
    /// A client for the uploader at `url` (`http://host:port`), with the token for writes.
    pub fn new(url: &str, token: Option<String>) -> Result<Self, UploaderError> {
        let base = BaseUrl::parse(url).map_err(UploaderError::Config)?;
        Ok(Self {
            base,
            token,
            tls: None,
        })
    }

    /// Trusts `tls` (and only it) for an `https://` uploader.
    pub fn with_tls(mut self, tls: Option<http::HttpTls>) -> Self {
        self.tls = tls;
        self
    }

    /// The URL of package `sha256`.
    pub fn package_url(&self, sha256: &str) -> String {
        self.base.join(&format!("/packages/{sha256}"))
    }

    fn request(&self, method: &str, url: &str) -> hyper::http::request::Builder {
        let mut b = Request::builder().method(method).uri(url);
        if let Some(t) = &self.token {
            b = b.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        b
    }

    async fn call(
        &self,
        method: &str,
        url: &str,
        body: Body,
        timeout: Duration,
    ) -> Result<(StatusCode, String), String> {
        self.call_lease(method, url, body, timeout)
            .await
            .map(|(status, line, _)| (status, line))
    }

    /// [`Self::call`], with the lease the answer announced ([`LEASE_HEADER`]), if any.
    async fn call_lease(
        &self,
        method: &str,
        url: &str,
        body: Body,
        timeout: Duration,
    ) -> Result<(StatusCode, String, Option<Duration>), String> {
        let req = self
            .request(method, url)
            .body(body)
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let resp = http::send_with(self.tls.as_ref(), url, req, timeout)
            .await
            .map_err(|e| e.cause)?;
        let status = resp.status();
        let lease = resp
            .headers()
            .get(LEASE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis);
        let mut body = resp.into_body();
        let line = if method == "HEAD" {
            String::new()
        } else {
            http::body_line(&mut body).await
        };
        Ok((status, line, lease))
    }

    /// Renews job `job`'s lease on package `sha256` (`PUT /packages/{sha256}/refs/{job}`);
    /// returns how long the lease lasts now ([`DEFAULT_LEASE`] when the uploader does not say).
    /// A package that is not there any more is an error.
    pub async fn renew(&self, sha256: &str, job: &str) -> Result<Duration, UploaderError> {
        let url = format!("{}/refs/{job}", self.package_url(sha256));
        let fail = |cause: String| {
            UploaderError::Client(format!("cannot renew job {job}'s lease at {url}: {cause}"))
        };
        match self
            .call_lease("PUT", &url, http::empty(), CALL_TIMEOUT)
            .await
            .map_err(fail)?
        {
            (s, _, lease) if s.is_success() => Ok(lease.unwrap_or(DEFAULT_LEASE)),
            (s, line, _) => Err(fail(format!("{s}: {line}"))),
        }
    }

    /// Renews job `job`'s lease on package `sha256` three times per lease (as long as the
    /// uploader says it lasts) until the future is dropped (the task aborted at the job's
    /// end). A failed renewal is logged and tried again at the next turn; the lease outlives
    /// two failures in a row.
    pub async fn keep_lease(self, sha256: String, job: String) {
        let mut lease = DEFAULT_LEASE;
        loop {
            match self.renew(&sha256, &job).await {
                Ok(l) => lease = l,
                Err(e) => {
                    warn!(job_id = %job, error = %e, "cannot renew the lease on the job's package")
                }
            }
            tokio::time::sleep(crate::lease::renew_every(lease)).await;
        }
    }

    /// True when the uploader has package `sha256`.
    pub async fn exists(&self, sha256: &str) -> Result<bool, UploaderError> {
        let url = self.package_url(sha256);
        let fail = |cause: String| {
            UploaderError::Client(format!(
                "cannot ask the uploader at {url} for the package: {cause}"
            ))
        };
        match self
            .call("HEAD", &url, http::empty(), CALL_TIMEOUT)
            .await
            .map_err(fail)?
        {
            (StatusCode::OK, _) => Ok(true),
            (StatusCode::NOT_FOUND, _) => Ok(false),
            (s, _) => Err(fail(format!("it answered {s}"))),
        }
    }

    /// Uploads the package file `path` (`size` bytes, sha256 `sha256`) for job `job`, unless
    /// the uploader has it already (then only the job's reference is recorded). Shows a
    /// progress bar on stderr when `progress` and stderr is a terminal.
    pub async fn upload(
        &self,
        path: &Path,
        sha256: &str,
        size: u64,
        job: Option<&str>,
        progress: bool,
    ) -> Result<Uploaded, UploaderError> {
        let url = self.package_url(sha256);
        if self.exists(sha256).await? {
            if let Some(job) = job {
                let ref_url = format!("{url}/refs/{job}");
                match self
                    .call("PUT", &ref_url, http::empty(), CALL_TIMEOUT)
                    .await
                {
                    Ok((s, _)) if s.is_success() => {}
                    Ok((s, line)) => {
                        return Err(UploaderError::Client(format!(
                            "cannot record job {job} at {ref_url}: {s}: {line}"
                        )))
                    }
                    Err(e) => {
                        return Err(UploaderError::Client(format!(
                            "cannot record job {job} at {ref_url}: {e}"
                        )))
                    }
                }
            }
            return Ok(Uploaded::Skipped);
        }
        let put_url = match job {
            Some(job) => format!("{url}?job={job}"),
            None => url.clone(),
        };
        // Room for slow disks and links, but never unbounded: 60 s plus 1 s per 4 MiB.
        let timeout = Duration::from_secs(60 + size / (4 << 20));
        let mut backoff = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let bar = progress_bar(size, progress);
            let body = file_body(path, bar.clone())
                .await
                .map_err(UploaderError::io(format!("cannot read {}", path.display())))?;
            let req = self
                .request("PUT", &put_url)
                .header(CONTENT_LENGTH, size)
                .header(CONTENT_TYPE, "application/gzip")
                .body(body)
                .map_err(|e| {
                    UploaderError::Client(format!("cannot build the upload to {url}: {e}"))
                })?;
            let started = Instant::now();
            let outcome = match http::send_with(self.tls.as_ref(), &put_url, req, timeout).await {
                Ok(resp) => {
                    let status = resp.status();
                    let mut body = resp.into_body();
                    Ok((status, http::body_line(&mut body).await))
                }
                Err(e) => Err(e.cause),
            };
            bar.finish_and_clear();
            let why = match outcome {
                Ok((s, _)) if s.is_success() => {
                    tracing::info!(%url, bytes = size, took = ?started.elapsed(), "package uploaded");
                    return Ok(Uploaded::Sent);
                }
                Ok((s, line))
                    if s == StatusCode::SERVICE_UNAVAILABLE
                        || s.is_server_error() && s != StatusCode::INSUFFICIENT_STORAGE =>
                {
                    format!("{s}: {line}")
                }
                Ok((s, line)) => {
                    return Err(UploaderError::Client(format!(
                        "the uploader at {url} refused the package: {s}: {line}"
                    )))
                }
                Err(cause) => cause,
            };
            if attempt >= UPLOAD_ATTEMPTS {
                return Err(UploaderError::Client(format!(
                    "cannot upload the package to {url} ({attempt} attempts): {why}"
                )));
            }
            warn!(%url, attempt, error = %why, "upload failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff *= 3;
        }
    }

    /// Deletes package `sha256` for job `job` (the uploader keeps it while other jobs use it).
    pub async fn delete(&self, sha256: &str, job: Option<&str>) -> Result<Deleted, UploaderError> {
        let url = match job {
            Some(job) => format!("{}?job={job}", self.package_url(sha256)),
            None => self.package_url(sha256),
        };
        let fail = |cause: String| {
            UploaderError::Client(format!("cannot delete the package at {url}: {cause}"))
        };
        match self
            .call("DELETE", &url, http::empty(), CALL_TIMEOUT)
            .await
            .map_err(fail)?
        {
            (StatusCode::OK | StatusCode::NO_CONTENT, line) if line.starts_with("kept") => {
                Ok(Deleted::Kept(line))
            }
            (StatusCode::OK | StatusCode::NO_CONTENT, _) => Ok(Deleted::Removed),
            (StatusCode::NOT_FOUND, _) => Ok(Deleted::Missing),
            (s, line) => Err(fail(format!("{s}: {line}"))),
        }
    }
}

fn progress_bar(size: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "t2: uploading package [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// The file as a request body, read in 256 KiB chunks, advancing `bar`.
async fn file_body(path: &Path, bar: ProgressBar) -> std::io::Result<Body> {
    let file = tokio::fs::File::open(path).await?;
    let chunks = futures::stream::unfold((file, bar), |(mut file, bar)| async move {
        let mut buf = bytes::BytesMut::with_capacity(256 << 10);
        match file.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                bar.inc(n as u64);
                Some((Ok(Frame::data(Bytes::from(buf))), (file, bar)))
            }
            Err(e) => Some((Err(e), (file, bar))),
        }
    });
    Ok(StreamBody::new(chunks).boxed())
}
