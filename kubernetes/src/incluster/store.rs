//! The job master's state store on Kubernetes: the job's root ConfigMap. The job state is
//! written at once; worker records (state, restart count, address) are batched and written
//! every [`FLUSH`], so a thousand registrations cost a handful of patches. A restarted job
//! master reads them back, so restart counts survive it, and so does the number of workers
//! of a scaled job (the root's `workers`). (Fault-tolerant jobs use ZooKeeper instead.) The ConfigMap holds 1 MiB: a submit whose workers' records could not fit is refused (`record::check_fits`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use t2_jobmaster::store::{JobStateStore, StoreError};
use t2_proto::{JobState, NodeInfo, WorkerInfo, WorkerState};
use tokio::sync::Notify;
use tracing::warn;

use crate::client::Kube;
use crate::manifests::root::keys;
use crate::record::{self, worker_key, WorkerEntry};

/// How long worker records wait to be written together.
pub const FLUSH: Duration = Duration::from_millis(250);

/// The job state `name` (as `state_name` writes it).
pub fn job_state_from(name: &str) -> Option<JobState> {
    Some(match name {
        "STARTING" => JobState::Starting,
        "RUNNING" => JobState::Running,
        "COMPLETED" => JobState::JobCompleted,
        "FAILED" => JobState::JobFailed,
        "KILLED" => JobState::JobKilled,
        _ => return None,
    })
}

/// The root ConfigMap as a [`JobStateStore`].
pub struct ConfigMapStore {
    kube: Kube,
    id: String,
    pending: Arc<Mutex<BTreeMap<String, String>>>,
    wake: Arc<Notify>,
    flusher: tokio::task::JoinHandle<()>,
}

impl ConfigMapStore {
    /// The store of job `id`.
    pub fn new(kube: Kube, id: &str) -> Self {
        let pending: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
        let wake = Arc::new(Notify::new());
        let flusher = {
            let (kube, id, pending, wake) =
                (kube.clone(), id.to_string(), pending.clone(), wake.clone());
            tokio::spawn(async move {
                loop {
                    wake.notified().await;
                    tokio::time::sleep(FLUSH).await;
                    let batch =
                        std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()));
                    if let Err(e) = patch(&kube, &id, batch.clone()).await {
                        warn!(job_id = %id, error = %e, "could not record worker states; retrying");
                        let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                        for (k, v) in batch {
                            p.entry(k).or_insert(v);
                        }
                        wake.notify_one();
                    }
                }
            })
        };
        Self {
            kube,
            id: id.into(),
            pending,
            wake,
            flusher,
        }
    }

    async fn root(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let cm = self
            .kube
            .api::<ConfigMap>()
            .get(&self.id)
            .await
            .map_err(|e| {
                StoreError(format!(
                    "cannot read the job's root ConfigMap {}: {e}",
                    self.id
                ))
            })?;
        Ok(cm.data.unwrap_or_default())
    }
}

impl Drop for ConfigMapStore {
    fn drop(&mut self) {
        self.flusher.abort();
    }
}

async fn patch(kube: &Kube, id: &str, data: BTreeMap<String, String>) -> Result<(), StoreError> {
    if data.is_empty() {
        return Ok(());
    }
    let body = serde_json::json!({ "data": data });
    kube.api::<ConfigMap>()
        .patch(id, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map(drop)
        .map_err(|e| StoreError(format!("cannot update the job's root ConfigMap {id}: {e}")))
}

/// A worker's record as stored.
pub fn entry_of(info: &WorkerInfo) -> WorkerEntry {
    WorkerEntry {
        id: info.worker_id,
        state: info.state().as_str_name().to_string(),
        restart_count: info.restart_count,
        host: info.host.clone(),
        port: info.port,
        agent_port: info.agent_port,
        node: info
            .node
            .as_ref()
            .map(|n| n.node_ip.clone())
            .unwrap_or_default(),
    }
}

/// A stored record as a worker's info.
pub fn info_of(e: &WorkerEntry) -> WorkerInfo {
    let mut info = WorkerInfo {
        worker_id: e.id,
        host: e.host.clone(),
        port: e.port,
        node: Some(NodeInfo {
            node_ip: e.node.clone(),
            ..NodeInfo::default()
        }),
        restart_count: e.restart_count,
        state: 0,
        agent_port: e.agent_port,
    };
    info.set_state(WorkerState::from_str_name(&e.state).unwrap_or(WorkerState::Started));
    info
}

#[async_trait]
impl JobStateStore for ConfigMapStore {
    async fn put_job_state(&self, state: JobState, reason: &str) -> Result<(), StoreError> {
        let mut data = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        data.insert(
            keys::STATE.into(),
            t2_jobmaster::master::state_name(state).into(),
        );
        data.insert(keys::REASON.into(), reason.into());
        data.insert(keys::STATE_AT.into(), t2_core::jobdir::now_rfc3339());
        patch(&self.kube, &self.id, data).await
    }

    async fn put_worker(&self, info: &WorkerInfo) -> Result<(), StoreError> {
        let text = serde_json::to_string(&entry_of(info)).map_err(|e| StoreError(e.to_string()))?;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(worker_key(info.worker_id), text);
        self.wake.notify_one();
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        Ok(record::workers(&self.root().await?)
            .iter()
            .map(info_of)
            .collect())
    }

    async fn job_state(&self) -> Result<Option<(JobState, String)>, StoreError> {
        let data = self.root().await?;
        Ok(data
            .get(keys::STATE)
            .and_then(|s| job_state_from(s))
            .map(|s| (s, data.get(keys::REASON).cloned().unwrap_or_default())))
    }

    async fn put_num_workers(&self, workers: u32) -> Result<(), StoreError> {
        let data = BTreeMap::from([(keys::WORKERS.to_string(), workers.to_string())]);
        patch(&self.kube, &self.id, data).await
    }

    /// The root's `workers`: the submitted number until the job is scaled.
    async fn num_workers(&self) -> Result<Option<u32>, StoreError> {
        let data = self.root().await?;
        match data.get(keys::WORKERS) {
            None => Ok(None),
            Some(w) => w.parse().map(Some).map_err(|_| {
                StoreError(format!(
                    "the job's root ConfigMap {} records workers '{w}', not a number",
                    self.id
                ))
            }),
        }
    }
}
