//! The dashboard server: routes, shared state and shutdown. [`run`] serves on a bound
//! listener until `shutdown` completes; live event streams end with it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::DashboardError;

/// How many change notices wait for a slow event-stream client before it is told to resync.
const CHANGES_BOUND: usize = 1024;

/// What the dashboard needs.
#[derive(Debug, Clone)]
pub struct DashboardConfig {
    /// The SQLite file of the history.
    pub db: PathBuf,
    /// The token that reports and kill requests must carry.
    pub token: String,
    /// Serve HTTPS with this configuration (`t2 dash --tls-cert --tls-key`); `None` serves
    /// plain HTTP.
    pub tls: Option<Arc<t2_core::tls::rustls::ServerConfig>>,
}

/// Shared by every request.
#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Store,
    pub token: Arc<str>,
    /// Change notices (JSON) for `/api/events`.
    pub changes: broadcast::Sender<String>,
    pub metrics: Arc<Metrics>,
    /// Becomes true when the server stops, so event streams end.
    pub stopping: watch::Receiver<bool>,
}

impl AppState {
    /// Tells event-stream clients that `job_id` changed.
    pub fn changed(&self, job_id: &str, state: &str) {
        let notice = serde_json::json!({ "job_id": job_id, "state": state }).to_string();
        let _ = self.changes.send(notice);
    }
}

/// The routes.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(crate::page::index))
        .route("/app.js", get(crate::page::script))
        .route("/style.css", get(crate::page::style))
        .route("/api/jobs", get(crate::api::jobs))
        .route("/api/jobs/{id}", get(crate::api::job))
        .route("/api/jobs/{id}/kill", post(crate::kill::kill))
        .route("/api/nodes", get(crate::api::nodes))
        .route("/api/events", get(crate::events::events))
        .route("/api/report", post(crate::report::report))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(crate::metrics::metrics))
        .fallback(|| async {
            ApiError::not_found(
                "no such page or API; the API is under /api (jobs, jobs/ID, jobs/ID/kill, nodes, events)",
            )
        })
        .with_state(state)
}

/// Opens the history and serves the dashboard on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: DashboardConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DashboardError> {
    let store = Store::open(&config.db)?;
    let (changes, _) = broadcast::channel(CHANGES_BOUND);
    let (stop_tx, stopping) = watch::channel(false);
    let state = AppState {
        store,
        token: config.token.into(),
        changes,
        metrics: Arc::new(Metrics::default()),
        stopping,
    };
    let app = router(state);
    let addr = listener.local_addr().ok();
    tracing::info!(?addr, db = %config.db.display(), "dashboard serving");
    let shutdown = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    match config.tls {
        Some(tls) => axum::serve(crate::tls::TlsListener::new(listener, tls), app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(DashboardError::Serve),
        None => axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(DashboardError::Serve),
    }
}
