//! The uploader's HTTP server: routes, request counting, and a bounded graceful shutdown.
//! [`run`] takes a bound listener and a shutdown future, so tests and `t2 uploader` start the
//! same server.

use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use futures::FutureExt;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::error::{ApiError, UploaderError};
use crate::limits::{Gate, Limits};
use crate::metrics::Metrics;
use crate::store::{PackageId, Store};
use crate::{auth, download, sweep, upload};

/// How long in-flight requests may run on after shutdown was asked for.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Everything `t2 uploader` is configured with.
#[derive(Debug, Clone)]
pub struct UploaderConfig {
    /// The store's folder.
    pub dir: PathBuf,
    /// The token for writes and deletes.
    pub token: String,
    /// Limits on uploads.
    pub limits: Limits,
    /// Packages unused for longer than this are removed.
    pub ttl: Duration,
    /// How often the TTL sweep runs.
    pub sweep_interval: Duration,
    /// How long a job's reference (lease) lives without being renewed.
    pub lease: Duration,
    /// Serve HTTPS with this configuration (`t2 uploader --tls-cert --tls-key`); `None`
    /// serves plain HTTP.
    pub tls: Option<Arc<t2_core::tls::rustls::ServerConfig>>,
}

/// The server's shared state.
#[derive(Debug)]
pub struct App {
    /// The packages.
    pub store: Arc<Store>,
    /// Upload admission.
    pub gate: Gate,
    /// Counters.
    pub metrics: Metrics,
    token: String,
}

/// Serves on `listener` until `shutdown` completes (then lets requests finish for up to 5 s).
pub async fn run(
    listener: TcpListener,
    config: UploaderConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), UploaderError> {
    let store = Store::open(&config.dir)
        .map_err(UploaderError::io(format!(
            "cannot open the package store {}",
            config.dir.display()
        )))?
        .with_lease(config.lease);
    let app = Arc::new(App {
        store: Arc::new(store),
        gate: Gate::new(config.limits.clone()),
        metrics: Metrics::default(),
        token: config.token.clone(),
    });
    let totals = app.store.totals();
    info!(dir = %config.dir.display(), packages = totals.count, bytes = totals.bytes, "uploader serving");
    let sweeper = tokio::spawn(sweep::run(app.clone(), config.ttl, config.sweep_interval));
    let shutdown = shutdown.shared();
    let result = match config.tls.clone() {
        Some(tls) => {
            let listener = crate::tls::TlsListener::new(listener, tls);
            let server =
                axum::serve(listener, router(app)).with_graceful_shutdown(shutdown.clone());
            until_shutdown(server.into_future(), shutdown).await
        }
        None => {
            let server =
                axum::serve(listener, router(app)).with_graceful_shutdown(shutdown.clone());
            until_shutdown(server.into_future(), shutdown).await
        }
    };
    sweeper.abort();
    result
}

/// Runs `server`; once `shutdown` completes, lets it finish requests for [`SHUTDOWN_GRACE`].
async fn until_shutdown(
    server: impl Future<Output = std::io::Result<()>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), UploaderError> {
    tokio::select! {
        r = server => r.map_err(UploaderError::io("the uploader stopped serving")),
        _ = async { shutdown.await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
            warn!("requests still running {SHUTDOWN_GRACE:?} after shutdown; stopping anyway");
            Ok(())
        }
    }
}

/// The routes.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route(
            "/packages/{id}",
            get(get_package)
                .head(head_package)
                .put(put_package)
                .delete(delete_package),
        )
        .route("/packages/{id}/refs/{job}", put(put_ref))
        .fallback(|uri: Uri| async move {
            ApiError::not_found(format!(
                "no such endpoint '{}'; packages are at /packages/<sha256>",
                uri.path().chars().take(200).collect::<String>()
            ))
        })
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .with_state(app)
}

/// Counts every request and its status.
async fn count(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let resp = next.run(req).await;
    app.metrics.record(method.as_str(), resp.status().as_u16());
    if resp.status().is_server_error() {
        warn!(%method, status = resp.status().as_u16(), "request failed");
    }
    resp
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = app
        .metrics
        .render(app.store.totals(), app.gate.uploads_in_progress());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

fn package_id(raw: &str) -> Result<PackageId, ApiError> {
    PackageId::parse(raw).map_err(ApiError::bad_request)
}

async fn get_package(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    download::get(app, package_id(&id)?, headers, false).await
}

async fn head_package(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    download::get(app, package_id(&id)?, headers, true).await
}

async fn put_package(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = package_id(&id)?;
    auth::check(&headers, &app.token)?;
    let job = upload::job_param(uri.query())?;
    upload::put(app, id, job, headers, body).await
}

async fn put_ref(
    State(app): State<Arc<App>>,
    Path((id, job)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = package_id(&id)?;
    auth::check_ref(&headers, &app.token, &id.to_string(), &job)?;
    upload::add_ref(app, id, &job).await
}

async fn delete_package(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<(StatusCode, String), ApiError> {
    let id = package_id(&id)?;
    let job = upload::job_param(uri.query())?;
    // Dropping one job's reference is that job's business; deleting outright needs the token.
    match &job {
        Some(j) => auth::check_ref(&headers, &app.token, &id.to_string(), j)?,
        None => auth::check(&headers, &app.token)?,
    }
    upload::delete(app, id, job).await
}
