//! The job master's cluster on Kubernetes: scaling patches the worker StatefulSet's scale
//! subresource (and records the number in the root); ending the job records the final state
//! in the root, then deletes it — garbage collection removes every object the root owns, this
//! job master's own StatefulSet included. A worker's node gets its rack and datacenter from
//! the node's labels ([`NodeLabels`]).

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use t2_jobmaster::cluster::{ClusterError, JobCluster};
use t2_proto::{JobState, NodeInfo};

use crate::client::Kube;
use crate::create::delete_root;
use crate::error::is_status;
use crate::manifests::root::keys;
use crate::names::JobNames;
use crate::scale::{patch_scale, pods_for};
use crate::settings::Settings;

use super::nodes::NodeLabels;

/// Job `id` on Kubernetes, seen from its job master.
pub struct KubeJobCluster {
    kube: Kube,
    id: String,
    workers_per_pod: u32,
    nodes: NodeLabels,
}

impl KubeJobCluster {
    /// The cluster of job `id`, whose pods hold `workers_per_pod` workers (the default rack
    /// and datacenter labels).
    pub fn new(kube: Kube, id: &str, workers_per_pod: u32) -> Self {
        Self::with_settings(kube, id, workers_per_pod, &Settings::default())
    }

    /// [`new`](Self::new) with the rack and datacenter labels of the job's `settings`.
    pub fn with_settings(kube: Kube, id: &str, workers_per_pod: u32, settings: &Settings) -> Self {
        Self {
            nodes: NodeLabels::new(kube.clone(), settings),
            kube,
            id: id.into(),
            workers_per_pod: workers_per_pod.max(1),
        }
    }
}

#[async_trait]
impl JobCluster for KubeJobCluster {
    async fn scale_workers(&self, workers: u32) -> Result<(), ClusterError> {
        let pods = pods_for(workers, self.workers_per_pod).map_err(ClusterError::backend)?;
        patch_scale(
            &self.kube,
            &self.id,
            &JobNames::new(&self.id).workers(),
            pods,
            workers,
        )
        .await
        .map_err(ClusterError::backend)
    }

    async fn end_job(&self, state: JobState, reason: &str) -> Result<(), ClusterError> {
        let body = serde_json::json!({"data": {
            keys::STATE: t2_jobmaster::master::state_name(state),
            keys::REASON: reason,
            keys::STATE_AT: t2_core::jobdir::now_rfc3339(),
        }});
        match self
            .kube
            .api::<ConfigMap>()
            .patch(&self.id, &PatchParams::default(), &Patch::Merge(&body))
            .await
        {
            Ok(_) => {}
            // Already gone: `t2 kill` deleted it.
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) => return Err(ClusterError::RecordFinalState(Box::new(e))),
        }
        delete_root(&self.kube, &self.id)
            .await
            .map_err(ClusterError::backend)
    }

    async fn describe_node(&self, node: NodeInfo) -> NodeInfo {
        self.nodes.describe(node).await
    }
}
