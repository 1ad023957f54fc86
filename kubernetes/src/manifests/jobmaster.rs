//! The job master StatefulSet `<id>-jm`: one pod running `t2 pod jobmaster` under the job's
//! own ServiceAccount (the only pod of the job with an API token; its Role, made with the job
//! by [`access`](super::access), reaches only this job's objects).

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use t2_core::spec::JobSpec;

use super::containers::jobmaster_container;
use super::labels::{owned_meta, pod_labels, selector, ROLE_JOBMASTER};
use super::placement;
use super::volumes::{job_volume, tls_volume, work_volume_sized};
use super::workers::pull_secrets;
use super::JobInfo;
use crate::settings::Settings;

/// The job master StatefulSet.
pub fn jobmaster_statefulset(job: &JobInfo, _spec: &JobSpec, s: &Settings) -> StatefulSet {
    let mut pairs = vec![job_volume(job)];
    if job.package_url.is_none() {
        // Direct delivery: the job master keeps a copy of the package for pods made later.
        pairs.push(work_volume_sized(super::sizing::jobmaster_work_mb(job)));
    }
    pairs.extend(tls_volume(job));
    let (volumes, mounts): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
    let pod = PodSpec {
        containers: vec![jobmaster_container(job, s, &mounts)],
        volumes: Some(volumes),
        service_account_name: Some(super::access::account_name(job, s)),
        automount_service_account_token: Some(true),
        enable_service_links: Some(false),
        restart_policy: Some("Always".into()),
        termination_grace_period_seconds: Some(10),
        security_context: Some(placement::pod_security()),
        image_pull_secrets: pull_secrets(s),
        tolerations: placement::tolerations(s),
        ..PodSpec::default()
    };
    StatefulSet {
        metadata: owned_meta(job, job.names().jobmaster(), ROLE_JOBMASTER),
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            selector: selector(job, ROLE_JOBMASTER),
            service_name: Some(job.names().jobmaster_service()),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels(job, ROLE_JOBMASTER)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}
