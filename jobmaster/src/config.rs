//! What the job master needs to know about its job.

use std::time::Duration;

use t2_core::spec::JobSpec;
use t2_core::topology::TopologySpec;

use crate::reporters::DashboardConfig;

/// Configuration of one job master.
#[derive(Debug, Clone)]
pub struct JobMasterConfig {
    /// The job ID workers must present.
    pub job_id: String,
    /// The secret workers and clients must present.
    pub token: String,
    /// Number of workers in the job.
    pub num_workers: u32,
    /// Restarts allowed per worker before the job fails.
    pub max_restarts: u32,
    /// Default DEFAULT-barrier timeout when a request gives none.
    pub barrier_timeout: Duration,
    /// Default INIT-barrier timeout when a request gives none.
    pub init_barrier_timeout: Duration,
    /// Deadline for all workers to join, and for a failed worker to rejoin.
    pub join_timeout: Duration,
    /// How often heartbeats are sent, both ways.
    pub heartbeat_interval: Duration,
    /// Silence after which a worker is declared lost.
    pub heartbeat_timeout: Duration,
    /// Grace after the job ends before the server stops, so final messages reach everyone.
    pub end_grace: Duration,
    /// Longest the cluster may take to scale the workers before the scale request fails.
    pub scale_timeout: Duration,
    /// Test hook: hold the final job status back from watchers this long (zero: never). The
    /// local job master takes it from `T2_TEST_DELAY_FINAL_STATUS_MS`.
    pub final_status_delay: Duration,
    /// The dashboard to report to, if any.
    pub dashboard: Option<DashboardConfig>,
    /// The job ends when worker 0 completes (an MPI job: worker 0 runs `mpirun`, the other
    /// workers only host its daemons and never complete on their own).
    pub ends_with_worker_zero: bool,
    /// The racks and datacenters lists, when the job takes its topology from them (the
    /// cluster is then not asked to describe workers' nodes).
    pub topology: Option<TopologySpec>,
    /// Where the job master keeps its copy of the package (served by `PackageSource`; see
    /// [`crate::package`]), if it keeps one.
    pub package: Option<std::path::PathBuf>,
    /// The package a copy offered by a worker must be (sha256, bytes); `None`: offers are
    /// refused.
    pub package_expected: Option<(String, u64)>,
    /// How long the cluster waits before it restarts a failed worker; a failed worker gets
    /// this on top of `join_timeout` to rejoin.
    pub restart_backoff: RestartBackoff,
    /// Serve TLS with this configuration (the job's certificate, see `t2_core::tls`);
    /// `None` serves plaintext gRPC.
    pub tls: Option<std::sync::Arc<t2_core::tls::rustls::ServerConfig>>,
}

/// How long a cluster waits before restarting a failed worker: `first` after the first
/// failure, doubled after each further one, at most `max` (the kubelet's crash-loop
/// back-off: 10 s … 5 min). Zero locally, where the supervisor restarts at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestartBackoff {
    /// The wait after the first failure.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl RestartBackoff {
    /// The wait before the restart that follows a failure after `restarts` restarts.
    pub fn after(&self, restarts: u32) -> Duration {
        self.first
            .saturating_mul(1u32 << restarts.min(16))
            .min(self.max)
    }
}

/// The most heartbeats a second one job master asks of its workers. Each costs it about 20 µs
/// of CPU (a gRPC frame in, a stream task woken), so 4 000 a second keep heartbeats under a
/// tenth of a core however large the job (BENCHMARKS.md, "Job master at scale").
pub const HEARTBEATS_PER_SECOND: u32 = 4_000;

/// The heartbeat interval and timeout a job of `workers` workers uses: the spec's, stretched
/// by one factor when `workers` heartbeats every `interval` would pass
/// [`HEARTBEATS_PER_SECOND`] (250 ms / 3 s up to 1 000 workers; 2.5 s / 30 s at 10 000), as
/// Kubernetes stretches node status updates in large clusters.
pub fn heartbeat_budget(
    workers: u32,
    interval: Duration,
    timeout: Duration,
) -> (Duration, Duration) {
    budget_at(HEARTBEATS_PER_SECOND, workers, interval, timeout)
}

