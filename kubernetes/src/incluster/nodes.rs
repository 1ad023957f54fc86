//! A worker's rack and datacenter from its node's labels. Agents report their node's IP
//! (`status.hostIP` through the downward API, `T2_NODE_IP`); the job master lists the nodes
//! (allowed by the optional ClusterRole in deploy/rbac-nodes.yaml), maps every address and
//! name of each to its `kubernetes.rack_label` and `kubernetes.datacenter_label` values, and
//! keeps that map: an unknown node lists them again, at most once per [`REFRESH`]. Without the
//! permission it says so once and leaves nodes as the workers described them. A job with
//! topology lists (`topology.racks`, Twister2's `kubernetes.racks.list`) never gets here: the
//! job master maps the hostIP through the lists itself (`t2_jobmaster`'s `topology`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::ListParams;
use kube::Api;
use t2_proto::NodeInfo;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::client::Kube;
use crate::error::is_status;
use crate::settings::Settings;

/// Shortest time between two node lists.
pub const REFRESH: Duration = Duration::from_secs(30);

/// Longest wait for one node list (a registration waiting on it carries on without a rack).
pub const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// Rack and datacenter by node address or name.
pub struct NodeLabels {
    kube: Kube,
    rack_label: String,
    datacenter_label: String,
    refresh: Duration,
    /// Held only between awaits, never across one: the list itself runs unlocked.
    cache: Mutex<Cache>,
    /// Counts finished lists, so that callers who found one in flight can wait for it.
    listed_tx: watch::Sender<u64>,
}

#[derive(Default)]
struct Cache {
    /// Address or node name → (rack, datacenter).
    places: HashMap<String, (String, String)>,
    listed_at: Option<Instant>,
    listing: bool,
    forbidden: bool,
}

/// What a caller does after looking in the cache.
enum Next {
    Done(Option<(String, String)>),
    List,
    Wait(watch::Receiver<u64>),
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
            listed_tx: watch::channel(0).0,
        }
    }

    /// `node` with its rack and datacenter filled in (where the worker left them empty) from
    /// its node's labels; unchanged when the node or the permission to list nodes is missing.
    /// One list runs at a time; registrations that need it wait for it (up to
    /// [`LIST_TIMEOUT`]) rather than each listing the nodes.
    pub async fn describe(&self, mut node: NodeInfo) -> NodeInfo {
        if node.node_ip.is_empty() {
            return node;
        }
        let mut place = None;
        for _ in 0..2 {
            match self.next_step(&node.node_ip) {
                Next::Done(found) => {
                    place = found;
                    break;
                }
                Next::List => {
                    self.list().await;
                    place = self.lock().places.get(&node.node_ip).cloned();
                    break;
                }
                Next::Wait(mut rx) => {
                    let _ = tokio::time::timeout(LIST_TIMEOUT, rx.changed()).await;
                }
            }
        }
        if let Some((rack, datacenter)) = place {
            if node.rack.is_empty() {
                node.rack = rack;
            }
            if node.datacenter.is_empty() {
                node.datacenter = datacenter;
            }
        }
        node
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks `ip` up; claims the next list when it is unknown and the cache is stale.
    fn next_step(&self, ip: &str) -> Next {
        let mut cache = self.lock();
        if cache.forbidden {
            return Next::Done(None);
        }
        if let Some(place) = cache.places.get(ip) {
            return Next::Done(Some(place.clone()));
        }
        if cache.listing {
            return Next::Wait(self.listed_tx.subscribe());
        }
        let stale = cache
            .listed_at
            .is_none_or(|at| at.elapsed() >= self.refresh);
        if !stale {
            return Next::Done(None);
        }
        cache.listing = true;
        cache.listed_at = Some(Instant::now());
        Next::List
    }

    /// Lists the nodes (unlocked), then replaces the cache; those waiting are woken when the
    /// list ends, however it ends (even if this future is dropped half-way).
    async fn list(&self) {
        let _claim = ListClaim(self);
        let api: Api<Node> = Api::all(self.kube.client.clone());
        let listed = tokio::time::timeout(LIST_TIMEOUT, api.list(&ListParams::default())).await;
        let mut cache = self.lock();
        match listed {
            Ok(Ok(list)) => self.fill(&mut cache, list.items),
            Ok(Err(e)) if is_status(&e, 403) => {
                cache.forbidden = true;
                warn!(
                    "the job master may not list nodes, so workers get no rack or datacenter; \
                     apply deploy/rbac-nodes.yaml to allow it"
                );
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot list nodes; workers get no rack or datacenter for now")
            }
            Err(_) => warn!(
                "listing the nodes took more than {LIST_TIMEOUT:?}; workers get no rack or datacenter for now"
            ),
        }
    }

    /// Replaces the cache with the places of `nodes`.
    fn fill(&self, cache: &mut Cache, nodes: Vec<Node>) {
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

/// The one list in flight: when it ends, the cache is free for the next and waiters wake.
struct ListClaim<'a>(&'a NodeLabels);

impl Drop for ListClaim<'_> {
    fn drop(&mut self) {
        self.0.lock().listing = false;
        self.0.listed_tx.send_modify(|n| *n += 1);
    }
}
