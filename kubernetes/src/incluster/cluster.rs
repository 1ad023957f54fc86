//! The job master's cluster on Kubernetes: scaling patches the worker StatefulSet's scale
//! subresource (and records the number in the root); ending the job records the final state
//! in the root, then deletes it — garbage collection removes every object the root owns, this
//! job master's own StatefulSet included — at once when `kubernetes.ttl_after_finished` is 0,
//! else it records when ([`super::finished`]) and the job master deletes it then. A worker's node gets its rack and datacenter from
//! the node's labels ([`NodeLabels`]). A worker whose pod the cluster disrupted (evicted,
//! preempted: [`crate::disruption`]) is reported as such, so its failure is not counted
//! against `max_restarts`. A Volcano gang job's PodGroup follows a scale: its `minMember` is
//! set to the new pods (and the job master) before the StatefulSet is scaled (issue 18).

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
    /// How long the finished job stays (issue 18).
    ttl_after_finished: std::time::Duration,
    /// What a watch of the worker pods saw disrupted (issue 18), once started.
    disruptions: Option<crate::disruption::DisruptionWatch>,
    /// The job's gang scheduling (issue 18, gang18).
    gang: crate::settings::Gang,
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
            ttl_after_finished: settings.ttl_after_finished,
            disruptions: None,
            gang: settings.gang,
        }
    }

    /// Starts watching the worker pods for disruptions; returns the watch's task.
    pub fn watch_disruptions(&mut self) -> tokio::task::JoinHandle<()> {
        let (watch, task) = crate::disruption::DisruptionWatch::spawn(self.kube.clone(), &self.id);
        self.disruptions = Some(watch);
        task
    }

    /// How long the finished job stays before its root is deleted.
    pub fn ttl_after_finished(&self) -> std::time::Duration {
        self.ttl_after_finished
    }
}

#[async_trait]
impl JobCluster for KubeJobCluster {
    async fn scale_workers(&self, workers: u32) -> Result<(), ClusterError> {
        let pods = pods_for(workers, self.workers_per_pod).map_err(ClusterError::backend)?;
        if self.gang == crate::settings::Gang::Kueue {
            let why = "it runs under Kueue, which does not follow a scale of its StatefulSets";
            return Err(ClusterError::backend(crate::error::KubeError::Config(
                why.into(),
            )));
        }
        if self.gang == crate::settings::Gang::Volcano {
            // First the gang's size, so Volcano neither holds the new pods for members that
            // are not coming nor starts some of them alone.
            let members = crate::manifests::gang::min_member(pods);
            crate::gang::patch_min_member(&self.kube, &self.id, members)
                .await
                .map_err(ClusterError::backend)?;
        }
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
        let mut body = serde_json::json!({"data": {
            keys::STATE: t2_jobmaster::master::state_name(state),
            keys::REASON: reason,
            keys::STATE_AT: t2_core::jobdir::now_rfc3339(),
        }});
        let keep = !self.ttl_after_finished.is_zero();
        if keep {
            body["data"][keys::REMOVE_AFTER] =
                super::finished::remove_after(self.ttl_after_finished).into();
        }
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
        if keep {
            // The job master deletes it when the time is up (`finished::linger_then_remove`).
            return Ok(());
        }
        delete_root(&self.kube, &self.id)
            .await
            .map_err(ClusterError::backend)
    }

    async fn describe_node(&self, node: NodeInfo) -> NodeInfo {
        self.nodes.describe(node).await
    }

    async fn disruption(&self, worker_id: u32) -> Option<String> {
        let pod = JobNames::new(&self.id).worker_pod(worker_id / self.workers_per_pod);
        if let Some(why) = self.disruptions.as_ref().and_then(|w| w.take(&pod)) {
            return Some(why);
        }
        crate::disruption::pod_disruption(&self.kube, &pod).await
    }
}
