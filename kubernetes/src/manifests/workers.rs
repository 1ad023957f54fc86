//! The worker StatefulSet `<id>`: `workers / workers_per_pod` pods started in parallel, each
//! with the init container and one agent container per worker, no API token, no service
//! links, and the placement of the job's settings.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{LocalObjectReference, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use t2_core::spec::JobSpec;

use super::containers::{init_container, worker_container};
use super::labels::{owned_meta, pod_labels, selector, ROLE_WORKER};
use super::placement;
use super::volumes::{claim_templates, work_volume, worker_volumes};
use super::JobInfo;
use crate::settings::Settings;

/// Pods of the worker StatefulSet for `spec`.
pub fn worker_pods(spec: &JobSpec) -> u32 {
    spec.workers / spec.workers_per_pod.max(1)
}

/// Image pull secrets of the job's pods.
pub fn pull_secrets(s: &Settings) -> Option<Vec<LocalObjectReference>> {
    (!s.image_pull_secrets.is_empty()).then(|| {
        s.image_pull_secrets
            .iter()
            .map(|n| LocalObjectReference { name: n.clone() })
            .collect()
    })
}

/// The worker StatefulSet.
pub fn workers_statefulset(job: &JobInfo, spec: &JobSpec, s: &Settings) -> StatefulSet {
    let vols = worker_volumes(job, spec, s);
    let (_, work_mount) = work_volume();
    let containers = (0..spec.workers_per_pod)
        .map(|i| worker_container(job, spec, s, i, &vols.mounts, &vols.env))
        .collect();
    let claims = claim_templates(job, spec, s);
    let pod = PodSpec {
        init_containers: Some(vec![init_container(job, spec, s, &work_mount)]),
        containers,
        volumes: Some(vols.volumes),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        restart_policy: Some("Always".into()),
        termination_grace_period_seconds: Some(10),
        security_context: Some(placement::pod_security()),
        image_pull_secrets: pull_secrets(s),
        node_selector: placement::node_selector(s),
        affinity: placement::affinity(job, s),
        tolerations: placement::tolerations(s),
        topology_spread_constraints: placement::spread(job, s),
        ..PodSpec::default()
    };
    StatefulSet {
        metadata: owned_meta(job, job.names().workers(), ROLE_WORKER),
        spec: Some(StatefulSetSpec {
            replicas: Some(worker_pods(spec) as i32),
            selector: selector(job, ROLE_WORKER),
            service_name: Some(job.names().workers_service()),
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                rolling_update: None,
            }),
            persistent_volume_claim_retention_policy: claims.as_ref().map(|c| c.1.clone()),
            volume_claim_templates: claims.map(|c| c.0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels(job, ROLE_WORKER)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}
