//! `POST /api/jobs/{id}/kill` (token needed): records the request; the job's master hears it
//! in the answer to its next report and ends the job KILLED, as `t2 kill` would. The dashboard
//! itself needs no permission on any cluster.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use t2_jobmaster::reporters::wire::now_ms;

use crate::error::ApiError;
use crate::server::AppState;
use crate::store::{self, KillAsked};

/// Largest kill request body.
const MAX_KILL_BODY: usize = 4096;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct KillBody {
    #[serde(default)]
    reason: String,
}

pub(crate) async fn kill(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    crate::auth::check(&headers, &s.token)?;
    let bytes = crate::report::read_body(&headers, body, MAX_KILL_BODY).await?;
    let asked: KillBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        KillBody::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "malformed kill request: {e}; send nothing or {{\"reason\": \"...\"}}; nothing changed"
            ))
        })?
    };
    t2_core::names::validate_job_id(&id)
        .map_err(|e| ApiError::bad_request(format!("{e}; nothing changed")))?;
    let reason = match asked.reason.trim() {
        "" => "killed from the dashboard".to_string(),
        r => format!(
            "killed from the dashboard: {}",
            t2_core::text::one_line(r)
                .chars()
                .take(300)
                .collect::<String>()
        ),
    };
    let (job, why) = (id.clone(), reason.clone());
    let outcome = s
        .store
        .write("record a kill request", move |c| {
            store::ask_kill(c, &job, &why, now_ms())
        })
        .await?;
    match outcome {
        KillAsked::Unknown => Err(ApiError::not_found(format!(
            "no job {id} on this dashboard; nothing changed"
        ))),
        KillAsked::Ended(state) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {id} has already ended ({state}); nothing to kill"),
        )),
        KillAsked::Recorded => {
            s.metrics.kill_asked();
            tracing::info!(job_id = %id, %reason, "kill requested");
            s.changed(&id, "KILL_REQUESTED");
            Ok((
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "job_id": id,
                    "kill": "requested: the job master ends the job at its next report",
                })),
            ))
        }
    }
}
