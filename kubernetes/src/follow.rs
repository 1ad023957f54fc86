//! Following a running job from outside: watch its root ConfigMap for the state the job
//! master records, until the job ends (COMPLETED, FAILED, KILLED) or its root goes away.

use k8s_openapi::api::core::v1::ConfigMap;

use crate::client::Kube;
use crate::error::KubeError;
use crate::manifests::root::keys;
use crate::root_watch::{Read, RootChange, RootWatch};

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
    let mut watch = RootWatch::new(kube, id, Read::List);
    let mut shown: Option<String> = None;
    loop {
        let root = match watch.next().await? {
            RootChange::Now(root) => root,
            RootChange::Gone(last) => {
                let (state, reason) = last.as_ref().map(state_of).unwrap_or_default();
                return Ok(Ended {
                    state: state.filter(|s| is_final(s)),
                    reason,
                });
            }
        };
        let (state, reason) = state_of(&root);
        if let Some(s) = &state {
            if shown.as_ref() != Some(s) {
                on_state(s);
                shown = Some(s.clone());
            }
            if is_final(s) {
                return Ok(Ended { state, reason });
            }
        }
    }
}
