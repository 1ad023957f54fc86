//! `t2 scale JOB N`: set the number of workers of a running job — the worker StatefulSet's
//! scale subresource gets N / workers_per_pod replicas, and the root records N so the job
//! master (and `t2 status`) know. The same two patches are what the in-cluster job master's
//! in-cluster job master does when it scales.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};

use super::client::Kube;
use super::error::{KubeError, Op};
use super::jobs::get_root;
use super::manifests::root::keys;

/// Most workers a job may have.
pub const MAX_WORKERS: u32 = 100_000;

/// Checks `workers` against `workers_per_pod`; returns the pods.
pub fn pods_for(workers: u32, workers_per_pod: u32) -> Result<u32, KubeError> {
    if workers == 0 || workers > MAX_WORKERS {
        return Err(KubeError::Config(format!(
            "the number of workers must be 1-{MAX_WORKERS}, got {workers}"
        )));
    }
    if !workers.is_multiple_of(workers_per_pod) {
        return Err(KubeError::Config(format!(
            "{workers} workers do not fill whole pods of {workers_per_pod} workers; use a multiple of {workers_per_pod}"
        )));
    }
    Ok(workers / workers_per_pod)
}

/// Patches the scale of StatefulSet `sts` to `replicas` and records `workers` in root `id`.
pub async fn patch_scale(
    kube: &Kube,
    id: &str,
    sts: &str,
    replicas: u32,
    workers: u32,
) -> Result<(), KubeError> {
    let scale = serde_json::json!({"spec": {"replicas": replicas}});
    kube.api::<StatefulSet>()
        .patch_scale(sts, &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .map_err(|e| {
            Op::named("patch", "statefulsets/scale.apps", &kube.namespace, sts)
                .error(&kube.server, e)
        })?;
    let data = serde_json::json!({"data": {keys::WORKERS: workers.to_string()}});
    kube.api::<ConfigMap>()
        .patch(id, &PatchParams::default(), &Patch::Merge(&data))
        .await
        .map_err(|e| {
            Op::named("patch", "configmaps", &kube.namespace, id).error(&kube.server, e)
        })?;
    Ok(())
}

/// `t2 scale JOB N`; returns the number of pods.
pub async fn scale(kube: &Kube, id: &str, workers: u32) -> Result<u32, KubeError> {
    let root = get_root(kube, id).await?;
    let data = root.data.unwrap_or_default();
    let state = super::record::state(&data).0;
    if super::follow::is_final(&state) {
        return Err(KubeError::Config(format!(
            "job {id} is {state}; only a running job can be scaled"
        )));
    }
    let wpp: u32 = data
        .get(keys::WORKERS_PER_POD)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let pods = pods_for(workers, wpp)?;
    patch_scale(
        kube,
        id,
        &super::names::JobNames::new(id).workers(),
        pods,
        workers,
    )
    .await?;
    Ok(pods)
}
