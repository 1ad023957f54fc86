//! `t2 pod agent`: one worker of a worker pod. Its worker ID is the pod's ordinal ×
//! workers per pod + the container's index; its address is the pod IP (no DNS wait); its
//! folder `/t2/work/worker-ID` (`/t2/work/mpi` in MPI jobs, the same in every pod); its
//! restart count is kept in the pod's work area, which outlives container restarts. A
//! worker that completed (or whose job ended) stays up until its pod is deleted — the
//! StatefulSet would otherwise restart it — for at most [`LINGER`].

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use t2_proto::NodeInfo;
use t2_worker::agent::{AgentConfig, AgentExit, JobMasterFinder};
use tracing::{info, Instrument};

use super::env::{self, package_path, work_area};
use crate::manifests::pod::env as names;

/// Workers 0..this offer their copy of the package to the job master. Scaling down removes
/// the highest IDs, so these stay while the job runs; more than one covers a worker that is
/// restarting when a new job master comes up.
pub const OFFERING_WORKERS: u32 = 3;

/// Longest a finished worker container waits to be stopped.
pub const LINGER: Duration = Duration::from_secs(24 * 3600);

/// Reads and bumps the start counter of container `index` in `area`: the restart count.
pub fn next_restart_count(area: &Path, index: u32) -> Result<u32, String> {
    let dir = area.join("run");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let file = dir.join(format!("container-{index}.starts"));
    let starts: u32 = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    std::fs::write(&file, (starts + 1).to_string())
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(starts)
}

/// The agent's configuration from the pod's environment.
pub fn config_from_env() -> Result<AgentConfig, String> {
    let job_id = env::required(names::JOB_ID)?;
    let pod = env::required(names::POD_NAME)?;
    let index: u32 = env::number(names::CONTAINER_INDEX)?;
    let per_pod: u32 = env::number(names::WORKERS_PER_POD)?;
    let worker_id = env::worker_id(env::ordinal(&pod)?, per_pod, index)?;
    let spec = env::job_spec()?;
    let area = work_area();
    let restart_count = next_restart_count(&area, index)?;
    let host = env::required(names::POD_IP)?;
    // OpenMPI starts the ranks of every pod in mpirun's working directory (worker 0's), or,
    // where that path does not exist, in $HOME, where `./program` is not found. Pods share no
    // file system, but an MPI job has one worker per pod: its folder is the same path in
    // every pod, holding the same unpacked package.
    let work_dir = if spec.mpi.enabled {
        area.join("work").join("mpi")
    } else {
        area.join("work").join(format!("worker-{worker_id}"))
    };
    Ok(AgentConfig {
        job_id,
        worker_id,
        restart_count,
        job_master: env::required(names::JOB_MASTER)?,
        token: env::required(names::JOB_TOKEN)?,
        dialer: env::jobmaster_dialer(spec.tls)?,
        agent_tls: env::agent_tls(&spec)?,
        package: package_path(),
        package_sha256: Some(env::required(names::PACKAGE_SHA256)?),
        package_url: None,
        package_tls: None,
        fetch_timeout: Duration::from_secs(60),
        work_dir,
        run_dir: area.join("run").join(format!("worker-{worker_id}")),
        node: NodeInfo {
            node_ip: std::env::var(names::NODE_IP).unwrap_or_default(),
            rack: String::new(),
            datacenter: String::new(),
        },
        connect_timeout: spec.join_timeout.max(Duration::from_secs(30)),
        term_grace: Duration::from_secs(5),
        // A few workers give the job master their copy of the package (direct delivery: it
        // hands it to pods made later; a job master that keeps none says so at once).
        offer_package: worker_id < OFFERING_WORKERS,
        spec,
        host,
    })
}

/// Runs the agent until its program ends, then (if it ended well) waits for `stop`.
/// Returns the container's exit code: 0 completed, the program's own exit code when it failed
/// (at least 1; 1 when the agent itself failed), so that the pod's status — the kubelet's
/// `lastState.terminated.exitCode`, a crash loop's reason — names it; 143 stopped.
pub async fn run_agent<F: Future<Output = ()> + Send>(stop: impl Fn() -> F) -> i32 {
    let cfg = match config_from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("t2-agent: {e}");
            return 1;
        }
    };
    let span = tracing::info_span!("agent", job_id = %cfg.job_id, worker_id = cfg.worker_id, restart_count = cfg.restart_count);
    let worker = cfg.worker_id;
    // The job master is a StatefulSet pod behind a stable Service address that restores its
    // state when restarted: wait for it there rather than restarting every worker container
    // (fault-tolerant jobs find it through ZooKeeper instead).
    let exit = t2_worker::agent::run_with(cfg, JobMasterFinder::FixedAddress, stop())
        .instrument(span)
        .await;
    match exit {
        Ok(AgentExit::Completed | AgentExit::JobEnded { .. }) => {
            info!(
                worker_id = worker,
                "worker done; waiting for the job to remove its pod"
            );
            if tokio::time::timeout(LINGER, stop()).await.is_err() {
                eprintln!("t2-agent: worker {worker} finished {}h ago and its pod is still there; exiting", LINGER.as_secs() / 3600);
            }
            0
        }
        Ok(AgentExit::Failed { reason, code }) => {
            eprintln!("t2-agent: {reason}");
            code.clamp(1, 255)
        }
        Ok(AgentExit::Killed) => 143,
        Err(e) => {
            eprintln!("t2-agent: worker {worker}: {e}");
            1
        }
    }
}
