//! The ZooKeeper state store of fault-tolerant jobs: job state and every worker's info in
//! persistent znodes, the job master's address in an ephemeral one (see `t2_core::zk` for the
//! layout). A scaled job's worker count is kept in `/t2/<job>/num_workers` (decimal text). A
//! restarted job master rebuilds its registry from here.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use prost::Message;
use t2_core::zk::{JobZnodes, SessionState, Zk};
use t2_proto::{JobState, WorkerInfo};
use tracing::warn;

use crate::store::{JobStateStore, StoreError};

/// Most ZooKeeper writes one batch keeps in flight.
const PIPELINE: usize = 256;

/// Job state in ZooKeeper.
#[derive(Debug, Clone)]
pub struct ZkStore {
    zk: Zk,
    znodes: JobZnodes,
    address: String,
}

impl ZkStore {
    /// A store for `job_id` under `root`; `address` is what workers dial to reach this job master.
    pub fn new(zk: Zk, root: &str, job_id: &str, address: &str) -> Self {
        Self {
            zk,
            znodes: JobZnodes::new(root, job_id),
            address: address.to_string(),
        }
    }

    /// The znode holding the worker count of a scaled job.
    fn num_workers_path(&self) -> String {
        format!("{}/num_workers", self.znodes.job())
    }
}

fn store_err(e: impl ToString) -> StoreError {
    StoreError(e.to_string())
}

#[async_trait]
impl JobStateStore for ZkStore {
    async fn put_job_state(&self, state: JobState, reason: &str) -> Result<(), StoreError> {
        let data = format!("{}\n{reason}", state as i32);
        self.zk
            .put(self.znodes.job(), data.as_bytes())
            .await
            .map_err(store_err)
    }

    async fn put_worker(&self, info: &WorkerInfo) -> Result<(), StoreError> {
        self.zk
            .put(&self.znodes.worker(info.worker_id), &info.encode_to_vec())
            .await
            .map_err(store_err)
    }

    /// All at once: the writes are pipelined on the session (at most [`PIPELINE`] in flight),
    /// so a thousand registrations cost about one round trip, not a thousand.
    async fn put_workers(&self, infos: &[WorkerInfo]) -> Result<(), StoreError> {
        for chunk in infos.chunks(PIPELINE) {
            let writes = chunk.iter().map(|info| self.put_worker(info));
            for result in futures::future::join_all(writes).await {
                result?;
            }
        }
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        let mut out = Vec::new();
        for child in self
            .zk
            .children(&self.znodes.workers())
            .await
            .map_err(store_err)?
        {
            let Ok(id) = child.parse::<u32>() else {
                continue;
            };
            if let Some((data, _)) = self
                .zk
                .get(&self.znodes.worker(id))
                .await
                .map_err(store_err)?
            {
                let info = WorkerInfo::decode(data.as_slice())
                    .map_err(|e| StoreError(format!("worker {id}'s znode is corrupt: {e}")))?;
                out.push(info);
            }
        }
        out.sort_by_key(|w| w.worker_id);
        Ok(out)
    }

    async fn job_state(&self) -> Result<Option<(JobState, String)>, StoreError> {
        let Some((data, _)) = self.zk.get(self.znodes.job()).await.map_err(store_err)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&data);
        let (state, reason) = text.split_once('\n').unwrap_or((&text, ""));
        let state = state
            .trim()
            .parse::<i32>()
            .ok()
            .and_then(|s| JobState::try_from(s).ok());
        Ok(state.map(|s| (s, reason.to_string())))
    }

    async fn announce(&self) -> Result<(), StoreError> {
        self.zk
            .put_ephemeral(&self.znodes.jobmaster(), self.address.as_bytes())
            .await
            .map_err(store_err)
    }

    async fn lost(&self) -> String {
        let mut watcher = self.zk.state_watcher();
        let limit = self.zk.session_timeout();
        let mut disconnected_at: Option<Instant> = None;
        loop {
            let state = watcher.state();
            match state {
                SessionState::Expired | SessionState::Closed | SessionState::AuthFailed => {
                    return format!(
                        "lost ZooKeeper at {}: session {state:?}",
                        self.zk.addresses()
                    );
                }
                SessionState::Disconnected => {
                    let since = *disconnected_at.get_or_insert_with(|| {
                        warn!(
                            addresses = self.zk.addresses(),
                            "disconnected from ZooKeeper"
                        );
                        Instant::now()
                    });
                    if since.elapsed() >= limit {
                        return format!(
                            "lost ZooKeeper at {} for longer than the session timeout ({limit:?})",
                            self.zk.addresses()
                        );
                    }
                }
                _ => {
                    if disconnected_at.take().is_some() {
                        warn!(addresses = self.zk.addresses(), "reconnected to ZooKeeper");
                    }
                }
            }
            // Wake on the next change, or soon enough to enforce the limit.
            let _ = tokio::time::timeout(Duration::from_millis(100), watcher.changed()).await;
        }
    }

    async fn remove_job(&self) -> Result<(), StoreError> {
        self.zk
            .delete_tree(self.znodes.job())
            .await
            .map_err(store_err)
    }

    async fn put_num_workers(&self, workers: u32) -> Result<(), StoreError> {
        self.zk
            .put(&self.num_workers_path(), workers.to_string().as_bytes())
            .await
            .map_err(store_err)
    }

    async fn num_workers(&self) -> Result<Option<u32>, StoreError> {
        let path = self.num_workers_path();
        let Some((data, _)) = self.zk.get(&path).await.map_err(store_err)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&data);
        text.trim()
            .parse::<u32>()
            .map(Some)
            .map_err(|_| StoreError(format!("{path} holds '{text}', not a worker count")))
    }
}
