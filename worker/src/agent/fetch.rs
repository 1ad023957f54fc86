//! Downloading the job package from the uploader: resumes a cut download with `Range`
//! (guarded by `If-Range`), retries with exponential backoff, checks the sha256, and gives up
//! with one clear line (URL and cause) at its deadline — it never hangs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper::header::{CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, RANGE};
use hyper::{Request, StatusCode};
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tracing::{debug, info, warn};

use super::http;

/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The longest wait for a connection and a response head in one attempt.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest silence in the middle of a body before the attempt is abandoned (and resumed).
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the package could not be fetched; one line naming the URL and the cause.
#[derive(Debug, Error)]
#[error("cannot fetch the package from {url}: {cause}")]
pub struct FetchError {
    /// The package URL.
    pub url: String,
    /// What went wrong (the last attempt's cause when retries ran out).
    pub cause: String,
}

/// What to fetch and how long to try.
#[derive(Debug, Clone)]
pub struct FetchSpec {
    /// The package URL, `http://host:port/packages/<sha256>`.
    pub url: String,
    /// Where the package goes.
    pub dest: PathBuf,
    /// Its expected sha256 (lowercase hex).
    pub sha256: String,
    /// Give up after this long.
    pub deadline: Duration,
    /// Refuse packages larger than this.
    pub max_bytes: u64,
    /// For an `https://` URL: the CA certificates trusted.
    pub tls: Option<super::http::HttpTls>,
}

/// How a fetch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Bytes received over the network.
    pub downloaded: u64,
    /// Attempts made (0 when `dest` already held the package).
    pub attempts: u32,
    /// Attempts that continued a cut download.
    pub resumed: u32,
}

/// One attempt's failure: retry, or give up at once.
enum Failure {
    Retry(String),
    Fatal(String),
}

/// Fetches the package to `spec.dest` (through `dest.part`, renamed when verified).
pub async fn fetch(spec: &FetchSpec) -> Result<Fetched, FetchError> {
    let fail = |cause: String| FetchError {
        url: spec.url.clone(),
        cause,
    };
    // No attempt can succeed without a CA for an https URL: one clear error, no retries.
    if spec.url.starts_with("https://") && spec.tls.is_none() {
        return Err(fail(
            "an https:// URL needs the CA certificate that signed the server's (e.g. --uploader-ca FILE)".into(),
        ));
    }
    if spec.dest.is_file() && hash_file(&spec.dest).await.ok().as_deref() == Some(&spec.sha256) {
        return Ok(Fetched {
            downloaded: 0,
            attempts: 0,
            resumed: 0,
        });
    }
    if let Some(parent) = spec.dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    }
    let part = part_path(&spec.dest);
    let _ = tokio::fs::remove_file(&part).await;
    let started = Instant::now();
    let mut state = State {
        etag: None,
        downloaded: 0,
        resumed: 0,
    };
    let mut backoff = Duration::from_millis(100);
    let mut attempts = 0u32;
    let mut mismatches = 0u32;
    let mut last_why: Option<String> = None;
    loop {
        attempts += 1;
        let left = spec.deadline.saturating_sub(started.elapsed());
        let outcome = match tokio::time::timeout(left, attempt(spec, &part, &mut state)).await {
            Ok(r) => r,
            // Cut short by the deadline: the earlier attempt's failure is the reason to tell.
            Err(_) => Err(Failure::Retry(match last_why.take() {
                Some(why) => format!(
                    "{why} (and the next attempt was still running at the deadline of {:?})",
                    spec.deadline
                ),
                None => format!(
                    "the download was still running at the deadline of {:?}",
                    spec.deadline
                ),
            })),
        };
        let why = match outcome {
            Ok(()) => match hash_file(&part).await {
                Ok(sha) if sha == spec.sha256 => {
                    tokio::fs::rename(&part, &spec.dest).await.map_err(|e| {
                        fail(format!("cannot move it to {}: {e}", spec.dest.display()))
                    })?;
                    info!(url = %spec.url, attempts, bytes = state.downloaded, "package fetched");
                    return Ok(Fetched {
                        downloaded: state.downloaded,
                        attempts,
                        resumed: state.resumed,
                    });
                }
                Ok(sha) => {
                    let _ = tokio::fs::remove_file(&part).await;
                    state.etag = None;
                    mismatches += 1;
                    let why = format!("downloaded sha256 {sha}, expected {}", spec.sha256);
                    if mismatches >= 2 {
                        return Err(fail(why));
                    }
                    why
                }
                Err(e) => return Err(fail(format!("cannot read {}: {e}", part.display()))),
            },
            Err(Failure::Fatal(why)) => {
                let _ = tokio::fs::remove_file(&part).await;
                return Err(fail(why));
            }
            Err(Failure::Retry(why)) => why,
        };
        let left = spec.deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(fail(format!(
                "gave up after {attempts} attempt(s) in {:.1?}: {why}",
                started.elapsed()
            )));
        }
        warn!(url = %spec.url, attempt = attempts, error = %why, "package download failed; retrying");
        last_why = Some(why);
        tokio::time::sleep(jitter(backoff).min(left)).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What survives between attempts.
struct State {
    /// The ETag of the partial download (a resume is only asked for with it).
    etag: Option<String>,
    downloaded: u64,
    resumed: u32,
}

