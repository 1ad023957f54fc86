//! The Kubernetes events of a job's objects (its pods, StatefulSets, ConfigMap, …), for
//! `t2 describe JOB` as `kubectl describe` shows them.

use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use serde::Serialize;

use super::client::Kube;
use super::error::{KubeError, Op};
use super::kill::check_id;

/// Most events listed.
const MAX_EVENTS: u32 = 500;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobEvent {
    /// When it last happened (RFC 3339), or empty.
    pub time: String,
    /// `Normal` or `Warning`.
    pub kind: String,
    /// The object, `Kind/name`.
    pub object: String,
    /// Its reason (`Scheduled`, `BackOff`, …).
    pub reason: String,
    /// Its message.
    pub message: String,
    /// Who reported it (`default-scheduler`, `statefulset-controller`, …), or empty.
    pub from: String,
    /// How many times it happened.
    pub count: i32,
}

/// The events of the objects named after job `id` (`<id>`, `<id>-…`), oldest first.
pub async fn job_events(kube: &Kube, id: &str) -> Result<Vec<JobEvent>, KubeError> {
    check_id(id)?;
    let list = kube
        .api::<Event>()
        .list(&ListParams::default().limit(MAX_EVENTS))
        .await
        .map_err(|e| Op::collection("list", "events", &kube.namespace).error(&kube.server, e))?;
    let prefix = format!("{id}-");
    let mut out: Vec<_> = list
        .items
        .iter()
        .filter(|e| {
            e.involved_object
                .name
                .as_deref()
                .is_some_and(|n| n == id || n.starts_with(&prefix))
        })
        .map(|e| {
            // When it last happened: its series' last observation, its last timestamp, or
            // its time (events.k8s.io events have only the last two).
            let at = e
                .series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref())
                .map(|t| t.0)
                .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.first_timestamp.as_ref().map(|t| t.0));
            let ev = JobEvent {
                time: at.map(|t| t.to_string()).unwrap_or_default(),
                kind: e.type_.clone().unwrap_or_default(),
                object: format!(
                    "{}/{}",
                    e.involved_object.kind.clone().unwrap_or_default(),
                    e.involved_object.name.clone().unwrap_or_default()
                ),
                reason: e.reason.clone().unwrap_or_default(),
                message: e.message.clone().unwrap_or_default().replace('\n', " "),
                from: e
                    .source
                    .as_ref()
                    .and_then(|s| s.component.clone())
                    .filter(|c| !c.is_empty())
                    .or_else(|| e.reporting_component.clone())
                    .unwrap_or_default(),
                count: e
                    .series
                    .as_ref()
                    .and_then(|s| s.count)
                    .or(e.count)
                    .unwrap_or(1)
                    .max(1),
            };
            (at, ev)
        })
        .collect();
    // As times, not as text: some have fractions of a second, some not.
    out.sort_by_key(|(at, _)| *at);
    Ok(out.into_iter().map(|(_, e)| e).collect())
}
