//! `GET /metrics`: Prometheus text — reports taken and refused, workers and events stored,
//! kill requests, open event streams, and jobs per state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::ApiError;
use crate::server::AppState;

/// The dashboard's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    reports: AtomicU64,
    refused: AtomicU64,
    workers: AtomicU64,
    events: AtomicU64,
    kills: AtomicU64,
    sse: Arc<AtomicU64>,
}

/// Counts an open event stream while alive.
pub(crate) struct SseGuard(Arc<AtomicU64>);

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    pub fn ingested(&self, workers: u64, events: u64) {
        self.reports.fetch_add(1, Ordering::Relaxed);
        self.workers.fetch_add(workers, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
    }

    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn kill_asked(&self) {
        self.kills.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sse_open(&self) -> SseGuard {
        self.sse.fetch_add(1, Ordering::Relaxed);
        SseGuard(self.sse.clone())
    }
}

pub(crate) async fn metrics(State(s): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let counts = s.store.read("count jobs", crate::store::counts).await?;
    let m = &s.metrics;
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let mut text = String::new();
    let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    counter(
        "t2_dashboard_reports_total",
        "Reports from job masters stored.",
        "counter",
        get(&m.reports),
    );
    counter(
        "t2_dashboard_reports_refused_total",
        "Reports refused (token, size, malformed).",
        "counter",
        get(&m.refused),
    );
    counter(
        "t2_dashboard_worker_updates_total",
        "Worker records stored from reports.",
        "counter",
        get(&m.workers),
    );
    counter(
        "t2_dashboard_events_total",
        "Job events stored.",
        "counter",
        get(&m.events),
    );
    counter(
        "t2_dashboard_kill_requests_total",
        "Kill requests recorded.",
        "counter",
        get(&m.kills),
    );
    counter(
        "t2_dashboard_event_streams",
        "Open /api/events streams.",
        "gauge",
        get(&m.sse),
    );
    text.push_str(
        "# HELP t2_dashboard_jobs Jobs in the history, by state.\n# TYPE t2_dashboard_jobs gauge\n",
    );
    for (state, n) in counts {
        text.push_str(&format!("t2_dashboard_jobs{{state=\"{state}\"}} {n}\n"));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}
