//! The local cluster's simulated topology, checked at submit: with topology lists, the
//! listed loopback addresses (127.0.0.0/8, all of which reach this machine on Linux) are its
//! nodes, and workers fill them in order (`t2_core::topology`). Lists that name no loopback
//! address leave the workers on 127.0.0.1, a node no rack lists: one warning, or with
//! `topology.strict` a refused submit.

use t2_core::spec::JobSpec;
use t2_core::topology::UNKNOWN;

use crate::error::LauncherError;

/// What the submit says about the job's topology: a line to print, or why it is refused.
pub fn check(spec: &JobSpec) -> Result<Option<String>, LauncherError> {
    let t = &spec.topology;
    if !t.from_config() {
        return Ok(None);
    }
    let nodes = t.local_nodes();
    if nodes.is_empty() {
        if t.strict {
            return Err(LauncherError::Usage(
                "topology.racks lists no loopback address (127.0.0.0/8), so local workers would run on 127.0.0.1, which no rack lists, and topology.strict is true; list 127.x.y.z addresses to simulate nodes, or set topology.strict: false".into(),
            ));
        }
        return Ok(Some(format!(
            "warning: topology.racks lists no loopback address (127.0.0.0/8), so the workers run on 127.0.0.1, which no rack lists: they get rack and datacenter '{UNKNOWN}'"
        )));
    }
    let placed: Vec<_> = (0..spec.workers)
        .filter_map(|id| t.local_node(id, spec.workers, spec.workers_per_pod))
        .collect();
    let count = |f: &dyn Fn(&t2_core::topology::Place) -> &str| {
        placed
            .iter()
            .map(f)
            .collect::<std::collections::BTreeSet<&str>>()
            .len()
    };
    let (used, racks, dcs) = (
        count(&|p| p.node.as_str()),
        count(&|p| p.rack.as_str()),
        count(&|p| p.datacenter.as_str()),
    );
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    Ok(Some(format!(
        "simulating {} in {} and {} on loopback addresses",
        plural(used, "node", "nodes"),
        plural(racks, "rack", "racks"),
        plural(dcs, "datacenter", "datacenters"),
    )))
}
