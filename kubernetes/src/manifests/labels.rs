//! Labels, selectors and the owner reference every job object carries (DESIGN §5).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};

use super::JobInfo;

/// `app.kubernetes.io/name=t2` on every object of every job.
pub const APP: &str = "app.kubernetes.io/name";
/// The value of [`APP`].
pub const APP_VALUE: &str = "t2";
/// Which part of the job an object is (`job`, `worker`, `jobmaster`, `token`, `storage`).
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// `app.kubernetes.io/managed-by=t2`.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The job ID.
pub const JOB: &str = "t2.io/job";
/// Who submitted the job.
pub const OWNER: &str = "t2.io/owner";
/// The job ID, as the recommended labels say it (issue 18).
pub const INSTANCE: &str = "app.kubernetes.io/instance";
/// The t2 version that made the object (issue 18).
pub const VERSION: &str = "app.kubernetes.io/version";
/// `worker` or `jobmaster` on pods; part of the StatefulSets' selectors.
pub const ROLE: &str = "t2.io/role";

/// Labels t2 sets itself, which `kubernetes.labels` may not (nor any `t2.io/` key).
pub const RESERVED_LABELS: &[&str] = &[
    APP,
    COMPONENT,
    MANAGED_BY,
    INSTANCE,
    VERSION,
    JOB,
    OWNER,
    ROLE,
    super::gang::KUEUE_QUEUE,
];

/// The worker role.
pub const ROLE_WORKER: &str = "worker";
/// The job master role.
pub const ROLE_JOBMASTER: &str = "jobmaster";

/// The selector of every object of every t2 job.
pub fn all_jobs_selector() -> String {
    format!("{APP}={APP_VALUE}")
}

/// The selector of every object of job `id`.
pub fn job_selector(id: &str) -> String {
    format!("{APP}={APP_VALUE},{JOB}={id}")
}

/// The labels of every object of `job`, with its `component`.
pub fn labels(job: &JobInfo, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP.to_string(), APP_VALUE.to_string()),
        (MANAGED_BY.to_string(), "t2".to_string()),
        (COMPONENT.to_string(), component.to_string()),
        (INSTANCE.to_string(), job.id.clone()),
        (VERSION.to_string(), env!("CARGO_PKG_VERSION").to_string()),
        (JOB.to_string(), job.id.clone()),
        (OWNER.to_string(), job.owner.clone()),
    ])
}

/// The labels of `job`'s pods of `role` (a superset of [`selector`]).
pub fn pod_labels(job: &JobInfo, role: &str) -> BTreeMap<String, String> {
    let mut l = labels(job, role);
    l.insert(ROLE.to_string(), role.to_string());
    l
}

/// The selector of `job`'s pods of `role`: distinct per StatefulSet.
pub fn selector(job: &JobInfo, role: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(selector_labels(job, role)),
        ..LabelSelector::default()
    }
}

/// The labels [`selector`] matches.
pub fn selector_labels(job: &JobInfo, role: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (JOB.to_string(), job.id.clone()),
        (ROLE.to_string(), role.to_string()),
    ])
}

/// The reference to the job's root ConfigMap that makes it the owner of an object: its
/// controller (no other controller adopts t2's objects), blocking the root's deletion in the
/// foreground until the object is gone (`t2 kill`: the job is gone when its last pod is).
/// Clusters enforcing OwnerReferencesPermissionEnforcement require who creates the object
/// to be allowed to update `configmaps/finalizers` (deploy/rbac.yaml).
pub fn owner_reference(job: &JobInfo) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: job.names().root(),
        uid: job.root_uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata of an object of `job` named `name`, owned by the root.
pub fn owned_meta(job: &JobInfo, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(job.namespace.clone()),
        labels: Some(labels(job, component)),
        owner_references: Some(vec![owner_reference(job)]),
        ..ObjectMeta::default()
    }
}
