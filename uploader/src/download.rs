//! Reads: `GET`/`HEAD /packages/{sha256}` with a strong ETag (the sha256 itself), `Range`
//! for resuming, `If-Range` so a resume never mixes two files, and `If-None-Match`. The body
//! is streamed from the file in large chunks; every byte sent is counted.

use std::io::{Read, Seek};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;

use crate::error::ApiError;
use crate::range::{self, Span};
use crate::server::App;
use crate::store::PackageId;

/// Bytes read from the file per chunk (nginx reads 32 KiB; small chunks stay in the cache).
const CHUNK: usize = 64 << 10;
/// A package's modification time (its TTL clock) is refreshed by reads at most this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// `GET` (or, with `head`, `HEAD`) `/packages/{id}`.
pub async fn get(
    app: Arc<App>,
    id: PackageId,
    headers: HeaderMap,
    head: bool,
) -> Result<Response, ApiError> {
    let path = app.store.path(&id);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::not_found(format!("no package {id} here")))
        }
        Err(e) => return Err(ApiError::internal(format!("cannot open package {id}: {e}"))),
    };
    let meta = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("cannot read package {id}: {e}")))?;
    let len = meta.len();
    let etag = format!("\"{id}\"");
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
        .header(header::CONTENT_TYPE, "application/gzip");
    if text(header::IF_NONE_MATCH).is_some_and(|v| etag_matches(v, &etag)) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    let span = match text(header::IF_RANGE) {
        Some(v) if v.trim() != etag => Span::Full,
        _ => range::parse(text(header::RANGE), len),
    };
    let (status, start, count) = match span {
        Span::Full => (StatusCode::OK, 0, len),
        Span::Part { start, end } => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Span::Unsatisfiable => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the range is outside the package's {len} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, count);
    if head {
        return builder
            .body(Body::empty())
            .map_err(|e| ApiError::internal(e.to_string()));
    }
    touch(path, &meta);
    let body = stream(file, start, count, app.clone())
        .await
        .map_err(|e| ApiError::internal(format!("cannot read package {id}: {e}")))?;
    builder
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// True when an `If-None-Match` value lists `etag` (or is `*`).
fn etag_matches(value: &str, etag: &str) -> bool {
    value
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// Refreshes the package's modification time (the sweep's "last used") when it is old; in
/// the background, so a read never waits for it.
fn touch(path: std::path::PathBuf, meta: &std::fs::Metadata) {
    let old = meta
        .modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_none_or(|age| age > TOUCH_EVERY);
    if old {
        tokio::task::spawn_blocking(move || {
            if let Ok(f) = std::fs::File::open(&path) {
                let _ = f.set_modified(SystemTime::now());
            }
        });
    }
}

/// The body: `count` bytes of `file` from `start`, counted as served. Chunks are read the
/// way nginx reads them: synchronously (a package being served is in the page cache, where a
/// read is a memory copy) into a small buffer that is reused once the socket has taken the
/// previous chunk, so the data stays in the CPU cache between the read and the send.
async fn stream(
    file: tokio::fs::File,
    start: u64,
    count: u64,
    app: Arc<App>,
) -> std::io::Result<Body> {
    let mut file = file.into_std().await;
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))?;
    }
    // Should the package have left the page cache, the kernel reads it back ahead of us, so
    // the synchronous reads below wait for the disk rarely.
    use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
    let (offset, len) = (start as i64, count as i64);
    let _ = posix_fadvise(
        &file,
        offset,
        len,
        PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
    );
    let _ = posix_fadvise(&file, offset, len, PosixFadviseAdvice::POSIX_FADV_WILLNEED);
    let state = (Some(file), count, app, BytesMut::new());
    let s = futures::stream::unfold(state, |(file, left, app, mut buf)| async move {
        let mut file = file.filter(|_| left > 0)?;
        let want = (left as usize).min(CHUNK);
        buf.reserve(want);
        buf.resize(want, 0);
        let mut got = 0;
        while got < want {
            match file.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Some((Err(e), (None, 0, app, buf))),
            }
        }
        if got == 0 {
            let e = std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the package shrank while being sent",
            );
            return Some((Err(e), (None, 0, app, buf)));
        }
        buf.truncate(got);
        app.metrics.served(got as u64);
        let chunk = buf.split().freeze();
        Some((Ok(chunk), (Some(file), left - got as u64, app, buf)))
    });
    Ok(Body::from_stream(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", W/\"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
