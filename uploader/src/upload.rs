//! Writes: `PUT /packages/{sha256}` streams the body to a temporary file while hashing it,
//! syncs it, checks the hash against the URL and only then renames it into place, so a reader
//! never sees a partial or wrong package; `PUT /packages/{sha256}/refs/{job}` and
//! `DELETE /packages/{sha256}[?job=ID]` manage which jobs use a package.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tracing::{info, info_span, Instrument};

use crate::error::ApiError;
use crate::limits::too_large;
use crate::server::App;
use crate::store::PackageId;

/// Removes a temporary file unless the upload committed it.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Parses the `job` query parameter, if any, as a job ID.
pub fn job_param(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("job=") {
            t2_core::names::validate_job_id(v).map_err(|e| ApiError::bad_request(e.to_string()))?;
            return Ok(Some(v.to_string()));
        }
    }
    Ok(None)
}

/// `PUT /packages/{id}`.
pub async fn put(
    app: Arc<App>,
    id: PackageId,
    job: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let span = info_span!("upload", package = %id, job = job.as_deref().unwrap_or("-"));
    put_inner(app, id, job, headers, body)
        .instrument(span)
        .await
}

async fn put_inner(
    app: Arc<App>,
    id: PackageId,
    job: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let declared = match headers.get(header::CONTENT_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Content-Length is not a number"))?,
        ),
        None => None,
    };
    let _admission = app
        .gate
        .admit(declared, app.store.totals().bytes, app.store.temp_dir())?;
    let limits = &app.gate.limits;
    let tmp = app.store.temp_path(&id);
    let mut guard = TempGuard(Some(tmp.clone()));
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .await
        .map_err(|e| ApiError::storing("cannot create a temporary file", &e))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    loop {
        let chunk = match tokio::time::timeout(limits.upload_idle, stream.next()).await {
            Err(_) => {
                return Err(ApiError::timeout(format!(
                    "the upload sent nothing for {:?} after {size} bytes; nothing stored",
                    limits.upload_idle
                )))
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::bad_request(format!(
                    "the upload broke off after {size} bytes ({e}); nothing stored"
                )))
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        size += chunk.len() as u64;
        if size > limits.max_package_bytes {
            return Err(too_large(size, limits.max_package_bytes));
        }
        if declared.is_some_and(|d| size > d) {
            return Err(ApiError::bad_request(
                "the body is longer than its Content-Length; nothing stored",
            ));
        }
        hasher.update(&chunk);
        out.write_all(&chunk)
            .await
            .map_err(|e| ApiError::storing("cannot write the package", &e))?;
    }
    if let Some(d) = declared.filter(|d| *d != size) {
        return Err(ApiError::bad_request(format!(
            "the body has {size} bytes but Content-Length said {d}; nothing stored"
        )));
    }
    out.flush()
        .await
        .map_err(|e| ApiError::storing("cannot write the package", &e))?;
    out.get_ref()
        .sync_all()
        .await
        .map_err(|e| ApiError::storing("cannot sync the package", &e))?;
    drop(out);
    let actual = hex::encode(hasher.finalize());
    if actual != id.as_str() {
        return Err(ApiError::bad_request(format!(
            "the body's sha256 is {actual}, not the {id} in the URL (corrupted or wrong file); nothing stored"
        )));
    }
    let store = app.store.clone();
    let (tmp2, id2, job2) = (tmp.clone(), id.clone(), job.clone());
    let new = tokio::task::spawn_blocking(move || store.commit(&tmp2, &id2, size, job2.as_deref()))
        .await
        .map_err(|e| ApiError::internal(format!("the commit task failed: {e}")))?
        .map_err(|e| ApiError::storing("cannot store the package and its job reference", &e))?;
    guard.0 = None;
    app.metrics
        .bytes_received
        .fetch_add(size, Ordering::Relaxed);
    info!(bytes = size, new, "package stored");
    let (status, text) = if new {
        (StatusCode::CREATED, format!("stored {id} ({size} bytes)\n"))
    } else {
        (
            StatusCode::OK,
            format!("{id} was already stored ({size} bytes)\n"),
        )
    };
    Ok(match job {
        Some(_) => with_lease(app.store.lease(), status, text),
        None => (status, text).into_response(),
    })
}

/// `PUT /packages/{id}/refs/{job}`: job `job` uses the (stored) package: its lease starts, or
/// is renewed.
pub async fn add_ref(app: Arc<App>, id: PackageId, job: &str) -> Result<Response, ApiError> {
    t2_core::names::validate_job_id(job).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let store = app.store.clone();
    let (id2, job2) = (id.clone(), job.to_string());
    let renewed = tokio::task::spawn_blocking(move || store.renew_ref(&id2, &job2))
        .await
        .map_err(|e| ApiError::internal(format!("the reference task failed: {e}")))?
        .map_err(|e| ApiError::storing("cannot record the job's reference", &e))?;
    if !renewed {
        return Err(ApiError::not_found(format!("no package {id} here")));
    }
    let lease = app.store.lease();
    Ok(with_lease(
        lease,
        StatusCode::OK,
        format!("job {job} uses {id} (lease {lease:?})\n"),
    ))
}

/// An answer that tells the job how long its lease on the package lasts.
pub fn with_lease(lease: std::time::Duration, status: StatusCode, text: String) -> Response {
    (
        status,
        [(crate::lease::LEASE_HEADER, lease.as_millis().to_string())],
        text,
    )
        .into_response()
}

/// `DELETE /packages/{id}[?job=ID]`: with a job, drops its reference and removes the package
/// once no job uses it; without, removes it at once.
pub async fn delete(
    app: Arc<App>,
    id: PackageId,
    job: Option<String>,
) -> Result<(StatusCode, String), ApiError> {
    let _span = info_span!("delete", package = %id, job = job.as_deref().unwrap_or("-")).entered();
    match app.store.release(&id, job.as_deref()) {
        Ok(None) => Err(ApiError::not_found(format!("no package {id} here"))),
        Ok(Some(left)) if left > 0 => {
            info!(jobs = left, "package kept: other jobs use it");
            Ok((
                StatusCode::OK,
                format!("kept {id}: {left} other job(s) use it\n"),
            ))
        }
        Ok(Some(_)) => {
            app.metrics.deleted.fetch_add(1, Ordering::Relaxed);
            info!("package deleted");
            Ok((StatusCode::OK, format!("deleted {id}\n")))
        }
        Err(e) => Err(ApiError::internal(format!("cannot delete {id}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_params() {
        assert_eq!(job_param(None), Ok(None));
        assert_eq!(job_param(Some("x=1&job=pi-abc")), Ok(Some("pi-abc".into())));
        assert_eq!(
            job_param(Some("job=../x")).unwrap_err().status.as_u16(),
            400
        );
    }
}
