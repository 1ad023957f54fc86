//! The read API: `GET /api/jobs` (state filter, name search, paging, newest first),
//! `GET /api/jobs/{id}` (the job with its `workers` and `events`), `GET /api/nodes` (workers
//! grouped by datacenter, rack and node). Every answer carries `now_ms`, the dashboard's
//! clock, so a page can show ages.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use t2_jobmaster::reporters::wire::{now_ms, JOB_STATES};

use crate::error::ApiError;
use crate::server::AppState;
use crate::store::{self, JobQuery};

/// Jobs per page unless asked.
const DEFAULT_PER_PAGE: u32 = 25;
/// Most jobs per page.
const MAX_PER_PAGE: u32 = 500;

fn job_query(params: &HashMap<String, String>) -> Result<JobQuery, ApiError> {
    for key in params.keys() {
        if !matches!(key.as_str(), "state" | "q" | "page" | "per_page") {
            return Err(ApiError::bad_request(format!(
                "unknown parameter '{}'; use state, q, page, per_page",
                t2_core::text::one_line(key)
            )));
        }
    }
    let mut states = Vec::new();
    for s in params
        .get("state")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
    {
        if !JOB_STATES.contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "state '{}' is not one of {}",
                t2_core::text::one_line(&s),
                JOB_STATES.join(", ")
            )));
        }
        states.push(s);
    }
    let number = |key: &str, default: u32, max: u32| -> Result<u32, ApiError> {
        match params.get(key) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad_request(format!(
                    "{key} must be a whole number from 1 to {max}, got '{}'",
                    t2_core::text::one_line(v)
                ))),
            },
        }
    };
    Ok(JobQuery {
        states,
        search: params
            .get("q")
            .map(|q| q.trim().to_string())
            .unwrap_or_default(),
        page: number("page", 1, 1_000_000)?,
        per_page: number("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)?,
    })
}

pub(crate) async fn jobs(
    State(s): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let q = job_query(&params)?;
    let page = s
        .store
        .read("list jobs", move |c| store::jobs(c, &q))
        .await?;
    let mut v = serde_json::to_value(page).map_err(ApiError::internal)?;
    v["now_ms"] = json!(now_ms());
    Ok(Json(v))
}

pub(crate) async fn job(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    t2_core::names::validate_job_id(&id).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let key = id.clone();
    let found = s
        .store
        .read("read a job", move |c| store::job(c, &key))
        .await?;
    let Some((job, workers, events)) = found else {
        return Err(ApiError::not_found(format!(
            "no job {id} on this dashboard"
        )));
    };
    let mut v = serde_json::to_value(job).map_err(ApiError::internal)?;
    v["workers"] = serde_json::to_value(workers).map_err(ApiError::internal)?;
    v["events"] = serde_json::to_value(events).map_err(ApiError::internal)?;
    v["now_ms"] = json!(now_ms());
    Ok(Json(v))
}

pub(crate) async fn nodes(
    State(s): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let all = match params.get("all").map(String::as_str) {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "all must be true or false, got '{}'",
                t2_core::text::one_line(other)
            )))
        }
    };
    let mut v = s
        .store
        .read("group workers by node", move |c| store::nodes(c, all))
        .await?;
    v["now_ms"] = json!(now_ms());
    Ok(Json(v))
}
