//! Durable job state behind a trait: the master writes every change that matters here before
//! acting on it. [`MemoryStore`] keeps it in memory (no fault tolerance); a ZooKeeper store can
//! implement the same trait.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use t2_proto::{JobState, WorkerInfo};
use thiserror::Error;

/// A store failure.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// What a job master persists.
#[async_trait]
pub trait JobStateStore: Send + Sync + 'static {
    /// Records the job state and its reason.
    async fn put_job_state(&self, state: JobState, reason: &str) -> Result<(), StoreError>;
    /// Records a worker's info (including its state and restart count).
    async fn put_worker(&self, info: &WorkerInfo) -> Result<(), StoreError>;
    /// Records several workers at once (registrations that arrived together). Stores that
    /// can should write them together; the default writes one after the other.
    async fn put_workers(&self, infos: &[WorkerInfo]) -> Result<(), StoreError> {
        for info in infos {
            self.put_worker(info).await?;
        }
        Ok(())
    }
    /// Every worker recorded so far (used by a restarted job master).
    async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError>;
    /// The recorded job state, if any.
    async fn job_state(&self) -> Result<Option<(JobState, String)>, StoreError>;
    /// Tells workers where this job master is (ZooKeeper: an ephemeral znode).
    async fn announce(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Completes with a reason when the store is lost for good (e.g. ZooKeeper down for
    /// longer than the session timeout); never completes for stores that cannot fail.
    async fn lost(&self) -> String {
        std::future::pending().await
    }
    /// Removes everything recorded for the job (called once the job has ended).
    async fn remove_job(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Records the job's number of workers after it was scaled.
    async fn put_num_workers(&self, _workers: u32) -> Result<(), StoreError> {
        Ok(())
    }
    /// The number of workers recorded by [`put_num_workers`](Self::put_num_workers), if any
    /// (a restarted job master of a scaled job uses it instead of its configuration's).
    async fn num_workers(&self) -> Result<Option<u32>, StoreError> {
        Ok(None)
    }
}

/// In-memory store: lives as long as the job master process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    job: Mutex<Option<(JobState, String)>>,
    workers: Mutex<BTreeMap<u32, WorkerInfo>>,
    num_workers: Mutex<Option<u32>>,
}

#[async_trait]
impl JobStateStore for MemoryStore {
    async fn put_job_state(&self, state: JobState, reason: &str) -> Result<(), StoreError> {
        *self.job.lock().map_err(|e| StoreError(e.to_string()))? = Some((state, reason.into()));
        Ok(())
    }

    async fn put_worker(&self, info: &WorkerInfo) -> Result<(), StoreError> {
        self.workers
            .lock()
            .map_err(|e| StoreError(e.to_string()))?
            .insert(info.worker_id, info.clone());
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        Ok(self
            .workers
            .lock()
            .map_err(|e| StoreError(e.to_string()))?
            .values()
            .cloned()
            .collect())
    }

    async fn job_state(&self) -> Result<Option<(JobState, String)>, StoreError> {
        Ok(self
            .job
            .lock()
            .map_err(|e| StoreError(e.to_string()))?
            .clone())
    }

    async fn put_num_workers(&self, workers: u32) -> Result<(), StoreError> {
        *self
            .num_workers
            .lock()
            .map_err(|e| StoreError(e.to_string()))? = Some(workers);
        Ok(())
    }

    async fn num_workers(&self) -> Result<Option<u32>, StoreError> {
        Ok(*self
            .num_workers
            .lock()
            .map_err(|e| StoreError(e.to_string()))?)
    }
}
