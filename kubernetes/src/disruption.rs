//! Disruptions: a pod the cluster takes away — evicted through the Eviction API (a drain,
//! the descheduler), preempted by a higher-priority pod, deleted for a node's taint or
//! evicted by the kubelet under node pressure. Kubernetes marks such a pod with the condition
//! `DisruptionTarget` (status True) before it stops it; the kubelet's own pressure evictions
//! also fail the pod with reason `Evicted`. Neither is the worker's fault: the submit's start
//! wait ([`crate::wait`]) and the job master ([`crate::incluster::cluster`]) do not count it
//! against `max_restarts`; the StatefulSet makes the pod again.
//!
//! The job master learns of disruptions from a watch of its worker pods ([`DisruptionWatch`]):
//! by the time a worker's failure reaches it, the pod may already be gone and made again
//! without the condition (the condition is set before the deletion, so the watch sees it);
//! it asks for the pod itself ([`pod_disruption`]) only when the watch has not said.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, WatchEvent, WatchParams};
use tokio::time::Instant;

use super::client::Kube;
use super::manifests::labels::{JOB, ROLE, ROLE_WORKER};

/// The condition Kubernetes sets on a pod it is about to disrupt.
pub const DISRUPTION_TARGET: &str = "DisruptionTarget";

/// How long the job master waits for the API server to say whether a pod was disrupted.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(5);

/// Why `pod` was disrupted (`reason: message`), or `None` when it was not.
pub fn disrupted(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_TARGET && c.status == "True")
    {
        let reason = c.reason.clone().unwrap_or_else(|| DISRUPTION_TARGET.into());
        return Some(match c.message.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => format!("{reason}: {}", super::error::one_line(m)),
            None => reason,
        });
    }
    (status.phase.as_deref() == Some("Failed") && status.reason.as_deref() == Some("Evicted")).then(
        || match status.message.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => format!("Evicted: {}", super::error::one_line(m)),
            None => "Evicted".into(),
        },
    )
}

/// Whether pod `name` is (being) disrupted, asked of the API server within
/// [`LOOKUP_DEADLINE`]; `None` when it is not, is gone, or the answer did not come.
pub async fn pod_disruption(kube: &Kube, name: &str) -> Option<String> {
    let api = kube.api::<Pod>();
    let get = api.get_opt(name);
    match tokio::time::timeout(LOOKUP_DEADLINE, get).await {
        Ok(Ok(Some(pod))) => disrupted(&pod),
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::warn!(pod = name, error = %e, "cannot read the pod to see whether it was disrupted");
            None
        }
        Err(_) => {
            tracing::warn!(
                pod = name,
                "the API server did not say within 5 s whether the pod was disrupted"
            );
            None
        }
    }
}

/// How long a disruption the watch saw is kept for the worker's failure to find it.
const REMEMBER: Duration = Duration::from_secs(600);
/// Longest a single watch request stays open.
const WATCH_SECONDS: u32 = 290;
/// Wait after a failed list or watch; doubled up to a minute.
const BACKOFF: Duration = Duration::from_secs(1);

/// The disruptions of a job's worker pods, as a watch of them saw them (pod name → why).
#[derive(Clone, Default)]
pub struct DisruptionWatch {
    seen: Arc<Mutex<BTreeMap<String, (String, Instant)>>>,
}

impl DisruptionWatch {
    /// Watches the worker pods of job `id` until the returned handle's task is aborted.
    pub fn spawn(kube: Kube, id: &str) -> (Self, tokio::task::JoinHandle<()>) {
        let me = Self::default();
        let selector = format!("{JOB}={id},{ROLE}={ROLE_WORKER}");
        let task = tokio::spawn(me.clone().run(kube, selector));
        (me, task)
    }

    /// Takes what the watch saw about pod `pod`, if it saw it disrupted recently.
    pub fn take(&self, pod: &str) -> Option<String> {
        let mut seen = self.seen.lock().ok()?;
        seen.retain(|_, (_, at)| at.elapsed() < REMEMBER);
        seen.remove(pod).map(|(why, _)| why)
    }

    fn note(&self, pod: &Pod) {
        if let (Some(why), Some(name)) = (disrupted(pod), pod.metadata.name.clone()) {
            if let Ok(mut seen) = self.seen.lock() {
                seen.entry(name.clone()).or_insert_with(|| {
                    tracing::info!(pod = %name, reason = %why, "worker pod disrupted");
                    (why, Instant::now())
                });
            }
        }
    }

    async fn run(self, kube: Kube, selector: String) {
        let api = kube.api::<Pod>();
        let mut backoff = BACKOFF;
        loop {
            let list = match api.list(&ListParams::default().labels(&selector)).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "listing the worker pods for disruptions failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    continue;
                }
            };
            list.items.iter().for_each(|p| self.note(p));
            let mut rv = list.metadata.resource_version.unwrap_or_default();
            loop {
                let wp = WatchParams::default()
                    .labels(&selector)
                    .timeout(WATCH_SECONDS);
                let mut events = match api.watch(&wp, &rv).await {
                    Ok(s) => s.boxed(),
                    Err(e) => {
                        tracing::warn!(error = %e, "watching the worker pods for disruptions failed");
                        break;
                    }
                };
                backoff = BACKOFF;
                let mut relist = false;
                while let Some(ev) = events.next().await {
                    match ev {
                        Ok(
                            WatchEvent::Added(p) | WatchEvent::Modified(p) | WatchEvent::Deleted(p),
                        ) => {
                            rv = p.metadata.resource_version.clone().unwrap_or(rv);
                            self.note(&p);
                        }
                        Ok(WatchEvent::Bookmark(b)) => rv = b.metadata.resource_version,
                        Ok(WatchEvent::Error(_)) | Err(_) => {
                            relist = true;
                            break;
                        }
                    }
                }
                if relist {
                    break;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};

    fn with(status: PodStatus) -> Pod {
        Pod {
            status: Some(status),
            ..Pod::default()
        }
    }

    #[test]
    fn the_disruption_target_condition_and_kubelet_evictions_are_disruptions() {
        let evicted = with(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: DISRUPTION_TARGET.into(),
                status: "True".into(),
                reason: Some("EvictionByEvictionAPI".into()),
                message: Some("Eviction API: evicting".into()),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        assert_eq!(
            disrupted(&evicted).as_deref(),
            Some("EvictionByEvictionAPI: Eviction API: evicting")
        );
        let pressure = with(PodStatus {
            phase: Some("Failed".into()),
            reason: Some("Evicted".into()),
            message: Some("The node was low on resource: memory.".into()),
            ..PodStatus::default()
        });
        assert_eq!(
            disrupted(&pressure).as_deref(),
            Some("Evicted: The node was low on resource: memory.")
        );
        let failed = with(PodStatus {
            phase: Some("Failed".into()),
            ..PodStatus::default()
        });
        assert_eq!(disrupted(&failed), None);
        assert_eq!(disrupted(&Pod::default()), None);
    }
}
