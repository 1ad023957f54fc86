//! What a job master needs from the cluster it runs on (DESIGN §2): to change the number of
//! workers and to end the job (record its final state, remove its objects). Restart counts
//! that must survive a job master restart are kept through its
//! [`JobStateStore`](crate::store::JobStateStore). Cluster backends implement this trait, so
//! the job master never depends on the launcher or on Kubernetes.

use async_trait::async_trait;
use t2_proto::{JobState, NodeInfo};
use thiserror::Error;

/// A cluster operation that failed; it displays as one line, with the backend's own error kept
/// as its source.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// The cluster will not do it, for the reason given.
    #[error("{0}")]
    Refused(String),
    /// The backend failed (an API error, a lost connection, ...).
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// The job's final state could not be recorded before removing it.
    #[error("cannot record the final state: {0}")]
    RecordFinalState(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ClusterError {
    /// A backend error, kept as the source.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }
}

/// The job master's view of its cluster.
#[async_trait]
pub trait JobCluster: Send + Sync + 'static {
    /// Runs `workers` workers from now on (the cluster starts or stops worker slots).
    async fn scale_workers(&self, workers: u32) -> Result<(), ClusterError>;
    /// Ends the job: records `state` and `reason`, then removes the job from the cluster.
    async fn end_job(&self, state: JobState, reason: &str) -> Result<(), ClusterError>;
    /// Completes what a worker said about its node (its IP) with what the cluster knows:
    /// rack and datacenter (Kubernetes: node labels). The default adds nothing.
    async fn describe_node(&self, node: NodeInfo) -> NodeInfo {
        node
    }
    /// Why worker `worker_id` was stopped by the cluster rather than failing itself (evicted,
    /// preempted, its node drained: Kubernetes' `DisruptionTarget`), or `None`. A disrupted
    /// worker's failure is not counted against `max_restarts`. The default: never.
    async fn disruption(&self, _worker_id: u32) -> Option<String> {
        None
    }
}
