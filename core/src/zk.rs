//! ZooKeeper helpers shared by the job master and the worker agents of fault-tolerant jobs:
//! where a job's znodes live, connecting with a deadline, and operations that ride out short
//! outages (retried until the session timeout) but never hang.
//!
//! Layout under the root (default `/t2`):
//!
//! | znode | kind | data |
//! |---|---|---|
//! | `/t2/<job>` | persistent | job state and reason (`RUNNING\nreason`) |
//! | `/t2/<job>/workers/<id>` | persistent | the worker's info, state and restart count |
//! | `/t2/<job>/jm` | ephemeral (job master's session) | the job master's address |
//! | `/t2/<job>/live/<id>` | ephemeral (the agent's session) | the worker's restart count |
//!
//! The whole tree is removed when the job ends (COMPLETED, FAILED or KILLED); the job's history
//! stays in its job record, not in ZooKeeper.

use std::time::{Duration, Instant};

use thiserror::Error;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkOpError};
pub use zookeeper_client::{SessionState, Stat, StateWatcher};

/// ZooKeeper failures; each displays as one readable line naming ZooKeeper's address.
#[derive(Debug, Error)]
pub enum ZkError {
    /// No connection within the deadline.
    #[error("cannot reach ZooKeeper at {addresses} within {deadline:?}: {cause}")]
    Connect {
        /// `host:port,…`.
        addresses: String,
        /// How long we tried.
        deadline: Duration,
        /// The last error.
        cause: String,
    },
    /// An operation failed (after retries, for connection trouble).
    #[error("ZooKeeper at {addresses}: {op} {path} failed: {cause}")]
    Op {
        /// `host:port,…`.
        addresses: String,
        /// What we did.
        op: &'static str,
        /// On which znode.
        path: String,
        /// Why it failed.
        cause: String,
    },
}

/// The znodes of one job.
#[derive(Debug, Clone)]
pub struct JobZnodes {
    job: String,
}

impl JobZnodes {
    /// The znodes of `job_id` under `root` (e.g. `/t2`).
    pub fn new(root: &str, job_id: &str) -> Self {
        Self {
            job: format!("{}/{job_id}", root.trim_end_matches('/')),
        }
    }
    /// The job's own znode (holds its state).
    pub fn job(&self) -> &str {
        &self.job
    }
    /// Parent of the workers' persistent znodes.
    pub fn workers(&self) -> String {
        format!("{}/workers", self.job)
    }
    /// Worker `id`'s persistent znode.
    pub fn worker(&self, id: u32) -> String {
        format!("{}/workers/{id}", self.job)
    }
    /// Parent of the liveness znodes.
    pub fn live(&self) -> String {
        format!("{}/live", self.job)
    }
    /// Worker `id`'s ephemeral liveness znode.
    pub fn live_worker(&self, id: u32) -> String {
        format!("{}/live/{id}", self.job)
    }
    /// The job master's ephemeral znode (its address).
    pub fn jobmaster(&self) -> String {
        format!("{}/jm", self.job)
    }
}

/// A ZooKeeper session.
#[derive(Debug, Clone)]
pub struct Zk {
    client: Client,
    addresses: String,
    session_timeout: Duration,
}

