//! `t2 scale JOB N`: ask a running job's job master for N workers. The launcher cannot reach
//! the in-cluster job master's gRPC, so the request travels through the job's root ConfigMap
//! ([`scale_request`](super::scale_request)): `t2 scale` writes it and waits for the answer;
//! the job master ([`incluster::scaler`](super::incluster::scaler)) carries it out through its
//! one scale path — the `Scale` RPC, which patches the worker StatefulSet's scale subresource
//! ([`patch_scale`], N / workers_per_pod replicas, N recorded in the root) and tells the
//! workers — and writes the answer back.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};

use super::client::Kube;
use super::error::{is_status, KubeError, Op};
use super::follow::is_final;
use super::jobs::get_root;
use super::manifests::root::keys;
use super::names::JobNames;
use super::root_watch::{Read, RootChange, RootWatch};
use super::scale_request::{ScaleAnswer, ScaleRequest};
use t2_core::spec::check_worker_count;

/// Checks `workers` against `workers_per_pod`; returns the pods.
pub fn pods_for(workers: u32, workers_per_pod: u32) -> Result<u32, KubeError> {
    check_worker_count(workers).map_err(KubeError::Config)?;
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

/// How long `t2 scale` waits for the job master's answer.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(60);

/// How often a withdrawal is tried again when the root changed under it.
const WITHDRAW_ATTEMPTS: u32 = 3;

/// `t2 scale JOB N`; returns the number of pods.
pub async fn scale(kube: &Kube, id: &str, workers: u32) -> Result<u32, KubeError> {
    scale_within(kube, id, workers, ANSWER_DEADLINE).await
}

/// [`scale`], waiting at most `deadline` for the job master's answer. At the deadline the
/// request is withdrawn (unless the answer came after all), so a job master that was down
/// does not carry out later what the user was told failed.
pub async fn scale_within(
    kube: &Kube,
    id: &str,
    workers: u32,
    deadline: Duration,
) -> Result<u32, KubeError> {
    let root = get_root(kube, id).await?;
    let data = root.data.unwrap_or_default();
    let state = super::record::state(&data).0;
    if is_final(&state) {
        return Err(KubeError::Config(format!(
            "job {id} is {state}; only a running job can be scaled"
        )));
    }
    // Issue 18: Kueue admits the job at its size and does not follow a scale.
    if let Some(why) = super::gang::scale_refusal_of(&data) {
        return Err(failed(id, why));
    }
    let wpp = workers_per_pod(&data);
    pods_for(workers, wpp)?;
    // Existing claims must fit the new number of pods (a ReadWriteOnce claim, one pod).
    if let Some(spec) = data
        .get(keys::SPEC)
        .and_then(|j| serde_json::from_str::<t2_core::spec::JobSpec>(j).ok())
    {
        super::claims::check_scale(kube, &spec, workers).await?;
    }
    let request = ScaleRequest::new(workers);
    let body = serde_json::json!({"data": {keys::SCALE_REQUEST: request.to_json()}});
    let patched = kube
        .api::<ConfigMap>()
        .patch(id, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(|e| match e {
            e if is_status(&e, 404) => KubeError::NoSuchJob {
                id: id.into(),
                namespace: kube.namespace.clone(),
            },
            e => Op::named("patch", "configmaps", &kube.namespace, id).error(&kube.server, e),
        })?;
    let rv = patched.metadata.resource_version.unwrap_or_default();
    let answered = match tokio::time::timeout(deadline, await_answer(kube, id, &request, rv)).await
    {
        Ok(answer) => answer?,
        Err(_) => withdraw(kube, id, &request, deadline).await?,
    };
    Ok(answered / wpp)
}

fn workers_per_pod(data: &BTreeMap<String, String>) -> u32 {
    data.get(keys::WORKERS_PER_POD)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn failed(id: &str, why: impl Into<String>) -> KubeError {
    KubeError::ScaleFailed {
        job: id.into(),
        why: why.into(),
    }
}

/// What the root's `data` says about `request`: its answer, that another request replaced
/// it, or that the job ended; `None` while the job master has not answered.
fn verdict(
    id: &str,
    request: &ScaleRequest,
    data: &BTreeMap<String, String>,
) -> Option<Result<u32, KubeError>> {
    if let Some(answer) = ScaleAnswer::from_data(data).filter(|a| a.id == request.id) {
        return Some(
            answer
                .outcome()
                .map_err(|why| failed(id, format!("the job master refused: {why}"))),
        );
    }
    match ScaleRequest::from_data(data) {
        Some(other) if other.id != request.id => {
            return Some(Err(failed(
                id,
                format!(
                    "another scale request ({} workers) replaced this one before the job master answered; see 't2 status {id}'",
                    other.workers
                ),
            )))
        }
        None => {
            return Some(Err(failed(
                id,
                "the request was removed from the job's root before the job master answered",
            )))
        }
        Some(_) => {}
    }
    let state = super::record::state(data).0;
    is_final(&state).then(|| {
        Err(failed(
            id,
            format!("the job ended ({state}) before its job master answered"),
        ))
    })
}

/// Watches root `id` from `rv` until the job master answers `request`.
///
/// A watch rather than polling: the answer is seen as soon as the job master writes it, with
/// one open request instead of one per poll, and starting from the resourceVersion the request
/// patch returned means no change can slip in between. A watch the server ends is resumed
/// from the last version seen; an expired version (410) is read again with a GET.
async fn await_answer(
    kube: &Kube,
    id: &str,
    request: &ScaleRequest,
    rv: String,
) -> Result<u32, KubeError> {
    let mut watch = RootWatch::new(kube, id, Read::Get);
    if !rv.is_empty() {
        watch = watch.from_version(rv);
    }
    loop {
        match watch.next().await? {
            RootChange::Now(root) => {
                if let Some(v) = verdict(id, request, &root.data.unwrap_or_default()) {
                    return v;
                }
            }
            RootChange::Gone(_) => return Err(gone(id)),
        }
    }
}

fn gone(id: &str) -> KubeError {
    failed(
        id,
        "the job ended (its root ConfigMap was deleted) before its job master answered",
    )
}

/// At the deadline: takes `request` back out of the root — only if it is still there and the
/// root did not change meanwhile (a merge patch with the resourceVersion read is refused with
/// 409 otherwise) — and returns the deadline error; or the answer, if it came after all.
async fn withdraw(
    kube: &Kube,
    id: &str,
    request: &ScaleRequest,
    deadline: Duration,
) -> Result<u32, KubeError> {
    let ns = &kube.namespace;
    let jm = JobNames::new(id).jobmaster_pod();
    let late = || {
        failed(
            id,
            format!(
                "its job master did not answer within {}, so the request was withdrawn; check that pod {jm} runs and what it logs ('kubectl -n {ns} get pod {jm}', 'kubectl -n {ns} logs {jm}'), then try again",
                t2_core::duration::format_duration(deadline)
            ),
        )
    };
    for _ in 0..WITHDRAW_ATTEMPTS {
        let root = get_root(kube, id).await.map_err(|e| match e {
            KubeError::NoSuchJob { .. } => gone(id),
            e => e,
        })?;
        let data = root.data.clone().unwrap_or_default();
        if let Some(v) = verdict(id, request, &data) {
            return v;
        }
        let body = serde_json::json!({
            "metadata": {"resourceVersion": root.metadata.resource_version},
            "data": {keys::SCALE_REQUEST: null},
        });
        match kube
            .api::<ConfigMap>()
            .patch(id, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => return Err(late()),
            Err(e) if is_status(&e, 409) => continue,
            Err(e) if is_status(&e, 404) => return Err(gone(id)),
            Err(e) => return Err(Op::named("patch", "configmaps", ns, id).error(&kube.server, e)),
        }
    }
    Err(failed(
        id,
        format!(
            "its job master did not answer within {} and the request could not be withdrawn (the job's root kept changing); see 't2 status {id}'",
            t2_core::duration::format_duration(deadline)
        ),
    ))
}