async fn attempt(spec: &FetchSpec, part: &Path, state: &mut State) -> Result<(), Failure> {
    let have = match (&state.etag, tokio::fs::metadata(part).await) {
        (Some(_), Ok(m)) => m.len(),
        _ => 0,
    };
    let mut req = Request::get(spec.url.as_str());
    if have > 0 {
        if let Some(etag) = &state.etag {
            req = req
                .header(RANGE, format!("bytes={have}-"))
                .header(IF_RANGE, etag.as_str());
        }
    }
    let req = req
        .body(http::empty())
        .map_err(|e| Failure::Fatal(format!("cannot build the request: {e}")))?;
    let resp = http::send_with(spec.tls.as_ref(), &spec.url, req, HEAD_TIMEOUT)
        .await
        .map_err(|e| Failure::Retry(e.cause))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let length: Option<u64> = header(CONTENT_LENGTH).and_then(|v| v.parse().ok());
    let etag = header(ETAG);
    let mut body = resp.into_body();
    let offset = match status {
        StatusCode::OK => 0,
        StatusCode::PARTIAL_CONTENT => {
            let start = header(CONTENT_RANGE).and_then(|v| range_start(&v));
            if start != Some(have) {
                state.etag = None;
                return Err(Failure::Retry(format!(
                    "the server resumed at the wrong offset ({:?}, wanted {have})",
                    header(CONTENT_RANGE)
                )));
            }
            state.resumed += 1;
            have
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            state.etag = None;
            return Err(Failure::Retry(
                "the server refused to resume (416); starting over".into(),
            ));
        }
        StatusCode::NOT_FOUND => {
            return Err(Failure::Fatal(
                "the uploader does not have this package (404 Not Found)".into(),
            ))
        }
        s if s.is_client_error() && s != StatusCode::REQUEST_TIMEOUT && s.as_u16() != 429 => {
            let line = http::body_line(&mut body).await;
            return Err(Failure::Fatal(format!("the uploader answered {s}: {line}")));
        }
        s => {
            let line = http::body_line(&mut body).await;
            return Err(Failure::Retry(format!("the uploader answered {s}: {line}")));
        }
    };
    if let Some(len) = length {
        if offset.saturating_add(len) > spec.max_bytes {
            return Err(Failure::Fatal(format!(
                "the package is {} bytes, over the limit of {} bytes (raise max_package_bytes)",
                offset + len,
                spec.max_bytes
            )));
        }
    }
    state.etag = etag;
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(offset > 0)
        .truncate(offset == 0)
        .open(part)
        .await
        .map_err(|e| Failure::Fatal(format!("cannot write {}: {e}", part.display())))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut got = 0u64;
    let write_err =
        |e: std::io::Error| Failure::Fatal(format!("cannot write {}: {e}", part.display()));
    loop {
        match http::next_chunk(&mut body, IDLE_TIMEOUT).await {
            Ok(Some(chunk)) => {
                got += chunk.len() as u64;
                state.downloaded += chunk.len() as u64;
                if offset + got > spec.max_bytes {
                    return Err(Failure::Fatal(format!(
                        "the package is over the limit of {} bytes (raise max_package_bytes)",
                        spec.max_bytes
                    )));
                }
                out.write_all(&chunk).await.map_err(write_err)?;
            }
            Ok(None) => break,
            Err(why) => {
                out.flush().await.map_err(write_err)?;
                debug!(bytes = offset + got, "download cut");
                return Err(Failure::Retry(format!(
                    "the connection broke after {} bytes: {why}",
                    offset + got
                )));
            }
        }
    }
    out.flush().await.map_err(write_err)?;
    if let Some(len) = length {
        if got != len {
            return Err(Failure::Retry(format!(
                "the body ended after {got} of {len} bytes"
            )));
        }
    }
    out.get_ref().sync_all().await.map_err(write_err)?;
    Ok(())
}

/// `bytes START-END/TOTAL` → START.
fn range_start(content_range: &str) -> Option<u64> {
    content_range
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// `d` plus up to a quarter of it, so that many agents do not retry in lockstep.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// Lowercase hex sha256 of a file, off the async threads.
async fn hash_file(path: &Path) -> std::io::Result<String> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(hex::encode(hasher.finalize()))
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes */200"), None);
        assert_eq!(
            part_path(Path::new("/a/package.tar.gz")),
            PathBuf::from("/a/package.tar.gz.part")
        );
        let d = Duration::from_millis(400);
        assert!(jitter(d) >= d && jitter(d) <= d + Duration::from_millis(100));
    }

    #[tokio::test]
    async fn an_uploader_that_is_down_fails_within_the_deadline_naming_the_url() {
        let dir = std::env::temp_dir().join(format!("t2-fetch-test-{}", std::process::id()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let spec = FetchSpec {
            url: format!("http://127.0.0.1:{port}/packages/{}", "a".repeat(64)),
            dest: dir.join("package.tar.gz"),
            sha256: "a".repeat(64),
            deadline: Duration::from_millis(600),
            max_bytes: 1 << 20,
            tls: None,
        };
        // The guard only turns a hang into a failure; the behaviour checked is that fetch
        // retries until its own deadline and then gives up with the URL and the cause.
        let e = tokio::time::timeout(Duration::from_secs(60), fetch(&spec))
            .await
            .expect("fetch must give up at its deadline, not hang")
            .expect_err("nothing listens there");
        let text = e.to_string();
        assert!(text.contains("gave up after"), "{text}");
        assert!(text.contains(&spec.url), "{text}");
        assert!(text.contains("connection refused"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