/// The most heartbeats a second a local cluster asks of its workers per core of the machine.
/// There the job master, every agent and every program share the same cores: each heartbeat
/// costs two wake-ups (the agent's and the job master's) and competes with the programs, and
/// while a thousand agents start at once the job master gets a thousandth of the CPU. 1 024
/// workers on 2 cores send one every 2 s, with a 24 s timeout; 8 workers keep 250 ms / 3 s.
pub const LOCAL_HEARTBEATS_PER_CORE: u32 = 250;

/// [`heartbeat_budget`] for a job master whose `workers` all run on its own machine, which has
/// `cores` cores (a local cluster): at most [`LOCAL_HEARTBEATS_PER_CORE`] a second per core.
pub fn shared_machine_budget(
    workers: u32,
    cores: u32,
    interval: Duration,
    timeout: Duration,
) -> (Duration, Duration) {
    let rate = LOCAL_HEARTBEATS_PER_CORE
        .saturating_mul(cores.max(1))
        .min(HEARTBEATS_PER_SECOND);
    budget_at(rate, workers, interval, timeout)
}

/// `interval` and `timeout` stretched by one factor so that `workers` heartbeats every
/// interval stay within `rate` a second.
fn budget_at(
    rate: u32,
    workers: u32,
    interval: Duration,
    timeout: Duration,
) -> (Duration, Duration) {
    let floor = Duration::from_secs(1) * workers / rate.max(1);
    if interval.is_zero() || floor <= interval {
        return (interval, timeout);
    }
    let factor = floor.as_secs_f64() / interval.as_secs_f64();
    (floor, timeout.mul_f64(factor))
}

impl JobMasterConfig {
    /// The same configuration for a job master that shares its machine's `cores` cores with
    /// all of its workers and their programs (a local cluster): heartbeats within
    /// [`shared_machine_budget`].
    pub fn sharing_machine(mut self, cores: u32) -> Self {
        let (interval, timeout) = shared_machine_budget(
            self.num_workers,
            cores,
            self.heartbeat_interval,
            self.heartbeat_timeout,
        );
        if interval != self.heartbeat_interval {
            tracing::info!(
                job_id = %self.job_id,
                workers = self.num_workers,
                cores,
                "heartbeats every {} with a timeout of {} (at most {LOCAL_HEARTBEATS_PER_CORE} a second per core: every worker runs on this machine)",
                t2_core::duration::format_duration(interval),
                t2_core::duration::format_duration(timeout)
            );
        }
        self.heartbeat_interval = interval;
        self.heartbeat_timeout = timeout;
        self
    }

    /// Configuration for job `job_id` from its merged spec (heartbeats within the job
    /// master's budget, [`heartbeat_budget`]).
    pub fn from_spec(job_id: &str, token: &str, spec: &JobSpec) -> Self {
        let (heartbeat_interval, heartbeat_timeout) = heartbeat_budget(
            spec.workers,
            spec.heartbeat_interval,
            spec.heartbeat_timeout,
        );
        if heartbeat_interval != spec.heartbeat_interval {
            tracing::info!(
                job_id,
                workers = spec.workers,
                "heartbeats every {} with a timeout of {} (at most {HEARTBEATS_PER_SECOND} a second for the job master)",
                t2_core::duration::format_duration(heartbeat_interval),
                t2_core::duration::format_duration(heartbeat_timeout)
            );
        }
        Self {
            job_id: job_id.to_string(),
            token: token.to_string(),
            num_workers: spec.workers,
            max_restarts: spec.max_restarts,
            barrier_timeout: spec.barrier_timeout,
            init_barrier_timeout: spec.init_barrier_timeout,
            join_timeout: spec.join_timeout,
            heartbeat_interval,
            heartbeat_timeout,
            end_grace: Duration::from_millis(20),
            scale_timeout: Duration::from_secs(60),
            final_status_delay: Duration::ZERO,
            dashboard: dashboard_config(spec),
            ends_with_worker_zero: spec.mpi.enabled,
            topology: spec.topology.from_config().then(|| spec.topology.clone()),
            package: None,
            package_expected: None,
            restart_backoff: RestartBackoff::default(),
            tls: None,
        }
    }

