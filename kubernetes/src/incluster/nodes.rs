//! A worker's rack and datacenter from its node's labels. Agents report their node's IP
//! (`status.hostIP` through the downward API, `T2_NODE_IP`); the job master lists the nodes
//! (allowed by the optional ClusterRole in deploy/rbac-nodes.yaml), maps every address and
//! name of each to its `kubernetes.rack_label` and `kubernetes.datacenter_label` values, and
//! keeps that map: an unknown node lists them again, at most once per [`REFRESH`]. Without the
//! permission it says so once and leaves nodes as the workers described them. A job with
//! topology lists (`topology.racks`, Twister2's `kubernetes.racks.list`) never gets here: the
//! job master maps the hostIP through the lists itself (`t2_jobmaster`'s `topology`).

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::Api;
use t2_proto::NodeInfo;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::client::Kube;
use crate::error::is_status;
use crate::settings::Settings;

/// Shortest time between two node lists.
pub const REFRESH: Duration = Duration::from_secs(30);

/// Rack and datacenter by node address or name.
pub struct NodeLabels {
    kube: Kube,
    rack_label: String,
    datacenter_label: String,
    refresh: Duration,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// Address or node name → (rack, datacenter).
    places: HashMap<String, (String, String)>,
    listed_at: Option<Instant>,
    forbidden: bool,
}

impl NodeLabels {
    /// Node labels read through `kube`, with the label names of `settings`.
    pub fn new(kube: Kube, settings: &Settings) -> Self {
        Self {
            kube,
            rack_label: settings.rack_label.clone(),
            datacenter_label: settings.datacenter_label.clone(),
            refresh: REFRESH,
            cache: Mutex::default(),
        }
    }

    /// `node` with its rack and datacenter filled in (where the worker left them empty) from
    /// its node's labels; unchanged when the node or the permission to list nodes is missing.
    pub async fn describe(&self, mut node: NodeInfo) -> NodeInfo {
        if node.node_ip.is_empty() {
            return node;
        }
        let mut cache = self.cache.lock().await;
        if cache.forbidden {
            return node;
        }
        let stale = cache
            .listed_at
            .is_none_or(|at| at.elapsed() >= self.refresh);
        if !cache.places.contains_key(&node.node_ip) && stale {
            self.list(&mut cache).await;
        }
        if let Some((rack, datacenter)) = cache.places.get(&node.node_ip) {
            if node.rack.is_empty() {
                node.rack = rack.clone();
            }
            if node.datacenter.is_empty() {
                node.datacenter = datacenter.clone();
            }
        }
        node
    }

    async fn list(&self, cache: &mut Cache) {
        cache.listed_at = Some(Instant::now());
        let api: Api<Node> = Api::all(self.kube.client.clone());
        let nodes = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) if is_status(&e, 403) => {
                cache.forbidden = true;
                warn!(
                    "the job master may not list nodes, so workers get no rack or datacenter; \
                     apply deploy/rbac-nodes.yaml to allow it"
                );
                return;
            }
            Err(e) => {
                warn!(error = %e, "cannot list nodes; workers get no rack or datacenter for now");
                return;
            }
        };
        cache.places.clear();
        for n in nodes {
            let labels = n.metadata.labels.unwrap_or_default();
            let place = (
                labels.get(&self.rack_label).cloned().unwrap_or_default(),
                labels
                    .get(&self.datacenter_label)
                    .cloned()
                    .unwrap_or_default(),
            );
            let addresses = n
                .status
                .and_then(|s| s.addresses)
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.address);
            for key in addresses.chain(n.metadata.name) {
                cache.places.insert(key, place.clone());
            }
        }
        info!(
            keys = cache.places.len(),
            "node labels read for racks and datacenters"
        );
    }
}
