//! Racks and datacenters: which rack and datacenter each node (by IP) is in, from the job
//! spec's `topology` lists, and where the local cluster puts each worker when those lists name
//! loopback addresses (a simulated cluster on one machine).
//!
//! The lists are checked when the spec is read (`spec/topology.rs`): a node is in at most one
//! rack, a rack in at most one datacenter, and every rack a datacenter names has a node list.
//! Nodes are ordered datacenter by datacenter (in list order), rack by rack (in the
//! datacenter's order, then the racks no datacenter names), node by node: the order in which
//! the local cluster fills nodes and in which the job master lists workers.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// The rack or datacenter of a node the lists do not name.
pub const UNKNOWN: &str = "unknown";

/// Where racks and datacenters come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TopologySource {
    /// `config` when `racks` lists any rack, else `labels`.
    #[default]
    Auto,
    /// Node labels (Kubernetes: `kubernetes.rack_label` / `kubernetes.datacenter_label`).
    Labels,
    /// The `racks` and `datacenters` lists.
    Config,
}

/// A rack and its nodes' IP addresses (canonical text, e.g. `10.0.0.1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rack {
    /// The rack's name.
    pub name: String,
    /// Its nodes' IP addresses, in list order.
    pub nodes: Vec<String>,
}

/// A datacenter and the racks in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Datacenter {
    /// The datacenter's name.
    pub name: String,
    /// Its racks' names, in list order.
    pub racks: Vec<String>,
}

/// The `topology` section of a job spec (checked).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TopologySpec {
    /// Where racks and datacenters come from.
    #[serde(default)]
    pub from: TopologySource,
    /// Datacenters and their racks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datacenters: Vec<Datacenter>,
    /// Racks and their nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub racks: Vec<Rack>,
    /// A worker on a node the lists do not name fails the job (the submit, where t2 can
    /// tell beforehand) instead of getting rack and datacenter [`UNKNOWN`].
    #[serde(default)]
    pub strict: bool,
}

/// A node and where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    /// The node's IP address.
    pub node: String,
    /// Its rack ([`UNKNOWN`] when not listed).
    pub rack: String,
    /// Its datacenter ([`UNKNOWN`] when its rack is in none).
    pub datacenter: String,
}

/// `ip` in canonical form (`::1`, `10.0.0.1`), or `None` when it is not an IP address.
pub fn canonical_ip(ip: &str) -> Option<String> {
    ip.trim().parse::<IpAddr>().ok().map(|a| a.to_string())
}

/// True for an address in 127.0.0.0/8 (all of which reach this machine on Linux).
pub fn is_loopback_v4(ip: &str) -> bool {
    matches!(ip.parse::<IpAddr>(), Ok(IpAddr::V4(a)) if a.is_loopback())
}

impl TopologySpec {
    /// True when racks and datacenters come from the lists.
    pub fn from_config(&self) -> bool {
        match self.from {
            TopologySource::Config => true,
            TopologySource::Labels => false,
            TopologySource::Auto => !self.racks.is_empty(),
        }
    }

    /// The datacenter rack `rack` is in ([`UNKNOWN`] when none names it).
    fn datacenter_of(&self, rack: &str) -> &str {
        self.datacenters
            .iter()
            .find(|d| d.racks.iter().any(|r| r == rack))
            .map_or(UNKNOWN, |d| d.name.as_str())
    }

    /// Every listed node, in order (see the module documentation).
    pub fn nodes(&self) -> Vec<Place> {
        let mut racks: Vec<&Rack> = Vec::new();
        for dc in &self.datacenters {
            for name in &dc.racks {
                if let Some(r) = self.racks.iter().find(|r| &r.name == name) {
                    racks.push(r);
                }
            }
        }
        for r in &self.racks {
            if !racks.iter().any(|x| x.name == r.name) {
                racks.push(r);
            }
        }
        racks
            .into_iter()
            .flat_map(|r| {
                let datacenter = self.datacenter_of(&r.name).to_string();
                r.nodes.iter().map(move |n| Place {
                    node: n.clone(),
                    rack: r.name.clone(),
                    datacenter: datacenter.clone(),
                })
            })
            .collect()
    }

    /// Where node `ip` is, when the lists name it.
    pub fn locate(&self, ip: &str) -> Option<Place> {
        let ip = canonical_ip(ip)?;
        let rack = self.racks.iter().find(|r| r.nodes.contains(&ip))?;
        Some(Place {
            node: ip,
            rack: rack.name.clone(),
            datacenter: self.datacenter_of(&rack.name).to_string(),
        })
    }

    /// Node `ip`'s position in [`nodes`](Self::nodes), when listed.
    pub fn rank(&self, ip: &str) -> Option<usize> {
        let ip = canonical_ip(ip)?;
        self.nodes().iter().position(|p| p.node == ip)
    }

    /// The listed loopback (127.0.0.0/8) nodes, in order: the local cluster's nodes.
    pub fn local_nodes(&self) -> Vec<Place> {
        self.nodes()
            .into_iter()
            .filter(|p| is_loopback_v4(&p.node))
            .collect()
    }

