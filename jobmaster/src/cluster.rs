//! What a job master needs from the cluster it runs on (DESIGN §2): to change the number of
//! workers and to end the job (record its final state, remove its objects). Restart counts
//! that must survive a job master restart are kept through its
//! [`JobStateStore`](crate::store::JobStateStore). Cluster backends implement this trait, so
//! the job master never depends on the launcher or on Kubernetes.

use async_trait::async_trait;
use t2_proto::{JobState, NodeInfo};
use thiserror::Error;

/// A cluster operation that failed.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct ClusterError(pub String);

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
}
