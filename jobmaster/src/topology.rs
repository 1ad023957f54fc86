//! Racks and datacenters from the job's `topology` lists: each registering worker's node IP
//! (Kubernetes: its pod's `status.hostIP`; locally: its simulated node) is looked up, so no
//! permission to list nodes is needed. A node the lists do not name gets rack and datacenter
//! `unknown` and one warning per node, or fails the job when `topology.strict` is set. The
//! worker list is ordered so that the workers of a datacenter, a rack and a node are
//! contiguous.

use std::cmp::Ordering;
use std::collections::HashMap;

use t2_core::topology::{canonical_ip, UNKNOWN};
use t2_proto::{NodeInfo, WorkerInfo};
use tonic::Status;
use tracing::warn;

use crate::master::Master;

impl Master {
    /// Fills in `info`'s rack and datacenter from the lists (when the job uses them). Refuses
    /// a worker on an unlisted node when the lists are strict, and says why.
    pub(crate) fn place(&mut self, info: &mut WorkerInfo) -> Result<(), Status> {
        let Some(topology) = &self.cfg.topology else {
            return Ok(());
        };
        let node = info.node.get_or_insert_with(NodeInfo::default);
        if let Some(p) = topology.locate(&node.node_ip) {
            node.rack = p.rack;
            node.datacenter = p.datacenter;
            return Ok(());
        }
        let shown = if node.node_ip.is_empty() {
            "an unknown node".to_string()
        } else {
            format!("node {}", node.node_ip)
        };
        if topology.strict {
            return Err(Status::failed_precondition(format!(
                "worker {} runs on {shown}, which no rack in topology.racks lists, and topology.strict is true; add the node to a rack's list",
                info.worker_id
            )));
        }
        node.rack = UNKNOWN.into();
        node.datacenter = UNKNOWN.into();
        if self.unlisted_nodes.insert(node.node_ip.clone()) {
            warn!(job_id = %self.cfg.job_id, worker_id = info.worker_id, node = %node.node_ip, "{shown} is in no rack of topology.racks; its workers get rack and datacenter '{UNKNOWN}'");
        }
        Ok(())
    }

    /// The worker list as sent to workers: by datacenter, rack and node (in the lists' order
    /// when the job has lists, else by name), then worker ID.
    pub(crate) fn worker_list(&self) -> Vec<WorkerInfo> {
        let workers: Vec<&WorkerInfo> = self.registry.iter().map(|e| &e.info).collect();
        // Each node's position in the lists, found once per node; each worker's key made once
        // (the status watchers see is this list, rebuilt while workers join).
        let mut ranks: HashMap<&str, usize> = HashMap::new();
        if let Some(t) = &self.cfg.topology {
            let listed: HashMap<String, usize> = t
                .nodes()
                .into_iter()
                .enumerate()
                .map(|(i, p)| (p.node, i))
                .rev()
                .collect();
            for w in &workers {
                let ip = node_ip(w);
                ranks.entry(ip).or_insert_with(|| {
                    canonical_ip(ip)
                        .and_then(|c| listed.get(&c).copied())
                        .unwrap_or(usize::MAX)
                });
            }
        }
        let mut keyed: Vec<_> = workers.iter().map(|w| (order_key(&ranks, w), *w)).collect();
        keyed.sort_unstable_by(|(a, _), (b, _)| {
            a.0.cmp(&b.0)
                .then_with(|| cmp_name(a.1, b.1))
                .then_with(|| cmp_name(a.2, b.2))
                .then_with(|| cmp_name(a.3, b.3))
                .then_with(|| a.4.cmp(&b.4))
        });
        keyed.into_iter().map(|(_, w)| w.clone()).collect()
    }
}

/// Orders two names; an empty side is decided by length alone. An empty `String` points at no
/// memory (address 1), and glibc's AVX-512 memcmp, handed that pointer even for zero bytes,
/// takes ~100 ns a call (a masked load from an unmapped page): sorting 10 000 workers whose
/// racks are empty took 30 ms instead of 1 ms.
fn cmp_name(a: &str, b: &str) -> Ordering {
    if a.is_empty() || b.is_empty() {
        a.len().cmp(&b.len())
    } else {
        a.cmp(b)
    }
}

fn node_ip(w: &WorkerInfo) -> &str {
    w.node.as_ref().map_or("", |n| n.node_ip.as_str())
}

/// Where worker `w` goes in the list: its node's rank in the lists (unlisted last), its
/// datacenter, rack and node IP, then its ID.
fn order_key<'a>(
    ranks: &HashMap<&str, usize>,
    w: &'a WorkerInfo,
) -> (usize, &'a str, &'a str, &'a str, u32) {
    let node = w.node.as_ref();
    let ip = node_ip(w);
    (
        ranks.get(ip).copied().unwrap_or(usize::MAX),
        node.map_or("", |n| n.datacenter.as_str()),
        node.map_or("", |n| n.rack.as_str()),
        ip,
        w.worker_id,
    )
}
