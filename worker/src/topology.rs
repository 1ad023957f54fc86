//! The job's workers grouped by datacenter, rack and node, in worker-list order (the job
//! master lists the workers of a rack contiguously), for programs that arrange their traffic
//! by rack: [`crate::WorkerContext::topology`].

use serde::{Deserialize, Serialize};

use crate::local_api::WorkerEntry;

/// Workers on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeGroup {
    /// The node's IP address.
    pub node: String,
    /// Its workers' IDs.
    pub workers: Vec<u32>,
}

/// Workers in one rack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RackGroup {
    /// The rack's name (`unknown` for nodes no list names).
    pub rack: String,
    /// Its nodes.
    pub nodes: Vec<NodeGroup>,
}

impl RackGroup {
    /// The rack's workers' IDs, node by node.
    pub fn workers(&self) -> Vec<u32> {
        self.nodes.iter().flat_map(|n| n.workers.clone()).collect()
    }
}

/// Workers in one datacenter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatacenterGroup {
    /// The datacenter's name.
    pub datacenter: String,
    /// Its racks.
    pub racks: Vec<RackGroup>,
}

/// Every worker by datacenter, rack and node.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Topology {
    /// The datacenters, in worker-list order.
    pub datacenters: Vec<DatacenterGroup>,
}

impl Topology {
    /// Groups `workers` (in list order). A datacenter, rack or node met again after others
    /// joins its earlier group.
    pub fn from_workers(workers: &[WorkerEntry]) -> Self {
        let mut t = Topology::default();
        for w in workers {
            let dc = match t
                .datacenters
                .iter()
                .position(|d| d.datacenter == w.datacenter)
            {
                Some(i) => &mut t.datacenters[i],
                None => {
                    t.datacenters.push(DatacenterGroup {
                        datacenter: w.datacenter.clone(),
                        racks: Vec::new(),
                    });
                    t.datacenters.last_mut().expect("just pushed")
                }
            };
            let rack = match dc.racks.iter().position(|r| r.rack == w.rack) {
                Some(i) => &mut dc.racks[i],
                None => {
                    dc.racks.push(RackGroup {
                        rack: w.rack.clone(),
                        nodes: Vec::new(),
                    });
                    dc.racks.last_mut().expect("just pushed")
                }
            };
            match rack.nodes.iter_mut().find(|n| n.node == w.node) {
                Some(n) => n.workers.push(w.id),
                None => rack.nodes.push(NodeGroup {
                    node: w.node.clone(),
                    workers: vec![w.id],
                }),
            }
        }
        t
    }

    /// Every rack (with its datacenter's name), in order.
    pub fn racks(&self) -> Vec<(&str, &RackGroup)> {
        self.datacenters
            .iter()
            .flat_map(|d| d.racks.iter().map(move |r| (d.datacenter.as_str(), r)))
            .collect()
    }

    /// The rack worker `id` is in.
    pub fn rack_of(&self, id: u32) -> Option<&RackGroup> {
        self.racks()
            .into_iter()
            .map(|(_, r)| r)
            .find(|r| r.nodes.iter().any(|n| n.workers.contains(&id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: u32, node: &str, rack: &str, dc: &str) -> WorkerEntry {
        WorkerEntry {
            id,
            host: node.into(),
            port: 1,
            node: node.into(),
            rack: rack.into(),
            datacenter: dc.into(),
            restart_count: 0,
            state: "STARTED".into(),
        }
    }

    #[test]
    fn groups_keep_list_order() {
        let list = [
            w(4, "127.0.0.4", "r2", "east"),
            w(5, "127.0.0.4", "r2", "east"),
            w(0, "127.0.0.2", "r1", "east"),
            w(2, "127.0.0.6", "r3", "west"),
            w(1, "127.0.0.3", "r1", "east"),
        ];
        let t = Topology::from_workers(&list);
        let racks: Vec<(&str, &str, Vec<u32>)> = t
            .racks()
            .into_iter()
            .map(|(d, r)| (d, r.rack.as_str(), r.workers()))
            .collect();
        assert_eq!(
            racks,
            vec![
                ("east", "r2", vec![4, 5]),
                ("east", "r1", vec![0, 1]),
                ("west", "r3", vec![2])
            ]
        );
        assert_eq!(t.rack_of(1).map(|r| r.rack.as_str()), Some("r1"));
        assert_eq!(t.rack_of(9), None);
        assert_eq!(t.datacenters[0].racks[1].nodes.len(), 2);
    }
}
