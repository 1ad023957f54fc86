//! What the job master needs to know about its job.

use std::time::Duration;

use t2_core::spec::JobSpec;

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
}

impl JobMasterConfig {
    /// Configuration for job `job_id` from its merged spec.
    pub fn from_spec(job_id: &str, token: &str, spec: &JobSpec) -> Self {
        Self {
            job_id: job_id.to_string(),
            token: token.to_string(),
            num_workers: spec.workers,
            max_restarts: spec.max_restarts,
            barrier_timeout: spec.barrier_timeout,
            init_barrier_timeout: spec.init_barrier_timeout,
            join_timeout: spec.join_timeout,
            heartbeat_interval: spec.heartbeat_interval,
            heartbeat_timeout: spec.heartbeat_timeout,
            end_grace: Duration::from_millis(20),
            scale_timeout: Duration::from_secs(60),
            final_status_delay: Duration::ZERO,
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
        }
    }
}