/// Runs `futures` concurrently; their results in order.
async fn join_all<T, F>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let futures: Vec<_> = futures.map(Box::pin).collect();
    let mut out = Vec::with_capacity(futures.len());
    let mut pending: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    let mut set = futures;
    // A small select loop without a dependency: poll all until each is done.
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, f) in set.iter_mut().enumerate() {
            if pending[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => pending[i] = Some(v),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(pending.into_iter().flatten());
    out
}

fn retriable(e: &ZkOpError) -> bool {
    matches!(
        e,
        // `Custom`: the session's own transport failure ("Connection reset by peer"), which
        // requests in flight when the server dies get instead of `ConnectionLoss`. The
        // session reconnects as it does after a connection loss; every t2 operation is safe
        // to repeat (writes are unconditional, creates and deletes handle "exists"/"no node").
        ZkOpError::ConnectionLoss
            | ZkOpError::Timeout
            | ZkOpError::Throttled
            | ZkOpError::Custom(_)
    )
}

impl Zk {
    /// Connects, retrying until `deadline`.
    pub async fn connect(
        addresses: &str,
        session_timeout: Duration,
        deadline: Duration,
    ) -> Result<Zk, ZkError> {
        let started = Instant::now();
        let mut last = String::from("no attempt");
        while started.elapsed() < deadline {
            let left = deadline.saturating_sub(started.elapsed());
            let attempt = Client::connector()
                .with_session_timeout(session_timeout)
                .with_connection_timeout(left.min(Duration::from_secs(2)))
                .connect(addresses);
            match tokio::time::timeout(left.max(Duration::from_millis(10)), attempt).await {
                Ok(Ok(client)) => {
                    return Ok(Zk {
                        client,
                        addresses: addresses.to_string(),
                        session_timeout,
                    })
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "timed out".into(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(ZkError::Connect {
            addresses: addresses.to_string(),
            deadline,
            cause: last,
        })
    }

    /// True once the session can never serve again (expired, closed or refused): a new one
    /// must be made.
    pub fn is_terminated(&self) -> bool {
        self.client.state().is_terminated()
    }

    /// `host:port,…` of this session.
    pub fn addresses(&self) -> &str {
        &self.addresses
    }

    /// The session timeout.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout
    }

    /// Watches the session's state (Disconnected, SyncConnected, Expired, …).
    pub fn state_watcher(&self) -> StateWatcher {
        self.client.state_watcher()
    }

    fn err(&self, op: &'static str, path: &str, cause: impl ToString) -> ZkError {
        ZkError::Op {
            addresses: self.addresses.clone(),
            op,
            path: path.to_string(),
            cause: cause.to_string(),
        }
    }

    /// Runs `f` until it succeeds, fails for good, or connection trouble outlasts the session.
    async fn retry<T, F, Fut>(&self, op: &'static str, path: &str, f: F) -> Result<T, ZkError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, ZkOpError>>,
    {
        let started = Instant::now();
        loop {
            let attempt = tokio::time::timeout(self.session_timeout, f()).await;
            match attempt {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if retriable(&e) && started.elapsed() < self.session_timeout => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(e)) => return Err(self.err(op, path, e)),
                Err(_) => {
                    return Err(self.err(
                        op,
                        path,
                        format!("no answer within {:?}", self.session_timeout),
                    ))
                }
            }
        }
    }

    /// Creates `path` and its parents (persistent) when missing.
    pub async fn ensure(&self, path: &str) -> Result<(), ZkError> {
        let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
        self.retry("create", path, || self.client.mkdir(path, &opts))
            .await
    }

    /// Writes persistent `path` (created with its parents when missing).
    pub async fn put(&self, path: &str, data: &[u8]) -> Result<(), ZkError> {
        match self
            .retry("write", path, || self.client.set_data(path, data, None))
            .await
        {
            Ok(_) => Ok(()),
            Err(ZkError::Op { cause, .. }) if cause == ZkOpError::NoNode.to_string() => {
                if let Some((parent, _)) = path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
                    self.ensure(parent).await?;
                }
                let opts = CreateMode::Persistent.with_acls(Acls::anyone_all());
                match self
                    .retry("create", path, || self.client.create(path, data, &opts))
                    .await
                {
                    Ok(_) => Ok(()),
                    // Created by someone else in between: write again.
                    Err(ZkError::Op { cause, .. })
                        if cause == ZkOpError::NodeExists.to_string() =>
                    {
                        self.retry("write", path, || self.client.set_data(path, data, None))
                            .await
                            .map(drop)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Replaces `path` with an ephemeral znode of this session (a stale one of a dead session
    /// is deleted first).
    pub async fn put_ephemeral(&self, path: &str, data: &[u8]) -> Result<(), ZkError> {
        if let Some((parent, _)) = path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
            self.ensure(parent).await?;
        }
        self.delete(path).await?;
        let opts = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        match self
            .retry("create", path, || self.client.create(path, data, &opts))
            .await
        {
            Ok(_) => Ok(()),
            // A retried create whose first attempt went through: the znode is this session's.
            Err(ZkError::Op { cause, .. }) if cause == ZkOpError::NodeExists.to_string() => {
                match self.get(path).await? {
                    Some((_, stat)) if stat.ephemeral_owner == self.client.session_id().0 => Ok(()),
                    _ => Err(self.err("create", path, ZkOpError::NodeExists)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The data and stat of `path`, or `None` when it does not exist.
    pub async fn get(&self, path: &str) -> Result<Option<(Vec<u8>, Stat)>, ZkError> {
        match self
            .retry("read", path, || self.client.get_data(path))
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(ZkError::Op { cause, .. }) if cause == ZkOpError::NoNode.to_string() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Children names of `path` (empty when it does not exist).
    pub async fn children(&self, path: &str) -> Result<Vec<String>, ZkError> {
        match self
            .retry("list", path, || self.client.list_children(path))
            .await
        {
            Ok(v) => Ok(v),
            Err(ZkError::Op { cause, .. }) if cause == ZkOpError::NoNode.to_string() => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes `path` if it exists.
    pub async fn delete(&self, path: &str) -> Result<(), ZkError> {
        match self
            .retry("delete", path, || self.client.delete(path, None))
            .await
        {
            Ok(()) => Ok(()),
            Err(ZkError::Op { cause, .. }) if cause == ZkOpError::NoNode.to_string() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes `path` and everything under it: level by level from the deepest, each level's
    /// deletes pipelined (a job of 10 000 workers has 20 000 znodes; one round trip each, one
    /// after the other, would take seconds).
    pub async fn delete_tree(&self, path: &str) -> Result<(), ZkError> {
        const PIPELINE: usize = 256;
        let mut levels: Vec<Vec<String>> = vec![vec![path.to_string()]];
        loop {
            let mut next = Vec::new();
            for parent in levels.last().map(Vec::as_slice).unwrap_or_default() {
                for c in self.children(parent).await? {
                    next.push(format!("{parent}/{c}"));
                }
            }
            if next.is_empty() {
                break;
            }
            levels.push(next);
        }
        for level in levels.iter().rev() {
            for chunk in level.chunks(PIPELINE) {
                let deletes = chunk.iter().map(|p| self.delete(p));
                for result in join_all(deletes).await {
                    result?;
                }
            }
        }
        Ok(())
    }
}
