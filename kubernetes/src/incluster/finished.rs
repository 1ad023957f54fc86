//! A finished job's stay (`kubernetes.ttl_after_finished`): when the job ends, its job master
//! records the final state and, next to it, `jobmaster.remove-after` (the end + the TTL) in
//! the root, then keeps running — not serving — until that time and deletes the root (garbage
//! collection removes the rest). Meanwhile the job's pods and their logs stay for `t2 logs`,
//! `t2 status` and `kubectl`. The marker in the root is what makes this survive the job
//! master's pod going away (a drain, an eviction): the job master the StatefulSet starts next
//! finds the marker, waits for the rest of the time and deletes the root; `t2 gc` sweeps a
//! finished root only once its time has passed (or when it carries no marker), and `t2 kill`
//! removes a finished job at once.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use tracing::{info, warn};

use crate::client::Kube;
use crate::create::delete_root;
use crate::follow::is_final;
use crate::manifests::root::keys;

/// How often deleting the root is tried again after a failure, and for how long.
const RETRY: Duration = Duration::from_secs(10);
const RETRY_FOR: Duration = Duration::from_secs(120);

/// The time `ttl` after now, as the root records it (RFC 3339, whole seconds).
pub fn remove_after(ttl: Duration) -> String {
    let secs = Timestamp::now()
        .as_second()
        .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    Timestamp::from_second(secs)
        .unwrap_or(Timestamp::MAX)
        .to_string()
}

/// When a finished job's root is to be deleted: its `remove-after` marker, when the root
/// records a final state and one. `None` for a running job or a root without the marker.
pub fn kept_until(data: &std::collections::BTreeMap<String, String>) -> Option<Timestamp> {
    let state = data.get(keys::STATE)?;
    if !is_final(state) {
        return None;
    }
    data.get(keys::REMOVE_AFTER)?.parse().ok()
}

/// How long from now until `at` (zero when it has passed).
pub fn time_left(at: Timestamp) -> Duration {
    let secs = at.as_second() - Timestamp::now().as_second();
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// Keeps the finished job `id` until `at`, then deletes its root; returns early when
/// `shutdown` comes (the next job master carries on) or the root is already gone.
pub async fn linger_then_remove(
    kube: &Kube,
    id: &str,
    at: Timestamp,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let wait = time_left(at).min(t2_core::duration::MAX_WAIT);
    info!(job_id = %id, remove_after = %at, "job finished; keeping its pods and logs until then");
    tokio::pin!(shutdown);
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        () = &mut shutdown => {
            info!(job_id = %id, "the pod is stopping; the next job master removes the job when its time comes");
            return Ok(());
        }
    }
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    loop {
        match kube.api::<ConfigMap>().get_opt(id).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) => match delete_root(kube, id).await {
                Ok(()) => {
                    info!(job_id = %id, "the finished job's time is up; removed it");
                    return Ok(());
                }
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(format!(
                        "cannot remove the finished job {id}: {e}; 't2 gc' will"
                    ))
                }
                Err(e) => {
                    warn!(job_id = %id, error = %e, "removing the finished job failed; trying again")
                }
            },
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(format!(
                    "cannot read the finished job {id}'s root: {e}; 't2 gc' will remove it"
                ))
            }
            Err(e) => {
                warn!(job_id = %id, error = %e, "reading the finished job's root failed; trying again")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_finished_root_is_kept_until_its_marker_and_a_running_one_is_not() {
        let mut data = BTreeMap::from([
            (keys::STATE.to_string(), "COMPLETED".to_string()),
            (
                keys::REMOVE_AFTER.to_string(),
                "2030-01-02T03:04:05Z".to_string(),
            ),
        ]);
        let at = kept_until(&data).expect("kept");
        assert_eq!(at.to_string(), "2030-01-02T03:04:05Z");
        data.insert(keys::STATE.into(), "RUNNING".into());
        assert_eq!(kept_until(&data), None);
        data.insert(keys::STATE.into(), "FAILED".into());
        data.remove(keys::REMOVE_AFTER);
        assert_eq!(kept_until(&data), None);
        assert_eq!(
            time_left("2000-01-01T00:00:00Z".parse().unwrap()),
            Duration::ZERO
        );
        let soon: Timestamp = remove_after(Duration::from_secs(300)).parse().unwrap();
        assert!(time_left(soon) <= Duration::from_secs(300));
        assert!(time_left(soon) > Duration::ZERO);
    }
}
