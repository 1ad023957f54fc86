//! Names of the environment variables the agent gives a user program (DESIGN §4).

/// The job ID.
pub const JOB_ID: &str = "T2_JOB_ID";
/// This worker's ID, `0..T2_NUM_WORKERS`.
pub const WORKER_ID: &str = "T2_WORKER_ID";
/// Number of workers in the job.
pub const NUM_WORKERS: &str = "T2_NUM_WORKERS";
/// How many times this worker has been restarted.
pub const RESTART_COUNT: &str = "T2_RESTART_COUNT";
/// A free TCP port reserved for this worker's own traffic.
pub const WORKER_PORT: &str = "T2_WORKER_PORT";
/// This worker's host address as the other workers see it.
pub const WORKER_HOST: &str = "T2_WORKER_HOST";
/// Address of the job master.
pub const JOB_MASTER: &str = "T2_JOB_MASTER";
/// JSON file with every worker (written once all have joined).
pub const WORKERS_FILE: &str = "T2_WORKERS_FILE";
/// Unix socket of the agent (for `t2 worker …` and [`crate::WorkerContext`]).
pub const AGENT_SOCKET: &str = "T2_AGENT_SOCKET";
/// The job's free-form `config` map, as JSON.
pub const CONFIG: &str = "T2_CONFIG";
/// The worker's working directory (the unpacked package).
pub const WORK_DIR: &str = "T2_WORK_DIR";
