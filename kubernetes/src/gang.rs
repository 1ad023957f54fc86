//! Gang scheduling and queues (issue 18): the checks of `kubernetes.gang`, `queue`,
//! `priority_class`, `scheduler_name`, `labels` and `annotations`; why a queued job waits (its
//! Volcano PodGroup's or Kueue Workload's own conditions); the PodGroup's `minMember` the job
//! master keeps equal to the job's pods on `t2 scale`; and why a Kueue job cannot be scaled.

use std::time::Duration;

use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::Api;
use serde_json::Value;

use super::checks::{is_label_key, is_label_value, is_subdomain};
use super::client::Kube;
use super::error::{is_status, KubeError, Op};
use super::manifests::gang::{podgroup_resource, workload_resource, RESERVED_ANNOTATIONS};
use super::manifests::labels::RESERVED_LABELS;
use super::settings::{Gang, Settings};

/// The most annotations a Kubernetes object may carry (keys and values), bytes.
const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// What a label key must look like, for messages.
const KEY_SYNTAX: &str = "a name of at most 63 letters, digits, '-', '_' and '.' that begins and ends with a letter or digit, optionally after a DNS subdomain prefix and '/', e.g. 'example.com/team'";

/// Checks the gang, queue, priority, scheduler, label and annotation settings: one line
/// naming the key and the fix.
pub fn check(s: &Settings) -> Result<(), KubeError> {
    let bad = |k: &str, m: String| Err(KubeError::setting(format!("kubernetes.{k}"), m));
    match (s.gang, s.queue.is_empty()) {
        (Gang::None, false) => {
            return bad(
                "queue",
                "is for gang scheduling: set kubernetes.gang to volcano or kueue too, or remove kubernetes.queue".into(),
            )
        }
        (Gang::Kueue, true) => {
            return bad(
                "queue",
                "is required with kubernetes.gang: kueue: name the LocalQueue that admits the job (kubernetes.queue: NAME)".into(),
            )
        }
        _ => {}
    }
    let queue_ok = s.queue.is_empty() || (is_subdomain(&s.queue) && s.queue.len() <= 63);
    if !queue_ok {
        return bad(
            "queue",
            format!(
                "'{}' is not a valid queue name (lowercase letters, digits, '-' and '.', at most 63)",
                s.queue.escape_default()
            ),
        );
    }
    for (key, name) in [
        ("priority_class", &s.priority_class),
        ("scheduler_name", &s.scheduler_name),
    ] {
        if !name.is_empty() && !is_subdomain(name) {
            return bad(
                key,
                format!(
                    "'{}' is not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most 253)",
                    name.escape_default()
                ),
            );
        }
    }
    let max = t2_core::duration::MAX_WAIT;
    if s.queue_timeout.is_zero() || s.queue_timeout > max {
        return bad(
            "queue_timeout",
            format!(
                "must be from 1ms to {}, got {}",
                t2_core::duration::format_duration(max),
                t2_core::duration::format_duration(s.queue_timeout)
            ),
        );
    }
    for (k, v) in &s.labels {
        check_key("labels", k, RESERVED_LABELS)?;
        if !is_label_value(v) {
            return bad(
                "labels",
                format!(
                    "the value '{}' of label '{}' is not a valid label value: at most 63 letters, digits, '-', '_' and '.', beginning and ending with a letter or digit (or empty)",
                    v.escape_default(),
                    k.escape_default()
                ),
            );
        }
    }
    let mut bytes = 0;
    for (k, v) in &s.annotations {
        check_key("annotations", k, RESERVED_ANNOTATIONS)?;
        bytes += k.len() + v.len();
    }
    if bytes > ANNOTATIONS_MAX_BYTES / 2 {
        return bad(
            "annotations",
            format!(
                "take {bytes} bytes; keep them under {} (Kubernetes allows 256 KiB per object, and t2 adds its own)",
                ANNOTATIONS_MAX_BYTES / 2
            ),
        );
    }
    Ok(())
}

