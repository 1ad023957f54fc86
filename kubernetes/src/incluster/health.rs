//! The job master's gRPC health service (`grpc.health.v1.Health`, tonic-health) on its own
//! plaintext port (`kubernetes.health_port`), for the kubelet's native `grpc` probes, which
//! speak no TLS (a job with `tls: true` serves its job master port over TLS). It carries no
//! job data, so it needs no token. Two answers:
//! - the overall service (`""`, the liveness probe): SERVING while the process runs its event
//!   loop — a finished job keeping its pods (`ttl_after_finished`) is alive too;
//! - [`SERVICE`] (the readiness probe): SERVING while the job master serves workers, NOT_SERVING
//!   before it does and once the job has finished.

use std::future::Future;
use std::net::SocketAddr;

use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use tracing::warn;

/// The service name the readiness probe asks about.
pub const SERVICE: &str = "t2.JobMaster";

/// The health service's handle: what the job master tells the probes.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
}

impl Health {
    /// The job master serves workers (ready).
    pub async fn serving(&self) {
        self.reporter
            .set_service_status(SERVICE, ServingStatus::Serving)
            .await;
    }

    /// The job master does not serve workers (not ready; still alive).
    pub async fn not_serving(&self) {
        self.reporter
            .set_service_status(SERVICE, ServingStatus::NotServing)
            .await;
    }
}

/// Binds `addr` and serves the health service until `shutdown`; [`SERVICE`] starts
/// NOT_SERVING.
pub async fn serve(
    addr: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Health, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (the health port): {e}"))?;
    let local: Option<SocketAddr> = listener.local_addr().ok();
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(SERVICE, ServingStatus::NotServing)
        .await;
    tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(listener),
                shutdown,
            )
            .await;
        if let Err(e) = served {
            warn!(address = ?local, error = %e, "the health service stopped");
        }
    });
    Ok(Health { reporter })
}
