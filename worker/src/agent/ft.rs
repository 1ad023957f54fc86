//! Fault tolerance on the agent side (jobs with `fault_tolerant: true`): the job master is
//! found through its ephemeral znode, the restart count comes from ZooKeeper, the worker keeps
//! a truly ephemeral liveness znode, and a lost job master is waited for and reconnected to.

use std::time::{Duration, Instant};

use t2_core::zk::{JobZnodes, Zk};
use t2_proto::{RegisterParams, WorkerInfo};
use tracing::{info, warn};

use super::link::Link;
use super::{AgentConfig, AgentError};

/// How long one dial of a job master address may take before ZooKeeper is asked again.
const DIAL: Duration = Duration::from_secs(2);

/// An agent's ZooKeeper session, made again when it expires.
pub struct FaultTolerance {
    /// The current session (replaced by [`Self::renew_if_expired`]).
    zk: std::sync::Mutex<Zk>,
    /// How long connecting a new session may take.
    connect_timeout: Duration,
    /// The liveness znode this worker announced (ID, restart count), announced again in a new
    /// session: an expired session's ephemeral znodes are gone.
    alive: std::sync::Mutex<Option<(u32, u32)>>,
    znodes: JobZnodes,
    /// Creation zxid of the job master znode we last used (a new job master makes a new one).
    jm_czxid: std::sync::Mutex<i64>,
    /// How job masters are dialled.
    dialer: super::dial::Dialer,
}

fn zk_err(e: impl ToString) -> AgentError {
    AgentError::JobMaster(e.to_string())
}

impl FaultTolerance {
    /// Connects to the job's ZooKeeper.
    pub async fn connect(cfg: &AgentConfig) -> Result<Self, AgentError> {
        let z = &cfg.spec.zookeeper;
        let zk = Zk::connect(&z.addresses, z.session_timeout, cfg.connect_timeout)
            .await
            .map_err(zk_err)?;
        Ok(Self {
            zk: std::sync::Mutex::new(zk),
            connect_timeout: cfg.connect_timeout,
            alive: std::sync::Mutex::new(None),
            znodes: JobZnodes::new(&z.root, &cfg.job_id),
            jm_czxid: std::sync::Mutex::new(0),
            dialer: cfg.dialer.clone(),
        })
    }

    /// The current session.
    fn zk(&self) -> Zk {
        self.zk.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// When ZooKeeper was away for longer than the session timeout (its session expired: it
    /// never comes back), opens a new session, announces this worker's liveness znode in it
    /// again, and uses it from then on. Connecting waits until `deadline` at the latest.
    async fn renew_if_expired(&self, deadline: Instant) -> Result<(), AgentError> {
        let old = self.zk();
        if !old.is_terminated() {
            return Ok(());
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(self.connect_timeout);
        let zk = Zk::connect(old.addresses(), old.session_timeout(), left)
            .await
            .map_err(zk_err)?;
        let alive = *self.alive.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((worker_id, restart_count)) = alive {
            self.put_alive(&zk, worker_id, restart_count).await?;
        }
        warn!(addresses = %zk.addresses(), "the ZooKeeper session had expired; using a new one");
        *self.zk.lock().unwrap_or_else(|e| e.into_inner()) = zk;
        Ok(())
    }

    /// This worker's restart count: one more than the recorded one when the worker was
    /// registered before (a restarted container knows nothing else), at least `given`.
    pub async fn restart_count(&self, worker_id: u32, given: u32) -> Result<u32, AgentError> {
        use prost::Message;
        let recorded = self
            .zk()
            .get(&self.znodes.worker(worker_id))
            .await
            .map_err(zk_err)?;
        let from_zk = recorded
            .and_then(|(data, _)| WorkerInfo::decode(data.as_slice()).ok())
            .map(|w| w.restart_count + 1)
            .unwrap_or(0);
        Ok(given.max(from_zk))
    }

    /// Creates this worker's ephemeral liveness znode.
    pub async fn announce_alive(
        &self,
        worker_id: u32,
        restart_count: u32,
    ) -> Result<(), AgentError> {
        self.put_alive(&self.zk(), worker_id, restart_count).await?;
        *self.alive.lock().unwrap_or_else(|e| e.into_inner()) = Some((worker_id, restart_count));
        Ok(())
    }

    /// Writes this worker's liveness znode (its restart count) as an ephemeral of `zk`.
    async fn put_alive(
        &self,
        zk: &Zk,
        worker_id: u32,
        restart_count: u32,
    ) -> Result<(), AgentError> {
        zk.put_ephemeral(
            &self.znodes.live_worker(worker_id),
            restart_count.to_string().as_bytes(),
        )
        .await
        .map_err(zk_err)
    }

    /// The job master's address; with `newer`, only one announced after the one last used.
    async fn job_master(&self, newer: bool, deadline: Instant) -> Result<String, AgentError> {
        let path = self.znodes.jobmaster();
        loop {
            // ZooKeeper itself may be restarting: a failed read is tried again until the
            // deadline, like a missing znode, in a new session once the old one expired.
            let read = match self.zk().get(&path).await {
                Ok(r) => r,
                Err(e) if Instant::now() < deadline => {
                    warn!(error = %e, "cannot read the job master's znode yet; trying again");
                    if let Err(e) = self.renew_if_expired(deadline).await {
                        warn!(error = %e, "no new ZooKeeper session yet");
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => return Err(zk_err(e)),
            };
            if let Some((data, stat)) = read {
                let last = self.jm_czxid.lock().map(|c| *c).unwrap_or(0);
                if !newer || stat.czxid != last {
                    if let Ok(mut c) = self.jm_czxid.lock() {
                        *c = stat.czxid;
                    }
                    return Ok(String::from_utf8_lossy(&data).to_string());
                }
            }
            if Instant::now() >= deadline {
                return Err(AgentError::JobMaster(format!(
                    "no job master announced itself in ZooKeeper at {} ({path})",
                    self.zk().addresses()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Registers with whichever job master ZooKeeper names, until `timeout`.
    pub async fn connect_link(
        &self,
        params: RegisterParams,
        timeout: Duration,
    ) -> Result<Link, AgentError> {
        let deadline = Instant::now() + timeout;
        let mut newer = false;
        loop {
            let addr = self.job_master(newer, deadline).await?;
            match Link::connect_with(&self.dialer, &addr, params.clone(), DIAL, true).await {
                Ok(link) => return Ok(link),
                Err(e @ AgentError::Refused(_)) => return Err(e),
                Err(e) if Instant::now() >= deadline => return Err(e),
                // A stale address of a dead job master: wait for its successor.
                Err(e) => {
                    warn!(error = %e, "job master named in ZooKeeper not reachable");
                    newer = true;
                }
            }
        }
    }

    /// After the stream was lost: waits for a new job master and reconnects to it.
    pub async fn reconnect(&self, link: &Link, timeout: Duration) -> Result<(), AgentError> {
        let started = Instant::now();
        let deadline = started + timeout;
        loop {
            let addr = self.job_master(true, deadline).await?;
            match link.reconnect(&addr, DIAL).await {
                Ok(()) => {
                    info!(%addr, elapsed_ms = started.elapsed().as_millis() as u64, "reconnected to the restarted job master");
                    return Ok(());
                }
                Err(e @ AgentError::Refused(_)) => return Err(e),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(e) => warn!(error = %e, "new job master not reachable yet"),
            }
        }
    }
}