/// Checks one label or annotation key (of setting `what`).
fn check_key(what: &str, k: &str, reserved: &[&str]) -> Result<(), KubeError> {
    let at = format!("kubernetes.{what}");
    if !is_label_key(k) {
        return Err(KubeError::setting(
            at,
            format!(
                "the key '{}' is not a valid {} key: write {KEY_SYNTAX}",
                k.escape_default(),
                what.trim_end_matches('s')
            ),
        ));
    }
    if k.starts_with("t2.io/") || reserved.contains(&k) {
        let instead = match k {
            "kueue.x-k8s.io/queue-name" => {
                "; set kubernetes.queue (with kubernetes.gang: kueue) instead"
            }
            "scheduling.k8s.io/group-name" => "; set kubernetes.gang: volcano instead",
            _ => "; choose another key",
        };
        return Err(KubeError::setting(
            at,
            format!("the key '{k}' is set by t2 itself{instead}"),
        ));
    }
    Ok(())
}

/// The queue of a gang job as the user knows it: the setting, or Volcano's `default`.
pub fn queue_name(s: &Settings) -> String {
    if s.queue.is_empty() {
        "default".into()
    } else {
        s.queue.clone()
    }
}

/// The scheduler of the job's pods: the setting, else `volcano` for a Volcano gang, else
/// none (the cluster's default).
pub fn scheduler_name(s: &Settings) -> Option<String> {
    match (s.scheduler_name.is_empty(), s.gang) {
        (false, _) => Some(s.scheduler_name.clone()),
        (true, Gang::Volcano) => Some("volcano".into()),
        (true, _) => None,
    }
}

/// Why the job whose root holds `data` cannot be scaled (`None`: it can, as far as its
/// gang scheduling goes; a spec that does not read is left to the job master).
pub fn scale_refusal_of(data: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let spec = data.get(super::manifests::root::keys::SPEC)?;
    let spec: t2_core::spec::JobSpec = serde_json::from_str(spec).ok()?;
    scale_refusal(&super::settings::read_settings(&spec).ok()?)
}

/// Why a Kueue job cannot be scaled, for `t2 scale` (`None` for other jobs).
pub fn scale_refusal(s: &Settings) -> Option<String> {
    (s.gang == Gang::Kueue).then(|| {
        format!(
            "it runs under Kueue (kubernetes.gang: kueue, queue '{}'), which admits a StatefulSet as one workload of a fixed size and does not follow a scale of it (Kueue's StatefulSet integration supports no scaling); submit it again with the workers it needs",
            s.queue
        )
    })
}

/// One condition's text: `Reason: message`, either alone, or `None` when it has neither.
fn condition_text(c: &Value) -> Option<String> {
    let reason = c.get("reason").and_then(Value::as_str).unwrap_or_default();
    let message = c.get("message").and_then(Value::as_str).unwrap_or_default();
    let message = super::error::one_line(message);
    match (reason.is_empty(), message.is_empty()) {
        (true, true) => None,
        (false, true) => Some(reason.to_string()),
        (true, false) => Some(message),
        (false, false) => Some(format!("{reason}: {message}")),
    }
}

/// Why Volcano holds the PodGroup `pg`: its `Unschedulable` condition (else its latest one
/// that is true), with its phase.
pub fn podgroup_reason(pg: &Value) -> String {
    let Some(status) = pg.get("status").filter(|s| !s.is_null()) else {
        return "the PodGroup has no status yet: no Volcano scheduler has taken it up".into();
    };
    let phase = status.get("phase").and_then(Value::as_str).unwrap_or("");
    let conditions = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_true = |c: &&Value| c.get("status").and_then(Value::as_str) == Some("True");
    let pick = conditions
        .iter()
        .rev()
        .filter(is_true)
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Unschedulable"))
        .or_else(|| conditions.iter().rev().find(is_true))
        .and_then(condition_text);
    match (pick, phase.is_empty()) {
        (Some(t), true) => t,
        (Some(t), false) => format!("{t}; PodGroup phase {phase}"),
        (None, false) => format!("PodGroup phase {phase}"),
        (None, true) => "the PodGroup has no conditions yet".into(),
    }
}

/// Why Kueue has not admitted workload `wl`: its `QuotaReserved` or `Admitted` condition
/// that is false (else any false one).
pub fn workload_reason(wl: &Value) -> String {
    let conditions = wl
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_false = |c: &&Value| c.get("status").and_then(Value::as_str) == Some("False");
    let of = |t: &str| {
        conditions
            .iter()
            .filter(is_false)
            .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
            .and_then(condition_text)
    };
    of("QuotaReserved")
        .or_else(|| of("Admitted"))
        .or_else(|| conditions.iter().filter(is_false).find_map(condition_text))
        .unwrap_or_else(|| "the Workload is not admitted yet".into())
}

