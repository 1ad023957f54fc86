//! "Did you mean": the known key closest to an unknown one, when one is reasonably close.

use strsim::damerau_levenshtein;

use super::aliases;

/// Lowercase without `_`, `-`, `.` and `[0]`, so `workersPerPod` matches `workers_per_pod`.
fn norm(s: &str) -> String {
    s.replace("[0]", "")
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn last_segment(s: &str) -> &str {
    s.rsplit('.').next().unwrap_or(s)
}

/// The closest candidate to `unknown`, if within about a third of its length in edits.
pub(super) fn closest(unknown: &str) -> Option<String> {
    let (nested, candidates): (bool, Vec<String>) =
        if unknown.starts_with("twister2.resource.worker.compute.resources[0].") {
            (true, aliases::compute_field_candidates())
        } else if unknown.starts_with("resources.") {
            (
                true,
                super::layer::RESOURCE_KEYS
                    .iter()
                    .map(|k| format!("resources.{k}"))
                    .collect(),
            )
        } else if unknown.starts_with("mpi.") {
            (
                true,
                super::mpi::KEYS
                    .iter()
                    .map(|k| format!("mpi.{k}"))
                    .collect(),
            )
        } else if unknown.starts_with("zookeeper.") {
            (
                true,
                super::zookeeper::KEYS
                    .iter()
                    .map(|k| format!("zookeeper.{k}"))
                    .collect(),
            )
        } else if unknown.starts_with("topology.") {
            (
                true,
                super::topology::KEYS
                    .iter()
                    .map(|k| format!("topology.{k}"))
                    .collect(),
            )
        } else {
            let mut all = super::known_keys();
            all.extend(aliases::ALIASES.iter().map(|(a, _)| a.to_string()));
            (false, all)
        };
    let target = if nested {
        norm(last_segment(unknown))
    } else {
        norm(unknown)
    };
    let limit = target.chars().count().div_ceil(3).max(1);
    candidates
        .into_iter()
        .filter_map(|c| {
            let mut d =
                damerau_levenshtein(&target, &norm(if nested { last_segment(&c) } else { &c }));
            if !nested && c.contains('.') && !aliases::is_alias(&c) {
                d = d.min(damerau_levenshtein(&target, &norm(last_segment(&c))));
            }
            // The guide's short Twister2 keys (`kubernetes.racks.list`) share a first segment
            // with many unrelated keys: only a near miss suggests them.
            let guide_alias = aliases::is_alias(&c) && !c.starts_with("twister2.");
            let limit = if guide_alias {
                target.chars().count().div_ceil(5).max(1)
            } else {
                limit
            };
            (d <= limit).then_some((d, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(k: &str) -> Option<String> {
        closest(k)
    }

    #[test]
    fn close_keys_are_suggested() {
        assert_eq!(s("worker").as_deref(), Some("workers"));
        assert_eq!(s("workersPerPod").as_deref(), Some("workers_per_pod"));
        assert_eq!(
            s("heartbeat_intervall").as_deref(),
            Some("heartbeat_interval")
        );
        assert_eq!(s("comand").as_deref(), Some("command"));
        assert_eq!(s("cpu").as_deref(), Some("resources.cpu"));
        assert_eq!(s("memory").as_deref(), Some("resources.memory_mb"));
        assert_eq!(s("resource.cpu").as_deref(), Some("resources.cpu"));
        assert_eq!(
            s("resources.memory").as_deref(),
            Some("resources.memory_mb")
        );
        assert_eq!(
            s("twister2.fault.tolerance.max.worker.restart").as_deref(),
            Some("twister2.fault.tolerance.max.worker.restarts")
        );
        assert_eq!(
            s("twister2.resource.worker.compute.resources[0].workersperpod").as_deref(),
            Some("twister2.resource.worker.compute.resources[0].workersPerPod")
        );
        assert_eq!(
            s("zookeeper.adresses").as_deref(),
            Some("zookeeper.addresses")
        );
        assert_eq!(
            s("zookeeper.sessionTimeout").as_deref(),
            Some("zookeeper.session_timeout")
        );
        assert_eq!(
            s("session_timeout").as_deref(),
            Some("zookeeper.session_timeout")
        );
        assert_eq!(s("fault_tolerance").as_deref(), Some("fault_tolerant"));
        assert_eq!(s("topology.rack").as_deref(), Some("topology.racks"));
        assert_eq!(
            s("kubernetes.rack.list").as_deref(),
            Some("kubernetes.racks.list")
        );
        assert_eq!(s("rack.label.key").as_deref(), Some("rack.labey.key"));
        assert_eq!(s("zookeper").as_deref(), Some("zookeeper"));
        assert_eq!(
            s("twister2.resource.zookeeper.server.address").as_deref(),
            Some("twister2.resource.zookeeper.server.addresses")
        );
    }

    #[test]
    fn far_keys_are_not() {
        assert_eq!(s("image"), None);
        assert_eq!(s("xyz"), None);
        assert_eq!(s("kubernetes.namespace"), None);
        assert_eq!(s("resources.gpu_count"), None);
        assert_eq!(s("zookeeper.connection_string"), None);
    }
}
