//! `t2 pod jobmaster`: the job master inside the cluster. It finds its job from the pod's
//! environment and the root ConfigMap (mounted spec, token from the job's Secret), serves on
//! `T2_LISTEN`, records the job's state in the root ([`ConfigMapStore`], or ZooKeeper for
//! fault-tolerant jobs), scales and describes nodes through [`KubeJobCluster`], carries out
//! `t2 scale` requests written into the root ([`Scaler`], through its own `Scale` RPC on
//! loopback), and at the end records the final state and
//! deletes the root ([`KubeJobCluster::end_job`]), which removes the whole job — after
//! `kubernetes.ttl_after_finished`, which it waits out ([`super::finished`]; a job master
//! started for a finished job only does that). It answers the kubelet's gRPC probes
//! ([`super::health`]). With uploader delivery it keeps the job's lease on its package while
//! the job runs and drops it at the end ([`super::lease`]). SIGTERM (its pod going away) only stops it: the next job master
//! reads the job back from the root.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use t2_jobmaster::cluster::JobCluster;
use t2_jobmaster::config::RestartBackoff;
use t2_jobmaster::store::JobStateStore;
use t2_jobmaster::JobMasterConfig;
use tracing::{info, warn, Instrument};

use super::cluster::KubeJobCluster;
use super::env;
use super::scaler::Scaler;
use super::store::ConfigMapStore;
use crate::client::{connect, ClientOptions, Kube};
use crate::manifests::pod::env as names;
use crate::manifests::root::keys;
use crate::settings::{read_settings, Settings};

/// How long the job master tries to reach ZooKeeper at start.
const ZK_CONNECT_DEADLINE: Duration = Duration::from_secs(15);
/// How long the cluster may take to scale: this plus the job master's at most 10 s of setting
/// the old count back after a missed deadline stays under the scaler's RPC deadline (45 s),
/// itself under `t2 scale`'s wait, so a slow API server yields the job master's reason, not a
/// timeout.
const SCALE_TIMEOUT: Duration = Duration::from_secs(30);

/// The job master's own gRPC address as seen from its pod: loopback when it listens on every
/// address, else the address it listens on.
pub fn loopback_endpoint(local: std::net::SocketAddr) -> String {
    loopback_endpoint_with(local, "http")
}

