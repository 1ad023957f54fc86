//! Running a job master: serve gRPC on a given listener until the job ends or `shutdown` fires.

use std::future::Future;
use std::sync::Arc;

use t2_proto::package_source_server::PackageSourceServer;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;
use tracing::{info, warn};

use crate::attach::Route;
use crate::cluster::JobCluster;
use crate::master::{Event, Master, EVENTS_CAPACITY};
use crate::messages::MAX_USER_MESSAGE_BYTES;
use crate::service::JobMasterService;
use crate::store::{JobStateStore, MemoryStore};
use crate::{JobMasterConfig, JobMasterError};

pub use crate::master::JobOutcome;

/// Serves the job on `listener` until it ends (returns its outcome) or `shutdown` completes
/// (the job is then KILLED with reason "job master shut down").
pub async fn run(
    listener: TcpListener,
    cfg: JobMasterConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<JobOutcome, JobMasterError> {
    run_with_store(listener, cfg, Arc::new(MemoryStore::default()), shutdown).await
}

/// [`run`] with a given state store.
pub async fn run_with_store(
    listener: TcpListener,
    cfg: JobMasterConfig,
    store: Arc<dyn JobStateStore>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<JobOutcome, JobMasterError> {
    run_with(listener, cfg, store, None, shutdown).await
}

/// [`run`] with a given state store and, when the job master can scale its workers and
/// describe their nodes, its cluster (without one, a scale only changes the job master's count).
pub async fn run_with(
    listener: TcpListener,
    cfg: JobMasterConfig,
    store: Arc<dyn JobStateStore>,
    cluster: Option<Arc<dyn JobCluster>>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<JobOutcome, JobMasterError> {
    let (tx, rx) = mpsc::channel(EVENTS_CAPACITY);
    // With topology lists the job master places workers itself; the cluster describes nodes
    // (node labels) only without them.
    let describer = if cfg.topology.is_some() {
        None
    } else {
        cluster.clone()
    };
    let grace = cfg.end_grace;
    let job_id = cfg.job_id.clone();
    let (reporter, finisher) = match cfg.dashboard.clone() {
        Some(d) => {
            let kill_tx = tx.clone();
            let kill = move |reason: String| {
                let _ = kill_tx.try_send(Event::Kill { reason });
            };
            match crate::reporters::dashboard::spawn(d, &cfg.job_id, cfg.num_workers, kill) {
                Ok((r, f)) => (Some(r), Some(f)),
                Err(e) => {
                    warn!(%job_id, error = %e, "not reporting to the dashboard");
                    (None, None)
                }
            }
        }
        None => (None, None),
    };
    let master = Master::new(cfg.clone(), store)
        .with_cluster(cluster)
        .with_reporter(reporter);
    let service =
        JobMasterService::new(tx.clone(), &cfg.job_id, &cfg.token, cfg.heartbeat_interval)
            .with_cluster(describer)
            .with_board(&master.status_board());
    let master = tokio::spawn(master.run(rx));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // Workers' messages are small (a user message is at most 64 KiB); statuses to watchers
    // list every worker and are as large as the job needs. The workers' streams send shared
    // buffers as they are (see `attach`).
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(Route::new(service, MAX_USER_MESSAGE_BYTES + (64 << 10)))
        .add_service(PackageSourceServer::new(
            crate::package::PackageService::new(&cfg.token, cfg.package.clone())
                .with_expected(cfg.package_expected.clone()),
        ));
    let stopped = async {
        let _ = stop_rx.await;
    };
    let server = match cfg.tls.clone() {
        Some(tls) => tokio::spawn(router.serve_with_incoming_shutdown(
            t2_core::grpc_tls::incoming(listener, tls, "job master"),
            stopped,
        )),
        None => tokio::spawn(
            router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopped),
        ),
    };
    tokio::pin!(shutdown);
    let mut master = master;
    let outcome = tokio::select! {
        out = &mut master => out.map_err(|_| JobMasterError::Stopped)?,
        _ = &mut shutdown => {
            let _ = tx.send(Event::Kill { reason: "job master shut down".into() }).await;
            (&mut master).await.map_err(|_| JobMasterError::Stopped)?
        }
    };
    info!(%job_id, state = crate::master::state_name(outcome.state), "job master stopping");
    // Let the final messages reach workers, watchers and the dashboard, then stop serving.
    match finisher {
        Some(f) => tokio::join!(tokio::time::sleep(grace), f.finish()).0,
        None => tokio::time::sleep(grace).await,
    }
    let _ = stop_tx.send(());
    match tokio::time::timeout(std::time::Duration::from_secs(2), server).await {
        Ok(Ok(Err(e))) => Err(e.into()),
        _ => Ok(outcome),
    }
}
