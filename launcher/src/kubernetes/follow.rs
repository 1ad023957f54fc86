//! Following a running job from outside: watch its root ConfigMap for the state the job
//! master records, until the job ends (COMPLETED, FAILED, KILLED) or its root goes away.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, WatchEvent, WatchParams};

use super::client::Kube;
use super::error::{KubeError, Op};
use super::manifests::root::keys;

/// How a followed job ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// COMPLETED, FAILED or KILLED; `None` when the root vanished before a final state.
    pub state: Option<String>,
    /// The job master's reason.
    pub reason: Option<String>,
}

/// True for the final job states.
pub fn is_final(state: &str) -> bool {
    matches!(state, "COMPLETED" | "FAILED" | "KILLED")
}

fn state_of(cm: &ConfigMap) -> (Option<String>, Option<String>) {
    let data = cm.data.clone().unwrap_or_default();
    (
        data.get(keys::STATE).cloned(),
        data.get(keys::REASON).cloned().filter(|r| !r.is_empty()),
    )
}

/// Follows job `id` until it ends; `on_state` is called when the recorded state changes.
pub async fn follow(
    kube: &Kube,
    id: &str,
    on_state: &mut (dyn FnMut(&str) + Send),
) -> Result<Ended, KubeError> {
    let api = kube.api::<ConfigMap>();
    let field = format!("metadata.name={id}");
    let list = api
        .list(&ListParams::default().fields(&field))
        .await
        .map_err(|e| Op::named("list", "configmaps", &kube.namespace, id).error(&kube.server, e))?;
    let Some(cm) = list.items.first() else {
        return Ok(Ended {
            state: None,
            reason: None,
        });
    };
    let mut rv = list.metadata.resource_version.clone().unwrap_or_default();
    let (mut state, mut reason) = state_of(cm);
    let mut shown: Option<String> = None;
    loop {
        if let Some(s) = &state {
            if shown.as_ref() != Some(s) {
                on_state(s);
                shown = Some(s.clone());
            }
            if is_final(s) {
                return Ok(Ended {
                    state: state.clone(),
                    reason,
                });
            }
        }
        let wp = WatchParams::default().fields(&field).timeout(290);
        let mut events = api
            .watch(&wp, &rv)
            .await
            .map_err(|e| {
                Op::named("watch", "configmaps", &kube.namespace, id).error(&kube.server, e)
            })?
            .boxed();
        while let Some(ev) = events.next().await {
            match ev.map_err(|e| {
                Op::named("watch", "configmaps", &kube.namespace, id).error(&kube.server, e)
            })? {
                WatchEvent::Added(cm) | WatchEvent::Modified(cm) => {
                    rv = cm.metadata.resource_version.clone().unwrap_or(rv);
                    (state, reason) = state_of(&cm);
                    break;
                }
                WatchEvent::Deleted(cm) => {
                    let (s, r) = state_of(&cm);
                    return Ok(Ended {
                        state: s.filter(|s| is_final(s)),
                        reason: r,
                    });
                }
                WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                WatchEvent::Error(st) if st.code == 410 => {
                    rv = String::new();
                    break;
                }
                WatchEvent::Error(st) => {
                    return Err(Op::named("watch", "configmaps", &kube.namespace, id)
                        .error(&kube.server, kube::Error::Api(st)))
                }
            }
        }
        if rv.is_empty() {
            let list = api
                .list(&ListParams::default().fields(&field))
                .await
                .map_err(|e| {
                    Op::named("list", "configmaps", &kube.namespace, id).error(&kube.server, e)
                })?;
            let Some(cm) = list.items.first() else {
                return Ok(Ended {
                    state: None,
                    reason: None,
                });
            };
            rv = list.metadata.resource_version.clone().unwrap_or_default();
            (state, reason) = state_of(cm);
        }
    }
}
