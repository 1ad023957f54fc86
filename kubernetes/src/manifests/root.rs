//! The job's root ConfigMap `<id>`: the owner of every other object, and the job's record in
//! the cluster — spec, package, desired workers, and the state the job master writes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use t2_core::spec::JobSpec;

use super::labels::labels;
use super::JobInfo;
use crate::settings::Settings;

/// Keys of the root ConfigMap's data.
pub mod keys {
    /// The merged job spec, JSON (mounted into pods at `/etc/t2/job/spec.json`).
    pub const SPEC: &str = "spec.json";
    /// The package's sha256.
    pub const PACKAGE_SHA256: &str = "package.sha256";
    /// The package's size in bytes.
    pub const PACKAGE_BYTES: &str = "package.bytes";
    /// `direct` or `uploader`.
    pub const PACKAGE_DELIVERY: &str = "package.delivery";
    /// Desired number of workers (changed by `t2 scale`).
    pub const WORKERS: &str = "workers";
    /// Workers per pod.
    pub const WORKERS_PER_POD: &str = "workers-per-pod";
    /// When the job was submitted.
    pub const SUBMITTED_AT: &str = "submitted-at";
    /// Who submitted it.
    pub const OWNER: &str = "owner";
    /// The job state the job master last recorded (absent until it starts).
    pub const STATE: &str = "jobmaster.state";
    /// Why the job ended.
    pub const REASON: &str = "jobmaster.reason";
    /// When the state was recorded (RFC 3339): since when the job is in it.
    pub const STATE_AT: &str = "jobmaster.state-at";
    /// A finished job: when its root is to be deleted (RFC 3339; the end +
    /// `kubernetes.ttl_after_finished`), until which its pods and logs stay (issue 18).
    pub const REMOVE_AFTER: &str = "jobmaster.remove-after";
    /// Prefix of the per-worker records the job master keeps (`worker.<id>`).
    pub const WORKER_PREFIX: &str = "worker.";
    /// The latest `t2 scale` request, JSON `{"id": nonce, "workers": N}` (written by
    /// `t2 scale`, carried out by the job master).
    pub const SCALE_REQUEST: &str = "scale.request";
    /// The job master's answer to a scale request, JSON `{"id": nonce, "workers": N}` or
    /// `{"id": nonce, "error": "why"}`.
    pub const SCALE_ANSWER: &str = "scale.answer";
}

/// The root ConfigMap.
pub fn root_config_map(job: &JobInfo, spec: &JobSpec, settings: &Settings) -> ConfigMap {
    let spec_json = serde_json::to_string_pretty(spec).unwrap_or_else(|_| "{}".into());
    let delivery = if job.package_url.is_some() {
        "uploader"
    } else {
        "direct"
    };
    let data = BTreeMap::from([
        (keys::SPEC.to_string(), spec_json),
        (keys::PACKAGE_SHA256.to_string(), job.package_sha256.clone()),
        (
            keys::PACKAGE_BYTES.to_string(),
            job.package_bytes.to_string(),
        ),
        (keys::PACKAGE_DELIVERY.to_string(), delivery.to_string()),
        (keys::WORKERS.to_string(), spec.workers.to_string()),
        (
            keys::WORKERS_PER_POD.to_string(),
            spec.workers_per_pod.to_string(),
        ),
        (keys::SUBMITTED_AT.to_string(), job.submitted_at.clone()),
        (keys::OWNER.to_string(), job.owner.clone()),
    ]);
    let mut metadata = ObjectMeta {
        name: Some(job.names().root()),
        namespace: Some(job.namespace.clone()),
        labels: Some(labels(job, "job")),
        ..ObjectMeta::default()
    };
    super::gang::decorate_meta(&mut metadata, settings);
    ConfigMap {
        metadata,
        data: Some(data),
        ..ConfigMap::default()
    }
}
