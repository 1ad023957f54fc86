//! Where worker pods go and what they may do: node selector, affinity, tolerations,
//! spreading over nodes or racks, packing into few nodes or racks (pod affinity to the job's
//! own workers on the rack label or the hostname, preferred or required), and the pod
//! security context (non-root, no privilege
//! escalation, the runtime's default seccomp profile).

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, PodAffinity, PodAffinityTerm, PodSecurityContext, SeccompProfile,
    SecurityContext, Toleration, TopologySpreadConstraint, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::labels::{selector_labels, ROLE_WORKER};
use super::pod::RUN_AS;
use super::JobInfo;
use crate::settings::{Pack, Settings, Spread};

/// The host name label every node has.
const HOSTNAME: &str = "kubernetes.io/hostname";

/// The worker pods' affinity: the user's (checked when the settings were read), with the
/// packing term added to its pod affinity.
pub fn affinity(job: &JobInfo, s: &Settings) -> Option<Affinity> {
    let mut affinity: Option<Affinity> = s
        .affinity
        .as_ref()
        .and_then(|a| serde_json::from_value(a.clone()).ok());
    let key = match s.pack {
        Pack::None => return affinity,
        Pack::Nodes => HOSTNAME.to_string(),
        Pack::Racks => s.rack_label.clone(),
    };
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_labels: Some(selector_labels(job, ROLE_WORKER)),
            ..LabelSelector::default()
        }),
        topology_key: key,
        ..PodAffinityTerm::default()
    };
    let pod = affinity
        .get_or_insert_with(Affinity::default)
        .pod_affinity
        .get_or_insert_with(PodAffinity::default);
    if s.pack_strict {
        pod.required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(term);
    } else {
        pod.preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(WeightedPodAffinityTerm {
                weight: 100,
                pod_affinity_term: term,
            });
    }
    affinity
}

/// The worker pods' tolerations.
pub fn tolerations(s: &Settings) -> Option<Vec<Toleration>> {
    let t: Vec<Toleration> = s
        .tolerations
        .iter()
        .filter_map(|t| serde_json::from_value(t.clone()).ok())
        .collect();
    (!t.is_empty()).then_some(t)
}

/// The node selector.
pub fn node_selector(s: &Settings) -> Option<std::collections::BTreeMap<String, String>> {
    (!s.node_selector.is_empty()).then(|| s.node_selector.clone())
}

/// Spreading worker pods evenly over nodes or racks.
pub fn spread(job: &JobInfo, s: &Settings) -> Option<Vec<TopologySpreadConstraint>> {
    let key = match s.spread {
        Spread::None => return None,
        Spread::Nodes => HOSTNAME.to_string(),
        Spread::Racks => s.rack_label.clone(),
    };
    Some(vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: key,
        when_unsatisfiable: if s.spread_strict {
            "DoNotSchedule"
        } else {
            "ScheduleAnyway"
        }
        .into(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector_labels(job, ROLE_WORKER)),
            ..LabelSelector::default()
        }),
        ..TopologySpreadConstraint::default()
    }])
}

/// The pod security context: the image's non-root user, volumes writable by its group.
pub fn pod_security() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    }
}

/// The container security context: no privilege escalation, no capabilities.
pub fn container_security(read_only_root: bool) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        read_only_root_filesystem: read_only_root.then_some(true),
        ..SecurityContext::default()
    }
}