    /// The local node of worker `id` in a job of `workers` workers, `per_pod` to a slot
    /// group: slot groups fill the local nodes in order, each node taking a contiguous run of
    /// worker IDs (as even as can be; workers added later by scaling go to the last node).
    /// `None` when the lists are not used or name no loopback address.
    pub fn local_node(&self, id: u32, workers: u32, per_pod: u32) -> Option<Place> {
        if !self.from_config() {
            return None;
        }
        let nodes = self.local_nodes();
        if nodes.is_empty() {
            return None;
        }
        let per_pod = u64::from(per_pod.max(1));
        let pods = (u64::from(workers.max(1)) / per_pod).max(1);
        let pod = u64::from(id) / per_pod;
        let index = (pod * nodes.len() as u64 / pods).min(nodes.len() as u64 - 1);
        nodes.into_iter().nth(index as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rack(name: &str, nodes: &[&str]) -> Rack {
        Rack {
            name: name.into(),
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn dc(name: &str, racks: &[&str]) -> Datacenter {
        Datacenter {
            name: name.into(),
            racks: racks.iter().map(|n| n.to_string()).collect(),
        }
    }

    /// 3 racks × 2 nodes over two datacenters, listed out of datacenter order.
    fn three_racks() -> TopologySpec {
        TopologySpec {
            from: TopologySource::Auto,
            datacenters: vec![dc("east", &["r1", "r2"]), dc("west", &["r3"])],
            racks: vec![
                rack("r3", &["127.0.0.6", "127.0.0.7"]),
                rack("r1", &["127.0.0.2", "127.0.0.3"]),
                rack("r2", &["127.0.0.4", "127.0.0.5"]),
            ],
            strict: false,
        }
    }

    #[test]
    fn nodes_go_datacenter_by_datacenter() {
        let t = three_racks();
        let order: Vec<(String, String, String)> = t
            .nodes()
            .into_iter()
            .map(|p| (p.node, p.rack, p.datacenter))
            .collect();
        let want = [
            ("127.0.0.2", "r1", "east"),
            ("127.0.0.3", "r1", "east"),
            ("127.0.0.4", "r2", "east"),
            ("127.0.0.5", "r2", "east"),
            ("127.0.0.6", "r3", "west"),
            ("127.0.0.7", "r3", "west"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect();
        assert_eq!(order, want);
        assert_eq!(t.rank("127.0.0.6"), Some(4));
        assert_eq!(t.rank("10.0.0.1"), None);
    }

    #[test]
    fn workers_fill_nodes_in_order() {
        let t = three_racks();
        let nodes: Vec<String> = (0..12)
            .map(|id| t.local_node(id, 12, 1).expect("placed").node)
            .collect();
        let want: Vec<String> = (2..=7)
            .flat_map(|n| [format!("127.0.0.{n}"), format!("127.0.0.{n}")])
            .collect();
        assert_eq!(nodes, want);
        // Slot groups stay together: 4 pods of 3 over 6 nodes use the first of each pair.
        let pods: Vec<String> = (0..12)
            .map(|id| t.local_node(id, 12, 3).expect("placed").node)
            .collect();
        assert_eq!(pods[0], pods[2]);
        assert_ne!(pods[2], pods[3]);
        // Uneven: 7 workers over 6 nodes; a scaled-in worker 9 goes to the last node.
        let seven: Vec<String> = (0..7)
            .map(|id| t.local_node(id, 7, 1).expect("placed").node)
            .collect();
        assert_eq!(seven[0], seven[1]);
        assert_eq!(seven[6], "127.0.0.7");
        assert_eq!(t.local_node(9, 7, 1).expect("placed").node, "127.0.0.7");
    }

    #[test]
    fn lookups() {
        let t = three_racks();
        let p = t.locate("127.0.0.4").expect("listed");
        assert_eq!((p.rack.as_str(), p.datacenter.as_str()), ("r2", "east"));
        assert_eq!(t.locate("127.0.0.9"), None);
        assert_eq!(t.locate("node01.ip"), None);
        let mut no_dc = t.clone();
        no_dc.datacenters.clear();
        assert_eq!(
            no_dc.locate("127.0.0.4").expect("listed").datacenter,
            UNKNOWN
        );
        assert!(t.from_config());
        let labels = TopologySpec {
            from: TopologySource::Labels,
            ..t.clone()
        };
        assert!(!labels.from_config());
        assert_eq!(labels.local_node(0, 12, 1), None);
        assert!(!TopologySpec::default().from_config());
    }

    #[test]
    fn local_nodes_are_the_loopback_ones() {
        let t = TopologySpec {
            racks: vec![rack("a", &["10.0.0.1", "127.0.0.2"]), rack("b", &["::1"])],
            ..TopologySpec::default()
        };
        let local: Vec<String> = t.local_nodes().into_iter().map(|p| p.node).collect();
        assert_eq!(local, vec!["127.0.0.2"]);
        let remote = TopologySpec {
            racks: vec![rack("a", &["10.0.0.1"])],
            ..TopologySpec::default()
        };
        assert_eq!(remote.local_node(0, 4, 1), None);
        assert_eq!(canonical_ip(" 10.0.0.01 "), None);
        assert_eq!(canonical_ip("0:0:0:0:0:0:0:1").as_deref(), Some("::1"));
    }
}