/// Does workload `wl` belong to the job whose StatefulSets and pods are `owners`?
fn owned_by_any(wl: &Value, owners: &[String]) -> bool {
    wl.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter().any(|r| {
                r.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| owners.iter().any(|o| o == n))
            })
        })
}

/// Why job `id`'s pods wait in their queue, as the PodGroup (Volcano) or the Workloads
/// owned by its StatefulSets or `pods` (Kueue) say; a reason the API does not give is said
/// so (the job stays queued either way).
pub async fn queue_reason(kube: &Kube, id: &str, gang: Gang, pods: &[String]) -> String {
    match gang {
        Gang::None => String::new(),
        Gang::Volcano => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(kube.client.clone(), &kube.namespace, &podgroup_resource());
            match api.get(id).await {
                Ok(pg) => podgroup_reason(&serde_json::to_value(&pg).unwrap_or_default()),
                Err(e) if is_status(&e, 404) => format!("no PodGroup {id}"),
                Err(e) => format!(
                    "cannot read PodGroup {id}: {}",
                    super::error::one_line(&e.to_string())
                ),
            }
        }
        Gang::Kueue => {
            let api: Api<DynamicObject> =
                Api::namespaced_with(kube.client.clone(), &kube.namespace, &workload_resource());
            let names = super::names::JobNames::new(id);
            let mut owners = vec![names.workers(), names.jobmaster()];
            owners.extend(pods.iter().cloned());
            match api.list(&ListParams::default()).await {
                Ok(list) => {
                    let reasons: Vec<String> = list
                        .items
                        .iter()
                        .filter_map(|w| serde_json::to_value(w).ok())
                        .filter(|w| owned_by_any(w, &owners))
                        .map(|w| workload_reason(&w))
                        .collect();
                    if reasons.is_empty() {
                        "no Workload of the job yet: is Kueue managing this namespace?".into()
                    } else {
                        reasons.join("; ")
                    }
                }
                Err(e) => format!(
                    "cannot list Kueue Workloads: {}",
                    super::error::one_line(&e.to_string())
                ),
            }
        }
    }
}

/// Sets the `minMember` of job `id`'s PodGroup to `members` (its worker pods and the job
/// master): the job master, on `t2 scale`.
pub async fn patch_min_member(kube: &Kube, id: &str, members: i32) -> Result<(), KubeError> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(kube.client.clone(), &kube.namespace, &podgroup_resource());
    let body = serde_json::json!({"spec": {"minMember": members}});
    api.patch(id, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(|e| {
            Op::named(
                "patch",
                "podgroups.scheduling.volcano.sh",
                &kube.namespace,
                id,
            )
            .error(&kube.server, e)
        })?;
    Ok(())
}

/// How often a queued job's PodGroup or Workloads are read again for the reason.
pub const REASON_EVERY: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_podgroups_unschedulable_condition_is_the_reason() {
        let pg = json!({"status": {"phase": "Pending", "conditions": [
            {"type": "Scheduled", "status": "False", "reason": "x"},
            {"type": "Unschedulable", "status": "True", "reason": "NotEnoughResources",
             "message": "3/3 tasks in gang unschedulable: pod group is not ready, 3 Pending, 3 minAvailable"}]}});
        assert_eq!(
            podgroup_reason(&pg),
            "NotEnoughResources: 3/3 tasks in gang unschedulable: pod group is not ready, 3 Pending, 3 minAvailable; PodGroup phase Pending"
        );
        assert!(podgroup_reason(&json!({})).contains("no status yet"));
        assert_eq!(
            podgroup_reason(&json!({"status": {"phase": "Inqueue"}})),
            "PodGroup phase Inqueue"
        );
    }

    #[test]
    fn the_workloads_false_quota_condition_is_the_reason() {
        let wl = json!({"status": {"conditions": [
            {"type": "QuotaReserved", "status": "False", "reason": "Pending",
             "message": "couldn't assign flavors to pod set main: insufficient quota for cpu"}]}});
        assert_eq!(
            workload_reason(&wl),
            "Pending: couldn't assign flavors to pod set main: insufficient quota for cpu"
        );
        assert_eq!(
            workload_reason(&json!({})),
            "the Workload is not admitted yet"
        );
    }
}
