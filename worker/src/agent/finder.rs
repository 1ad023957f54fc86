//! Finding a lost job master again: through ZooKeeper (fault-tolerant jobs), at the same
//! address (a job master that restarts behind a stable address, e.g. a Kubernetes Service), or
//! not at all (losing the job master ends the worker).

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::ft::FaultTolerance;
use super::link::Link;
use super::AgentError;

/// How long one dial of the job master may take before it is tried again.
const DIAL: Duration = Duration::from_secs(2);

/// What an agent does when it loses its job master without ZooKeeper to name a successor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobMasterFinder {
    /// Fault-tolerant jobs find the restarted job master through ZooKeeper; other jobs end
    /// the worker (the local runtime: a lost job master fails the job).
    #[default]
    ZooKeeper,
    /// Wait (up to the job's `join_timeout`) for a job master at the same address and
    /// reconnect to it as the same worker; requests survive the lost stream. For job masters
    /// that restore their state and restart behind a stable address (Kubernetes).
    FixedAddress,
}

/// How this agent gets its job master back, resolved from its job.
pub(crate) enum Finder<'a> {
    ZooKeeper(&'a FaultTolerance),
    FixedAddress(&'a str),
    None,
}

impl Finder<'_> {
    /// True when a lost job master is waited for rather than fatal.
    pub(crate) fn reconnects(&self) -> bool {
        !matches!(self, Finder::None)
    }

    /// Waits for the job master to come back and reconnects `link` to it within `timeout`.
    pub(crate) async fn reconnect(&self, link: &Link, timeout: Duration) -> Result<(), AgentError> {
        match self {
            Finder::ZooKeeper(ft) => ft.reconnect(link, timeout).await,
            Finder::FixedAddress(addr) => reconnect_same_address(link, addr, timeout).await,
            Finder::None => Err(AgentError::JobMaster(
                "this worker does not reconnect to a lost job master".into(),
            )),
        }
    }
}

/// Reconnects `link` to the job master at `addr` (restarted behind the same address), trying
/// until `timeout`. A refusal is final.
pub async fn reconnect_same_address(
    link: &Link,
    addr: &str,
    timeout: Duration,
) -> Result<(), AgentError> {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        match link.reconnect(addr, DIAL).await {
            Ok(()) => {
                info!(%addr, elapsed_ms = started.elapsed().as_millis() as u64, "reconnected to the restarted job master");
                return Ok(());
            }
            Err(e @ AgentError::Refused(_)) => return Err(e),
            Err(e) if Instant::now() >= deadline => {
                return Err(AgentError::JobMaster(format!(
                    "the job master at {addr} did not come back within {timeout:?}: {e}"
                )))
            }
            Err(e) => warn!(%addr, error = %e, "job master not back yet"),
        }
    }
}
