//! Gang scheduling, queues, priority and the user's labels on a job's objects (issue 18):
//! the Volcano PodGroup `<id>` (in Spark's shape: owned by the root, `minMember` = worker
//! pods + the job master, the queue and priority class), the pods' scheduler, group
//! annotation and priority class, Kueue's queue label on the job's workloads, and the
//! `kubernetes.labels` / `annotations` on every object and pod.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ApiResource;
use serde::{Deserialize, Serialize};
use t2_core::spec::JobSpec;

use super::labels::owned_meta;
use super::workers::worker_pods;
use super::{JobInfo, Object};
use crate::settings::{Gang, Settings};

/// Volcano's API group.
pub const VOLCANO_GROUP: &str = "scheduling.volcano.sh";
/// The PodGroup's version.
pub const VOLCANO_VERSION: &str = "v1beta1";
/// The pod annotation naming a pod's PodGroup (Volcano reads it).
pub const GROUP_NAME: &str = "scheduling.k8s.io/group-name";
/// Kueue's queue label (the LocalQueue a workload is admitted through).
pub const KUEUE_QUEUE: &str = "kueue.x-k8s.io/queue-name";
/// Kueue's API group.
pub const KUEUE_GROUP: &str = "kueue.x-k8s.io";
/// The Workload version t2 reads (served by Kueue up to v0.17 at least).
pub const KUEUE_VERSION: &str = "v1beta1";

/// Annotations t2 sets itself, which `kubernetes.annotations` may not.
pub const RESERVED_ANNOTATIONS: &[&str] = &[GROUP_NAME];

/// The PodGroups' API resource.
pub fn podgroup_resource() -> ApiResource {
    ApiResource {
        group: VOLCANO_GROUP.into(),
        version: VOLCANO_VERSION.into(),
        api_version: format!("{VOLCANO_GROUP}/{VOLCANO_VERSION}"),
        kind: "PodGroup".into(),
        plural: "podgroups".into(),
    }
}

/// Kueue Workloads' API resource.
pub fn workload_resource() -> ApiResource {
    ApiResource {
        group: KUEUE_GROUP.into(),
        version: KUEUE_VERSION.into(),
        api_version: format!("{KUEUE_GROUP}/{KUEUE_VERSION}"),
        kind: "Workload".into(),
        plural: "workloads".into(),
    }
}

/// A Volcano PodGroup (`scheduling.volcano.sh/v1beta1`): what t2 writes of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodGroup {
    /// `scheduling.volcano.sh/v1beta1`.
    pub api_version: String,
    /// `PodGroup`.
    pub kind: String,
    /// Name `<id>`, the job's labels, owned by the root.
    pub metadata: ObjectMeta,
    /// The gang.
    pub spec: PodGroupSpec,
}

/// A PodGroup's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodGroupSpec {
    /// Pods that must all be placed before any starts: the worker pods and the job master.
    pub min_member: i32,
    /// The Volcano Queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The PriorityClass of the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// The members of a job's PodGroup for `worker_pods` worker pods: those and the job master.
pub fn min_member(worker_pods: u32) -> i32 {
    i32::try_from(worker_pods.saturating_add(1)).unwrap_or(i32::MAX)
}

/// The job's PodGroup, when `kubernetes.gang` is `volcano`.
pub fn pod_group(job: &JobInfo, spec: &JobSpec, s: &Settings) -> Option<PodGroup> {
    (s.gang == Gang::Volcano).then(|| PodGroup {
        api_version: format!("{VOLCANO_GROUP}/{VOLCANO_VERSION}"),
        kind: "PodGroup".into(),
        metadata: owned_meta(job, job.names().root(), "gang"),
        spec: PodGroupSpec {
            min_member: min_member(worker_pods(spec)),
            queue: Some(crate::gang::queue_name(s)),
            priority_class_name: (!s.priority_class.is_empty()).then(|| s.priority_class.clone()),
        },
    })
}

/// Adds `extra` to the map `to` (creating it).
fn add(to: &mut Option<BTreeMap<String, String>>, extra: &BTreeMap<String, String>) {
    if extra.is_empty() {
        return;
    }
    let m = to.get_or_insert_with(BTreeMap::new);
    for (k, v) in extra {
        m.insert(k.clone(), v.clone());
    }
}

/// The user's labels and annotations on `meta` (the root's too).
pub fn decorate_meta(meta: &mut ObjectMeta, s: &Settings) {
    add(&mut meta.labels, &s.labels);
    add(&mut meta.annotations, &s.annotations);
}

/// The job master's rules on its job's PodGroup (`resourceNames`: the PodGroup `<id>`).
fn podgroup_rules(job: &JobInfo) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![VOLCANO_GROUP.into()]),
        resources: Some(vec!["podgroups".into()]),
        resource_names: Some(vec![job.names().root()]),
        verbs: crate::permissions::JOBMASTER_VOLCANO
            .iter()
            .map(|p| p.verb.to_string())
            .collect(),
        ..PolicyRule::default()
    }
}

/// Gang scheduling and the user's labels on one of the job's owned objects.
pub fn decorate(obj: &mut Object, job: &JobInfo, s: &Settings) {
    match obj {
        Object::ConfigMap(o) => decorate_meta(&mut o.metadata, s),
        Object::Secret(o) => decorate_meta(&mut o.metadata, s),
        Object::Service(o) => decorate_meta(&mut o.metadata, s),
        Object::PersistentVolumeClaim(o) => decorate_meta(&mut o.metadata, s),
        Object::ServiceAccount(o) => decorate_meta(&mut o.metadata, s),
        Object::RoleBinding(o) => decorate_meta(&mut o.metadata, s),
        Object::NetworkPolicy(o) => decorate_meta(&mut o.metadata, s),
        Object::PodGroup(o) => decorate_meta(&mut o.metadata, s),
        Object::Role(o) => {
            decorate_meta(&mut o.metadata, s);
            if s.gang == Gang::Volcano {
                o.rules
                    .get_or_insert_with(Vec::new)
                    .push(podgroup_rules(job));
            }
        }
        Object::StatefulSet(o) => decorate_statefulset(o, job, s),
    }
}

/// A StatefulSet's own labels, its pods' (scheduler, PodGroup, priority, queue) and its
/// claims'.
fn decorate_statefulset(o: &mut StatefulSet, job: &JobInfo, s: &Settings) {
    decorate_meta(&mut o.metadata, s);
    let queue = BTreeMap::from([(KUEUE_QUEUE.to_string(), s.queue.clone())]);
    if s.gang == Gang::Kueue {
        add(&mut o.metadata.labels, &queue);
    }
    let Some(spec) = o.spec.as_mut() else {
        return;
    };
    for claim in spec.volume_claim_templates.iter_mut().flatten() {
        decorate_meta(&mut claim.metadata, s);
    }
    let meta = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    decorate_meta(meta, s);
    match s.gang {
        Gang::Kueue => add(&mut meta.labels, &queue),
        Gang::Volcano => add(
            &mut meta.annotations,
            &BTreeMap::from([(GROUP_NAME.to_string(), job.names().root())]),
        ),
        Gang::None => {}
    }
    if let Some(pod) = spec.template.spec.as_mut() {
        if let Some(name) = crate::gang::scheduler_name(s) {
            pod.scheduler_name = Some(name);
        }
        if !s.priority_class.is_empty() {
            pod.priority_class_name = Some(s.priority_class.clone());
        }
    }
}