    /// A configuration with test-friendly defaults.
    pub fn new(job_id: &str, token: &str, num_workers: u32) -> Self {
        Self {
            job_id: job_id.to_string(),
            token: token.to_string(),
            num_workers,
            max_restarts: 3,
            barrier_timeout: Duration::from_secs(30),
            init_barrier_timeout: Duration::from_secs(600),
            join_timeout: Duration::from_secs(60),
            heartbeat_interval: Duration::from_millis(250),
            heartbeat_timeout: Duration::from_secs(3),
            end_grace: Duration::from_millis(20),
            scale_timeout: Duration::from_secs(60),
            final_status_delay: Duration::ZERO,
            dashboard: None,
            ends_with_worker_zero: false,
            topology: None,
            package: None,
            package_expected: None,
            restart_backoff: RestartBackoff::default(),
            tls: None,
        }
    }
}

/// What the job master tells the dashboard of `spec`, when the spec names one. The cluster is
/// `local` here; a cluster's job master sets its own name and namespace.
pub fn dashboard_config(spec: &JobSpec) -> Option<DashboardConfig> {
    if spec.dashboard.is_empty() {
        return None;
    }
    let mut summary = std::collections::BTreeMap::new();
    summary.insert("command".to_string(), spec.command.join(" "));
    summary.insert(
        "workers_per_pod".to_string(),
        spec.workers_per_pod.to_string(),
    );
    summary.insert("cpu".to_string(), spec.resources.cpu.to_string());
    summary.insert(
        "memory_mb".to_string(),
        spec.resources.memory_mb.to_string(),
    );
    summary.insert("max_restarts".to_string(), spec.max_restarts.to_string());
    summary.insert(
        "fault_tolerant".to_string(),
        spec.fault_tolerant.to_string(),
    );
    Some(DashboardConfig {
        url: spec.dashboard.clone(),
        token: spec.dashboard_token.clone(),
        ca_pem: spec.dashboard_ca.clone(),
        name: spec.name.clone(),
        cluster: "local".into(),
        namespace: String::new(),
        user: std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata("/proc/self")
                    .map(|m| format!("uid {}", m.uid()))
                    .unwrap_or_default()
            }),
        spec: summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_backoff_doubles_up_to_its_max() {
        let b = RestartBackoff {
            first: Duration::from_secs(10),
            max: Duration::from_secs(300),
        };
        let waits: Vec<u64> = (0..7).map(|r| b.after(r).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.after(u32::MAX), Duration::from_secs(300));
        assert_eq!(RestartBackoff::default().after(5), Duration::ZERO);
    }

    #[test]
    fn heartbeats_stretch_past_the_budget_and_keep_their_ratio() {
        let (i, t) = (Duration::from_millis(250), Duration::from_secs(3));
        assert_eq!(heartbeat_budget(64, i, t), (i, t));
        assert_eq!(heartbeat_budget(1_000, i, t), (i, t));
        assert_eq!(
            heartbeat_budget(10_000, i, t),
            (Duration::from_millis(2_500), Duration::from_secs(30))
        );
        // A slower spec than the budget needs is kept as it is.
        let slow = (Duration::from_secs(5), Duration::from_secs(60));
        assert_eq!(heartbeat_budget(10_000, slow.0, slow.1), slow);
    }

    #[test]
    fn a_shared_machine_stretches_heartbeats_by_its_cores() {
        let (i, t) = (Duration::from_millis(250), Duration::from_secs(3));
        assert_eq!(shared_machine_budget(8, 2, i, t), (i, t));
        assert_eq!(shared_machine_budget(64, 2, i, t), (i, t));
        assert_eq!(
            shared_machine_budget(1_024, 2, i, t),
            (Duration::from_millis(2_048), Duration::from_millis(24_576))
        );
        // Many cores: never more than one job master's own budget.
        assert_eq!(
            shared_machine_budget(10_000, 64, i, t),
            heartbeat_budget(10_000, i, t)
        );
        // No core count (0) counts as one.
        assert_eq!(
            shared_machine_budget(250, 0, i, t),
            (Duration::from_secs(1), Duration::from_secs(12))
        );
    }
}
