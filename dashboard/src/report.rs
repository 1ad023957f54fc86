//! `POST /api/report`: a job master's report (token needed). It is read whole (at most
//! `MAX_REPORT_BYTES`), parsed and checked before anything is written; the answer carries
//! a kill asked for on the dashboard, and asks for the whole state when the job is new here.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use t2_jobmaster::reporters::wire::{now_ms, Report, ReportReply, MAX_REPORT_BYTES};

use crate::error::ApiError;
use crate::server::AppState;
use crate::store;

pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the body is larger than {} KiB; nothing stored (reporters split bigger states)",
            limit >> 10
        ),
    )
}

/// Reads a whole body of at most `limit` bytes.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large(limit))
}

pub(crate) async fn report(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ReportReply>, ApiError> {
    let refused = |e: ApiError| {
        s.metrics.refused();
        e
    };
    crate::auth::check(&headers, &s.token).map_err(refused)?;
    let bytes = read_body(&headers, body, MAX_REPORT_BYTES)
        .await
        .map_err(refused)?;
    let report: Report = serde_json::from_slice(&bytes).map_err(|e| {
        refused(ApiError::bad_request(format!(
            "malformed report: {e}; nothing stored"
        )))
    })?;
    store::validate(&report).map_err(|m| {
        refused(ApiError::bad_request(format!(
            "bad report: {m}; nothing stored"
        )))
    })?;
    let full = report.full;
    let job_id = report.job.job_id.clone();
    let span = tracing::debug_span!("report", %job_id, workers = report.workers.len());
    let _enter = span.enter();
    let ingested = s
        .store
        .write("store a report", move |c| {
            store::apply(c, &report, now_ms())
        })
        .await?;
    s.metrics
        .ingested(ingested.workers as u64, ingested.events as u64);
    s.changed(&job_id, &ingested.state);
    Ok(Json(ReportReply {
        kill: ingested.kill,
        need_full: !ingested.known && !full,
    }))
}