/// [`loopback_endpoint`] with `scheme` (`https` with TLS).
pub fn loopback_endpoint_with(local: std::net::SocketAddr, scheme: &str) -> String {
    let ip = match local.ip() {
        std::net::IpAddr::V4(a) if a.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(a) if a.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("{scheme}://{}", std::net::SocketAddr::new(ip, local.port()))
}

/// The package's sha256 and size when the job's root says it is delivered directly.
async fn direct_package(kube: &Kube, id: &str) -> Result<Option<(String, u64)>, String> {
    let root = kube
        .api::<ConfigMap>()
        .get(id)
        .await
        .map_err(|e| format!("cannot read the job's root ConfigMap {id}: {e}"))?;
    let data = root.data.unwrap_or_default();
    if data.get(keys::PACKAGE_DELIVERY).map(String::as_str) != Some("direct") {
        return Ok(None);
    }
    let sha256 = data.get(keys::PACKAGE_SHA256).cloned().unwrap_or_default();
    let bytes = data
        .get(keys::PACKAGE_BYTES)
        .and_then(|b| b.parse().ok())
        .ok_or_else(|| format!("the job's root ConfigMap {id} records no package size"))?;
    Ok(Some((sha256, bytes)))
}

/// When the job's root says the job has finished and is kept until a time: that time.
async fn finished_until(
    kube: &Kube,
    id: &str,
) -> Result<Option<k8s_openapi::jiff::Timestamp>, String> {
    let root = kube
        .api::<ConfigMap>()
        .get_opt(id)
        .await
        .map_err(|e| format!("cannot read the job's root ConfigMap {id}: {e}"))?;
    Ok(root.and_then(|r| super::finished::kept_until(&r.data.unwrap_or_default())))
}

/// Runs the job master until the job ends (or `shutdown`); returns the exit code.
pub async fn run_jobmaster(shutdown: impl Future<Output = ()> + Send) -> Result<i32, String> {
    tokio::pin!(shutdown);
    let id = env::required(names::JOB_ID)?;
    let token = env::required(names::JOB_TOKEN)?;
    let listen = std::env::var(names::LISTEN).unwrap_or_else(|_| "0.0.0.0:7710".into());
    let namespace = env::required(names::NAMESPACE)?;
    let spec = env::job_spec()?;
    let kube = connect(&ClientOptions {
        namespace: Some(namespace.clone()),
        ..ClientOptions::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let health_listen =
        std::env::var(names::HEALTH_LISTEN).unwrap_or_else(|_| "0.0.0.0:7711".into());
    let health = super::health::serve(&health_listen, std::future::pending()).await?;
    if let Some(at) = finished_until(&kube, &id).await? {
        // The job finished under an earlier job master: only its stay is left.
        super::finished::linger_then_remove(&kube, &id, at, &mut shutdown).await?;
        return Ok(0);
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let port = local.port();
    let tls = if spec.tls {
        Some(env::jobmaster_tls(&crate::manifests::jobmaster_dns(
            &id, &namespace,
        ))?)
    } else {
        None
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let address = format!(
        "{scheme}://{}:{port}",
        crate::manifests::jobmaster_dns(&id, &namespace)
    );
    let loopback = loopback_endpoint_with(local, scheme);
    let store: Arc<dyn JobStateStore> = if spec.fault_tolerant {
        let zk = &spec.zookeeper;
        let session =
            t2_core::zk::Zk::connect(&zk.addresses, zk.session_timeout, ZK_CONNECT_DEADLINE)
                .await
                .map_err(|e| e.to_string())?;
        Arc::new(t2_jobmaster::zkstore::ZkStore::new(
            session, &zk.root, &id, &address,
        ))
    } else {
        Arc::new(ConfigMapStore::new(kube.clone(), &id))
    };
    let settings = read_settings(&spec).unwrap_or_else(|e| {
        warn!(job_id = %id, error = %e, "the job's kubernetes settings do not read; using the default rack and datacenter labels");
        Settings::default()
    });
    let mut cluster =
        KubeJobCluster::with_settings(kube.clone(), &id, spec.workers_per_pod, &settings);
    let disruption_watch = cluster.watch_disruptions();
    let cluster = Arc::new(cluster);
    let mut cfg = JobMasterConfig::from_spec(&id, &token, &spec);
    cfg.scale_timeout = SCALE_TIMEOUT;
    // The kubelet waits 10 s, 20 s, 40 s … 5 min before restarting a crashed worker.
    cfg.restart_backoff = RestartBackoff {
        first: crate::podstate::KUBELET_BACKOFF_FIRST,
        max: crate::podstate::KUBELET_BACKOFF_MAX,
    };
    // Direct delivery: workers offer their copy of the package here (this pod's work area
    // starts empty, also when the StatefulSet re-made it); pods made later fetch it.
    if let Some(expected) = direct_package(&kube, &id).await? {
        cfg.package = Some(env::package_path());
        cfg.package_expected = Some(expected);
    }
    cfg.tls = tls.as_ref().map(|t| t.server.clone());
    let loopback_dialer = tls.map(|t| t.loopback).unwrap_or_default();
    if let Some(d) = cfg.dashboard.as_mut() {
        d.cluster = "kubernetes".into();
        d.namespace = namespace.clone();
    }
    let lease = super::lease::PackageLease::from_env(&id)?;
    let span = tracing::info_span!("jobmaster", job_id = %id);
    async move {
        info!(%address, "job master serving");
        let renewal = lease.as_ref().map(|l| l.spawn_renewal());
        let scaler = tokio::spawn(
            Scaler::new(kube.clone(), &id, &loopback, &token)
                .with_dialer(loopback_dialer)
                .run()
                .in_current_span(),
        );
        let jc: Arc<dyn JobCluster> = cluster.clone();
        health.serving().await;
        // SIGTERM means this pod is going away (deleted, evicted, drained), not that the job
        // should end (`t2 kill` deletes the root instead): stop serving and leave the job's
        // state in the root for the job master the StatefulSet starts next, which the
        // workers reconnect to. Ending the job here would delete the root and so the job.
        let served = t2_jobmaster::server::run_with(
            listener,
            cfg,
            store,
            Some(jc),
            std::future::pending::<()>(),
        );
        let outcome = tokio::select! {
            outcome = served => outcome,
            () = &mut shutdown => {
                scaler.abort();
                disruption_watch.abort();
                // The next job master renews the lease.
                if let Some(r) = &renewal {
                    r.abort();
                }
                info!("the pod is stopping; leaving the job to the next job master");
                // Let batched worker records reach the root.
                tokio::time::sleep(super::store::FLUSH * 2).await;
                return Ok(0);
            }
        };
        scaler.abort();
        disruption_watch.abort();
        health.not_serving().await;
        if let Some(r) = &renewal {
            r.abort();
        }
        let outcome = outcome.map_err(|e| e.to_string())?;
        // The job has ended: no pod fetches the package any more.
        if let Some(l) = &lease {
            l.release().await;
        }
        let state = t2_jobmaster::master::state_name(outcome.state);
        info!(state, reason = %outcome.reason, "job ended; removing it from the cluster");
        if let Err(e) = cluster.end_job(outcome.state, &outcome.reason).await {
            warn!(error = %e, "could not remove the job; 't2 gc' will");
            return Err(format!("job {id} {state}, but removing it failed: {e}"));
        }
        if !cluster.ttl_after_finished().is_zero() {
            match finished_until(&kube, &id).await {
                Ok(Some(at)) => {
                    super::finished::linger_then_remove(&kube, &id, at, &mut shutdown).await?
                }
                // Gone (killed) or no marker: nothing to wait for.
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(0)
    }
    .instrument(span)
    .await
}
