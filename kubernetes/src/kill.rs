//! `t2 kill JOB` on Kubernetes: record KILLED in the job's root (so followers see why), delete
//! the root in the foreground (garbage collection removes everything it owns, the
//! StatefulSets after their pods, and the root stays, being deleted, until the last of them
//! is gone), then wait up to a deadline for the root and every object of the job to be gone,
//! and report any that are left. So a killed job is gone when its last pod is.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use tokio::time::Instant;
use tracing::info;

use super::client::Kube;
use super::create::delete_root_foreground;
use super::error::{is_status, KubeError, Op};
use super::inventory::{list_objects, Found};
use super::manifests::labels::job_selector;
use super::manifests::root::keys;

/// How often the objects are listed while waiting.
const POLL: Duration = Duration::from_secs(1);

/// What a kill left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Killed {
    /// Objects still there at the deadline.
    pub leftovers: Vec<Found>,
    /// The root was gone by the deadline (a foreground delete: after the job's last pod).
    pub root_gone: bool,
}

/// Checks a user-given job ID.
pub fn check_id(id: &str) -> Result<(), KubeError> {
    t2_core::names::validate_job_id(id).map_err(|e| KubeError::Config(e.to_string()))
}

/// Kills job `id`: see the module documentation. `who` is recorded as the reason.
/// `deleting` is called once the job is marked KILLED and its foreground deletion has begun
/// (a progress line; an error before that point is the only output).
pub async fn kill(
    kube: &Kube,
    id: &str,
    who: &str,
    wait: Duration,
    deleting: impl FnOnce(),
) -> Result<Killed, KubeError> {
    check_id(id)?;
    let api = kube.api::<ConfigMap>();
    let patch = serde_json::json!({"data": {
        keys::STATE: "KILLED",
        keys::REASON: format!("killed by {who} with t2 kill"),
        keys::STATE_AT: t2_core::jobdir::now_rfc3339(),
    }});
    match api
        .patch(id, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {
            return Err(KubeError::NoSuchJob {
                id: id.into(),
                namespace: kube.namespace.clone(),
            })
        }
        Err(e) => {
            return Err(Op::named("patch", "configmaps", &kube.namespace, id).error(&kube.server, e))
        }
    }
    delete_root_foreground(kube, id).await?;
    info!(job_id = %id, "deleting the job's root ConfigMap in the foreground");
    deleting();
    let deadline = Instant::now() + wait;
    let selector = job_selector(id);
    loop {
        let root_gone = api
            .get_opt(id)
            .await
            .map_err(|e| {
                Op::named("get", "configmaps", &kube.namespace, id).error(&kube.server, e)
            })?
            .is_none();
        let left = list_objects(kube, &selector, true).await?;
        if (root_gone && left.is_empty()) || Instant::now() >= deadline {
            return Ok(Killed {
                leftovers: left,
                root_gone,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The leftovers grouped by kind, for one line: `StatefulSet/a, Pod/a-0 (being deleted)`.
pub fn describe(left: &[Found]) -> String {
    let mut by_kind: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in left {
        by_kind.entry(f.kind).or_default().push(f.to_string());
    }
    by_kind
        .into_values()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}
