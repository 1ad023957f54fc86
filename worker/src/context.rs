//! `WorkerContext`: the Rust API for user programs. It reads the agent's environment and talks
//! to the agent over its Unix socket; it needs no async runtime and no gRPC.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::env;
use crate::local_api::{EventLine, Request, Response, WorkerEntry};
use crate::topology::Topology;

/// Errors of the worker API.
#[derive(Debug, Error)]
pub enum WorkerError {
    /// Not started by a t2 agent.
    #[error("{0} is not set: is this program running under a t2 worker agent?")]
    NotUnderAgent(&'static str),
    /// An environment variable with a bad value.
    #[error("{name}={value} is not valid")]
    BadEnv {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// The agent could not be reached.
    #[error("cannot reach the t2 agent at {path}: {source}")]
    Agent {
        /// The socket.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The agent answered with an error.
    #[error("{0}")]
    Refused(String),
    /// A barrier timed out.
    #[error("barrier timed out: {0}")]
    BarrierTimedOut(String),
    /// A worker failed while this one waited on a barrier.
    #[error("job is faulty: {0}")]
    JobFaulty(String),
}

/// Another worker's address and placement.
pub type WorkerAddr = WorkerEntry;

/// A fault or message event.
pub type FaultEvent = EventLine;

/// What a user program knows about itself and its job.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    job_id: String,
    worker_id: u32,
    num_workers: u32,
    restart_count: u32,
    port: u16,
    host: String,
    socket: PathBuf,
    config: serde_json::Value,
}

fn var(name: &'static str) -> Result<String, WorkerError> {
    std::env::var(name).map_err(|_| WorkerError::NotUnderAgent(name))
}

fn num<T: std::str::FromStr>(name: &'static str) -> Result<T, WorkerError> {
    let value = var(name)?;
    value
        .parse()
        .map_err(|_| WorkerError::BadEnv { name, value })
}

impl WorkerContext {
    /// Reads the context from the environment the agent set.
    pub fn from_env() -> Result<Self, WorkerError> {
        let config = match std::env::var(env::CONFIG) {
            Ok(text) => serde_json::from_str(&text).map_err(|_| WorkerError::BadEnv {
                name: env::CONFIG,
                value: text,
            })?,
            Err(_) => serde_json::Value::Object(Default::default()),
        };
        Ok(Self {
            job_id: var(env::JOB_ID)?,
            worker_id: num(env::WORKER_ID)?,
            num_workers: num(env::NUM_WORKERS)?,
            restart_count: num(env::RESTART_COUNT)?,
            port: num(env::WORKER_PORT)?,
            host: var(env::WORKER_HOST).unwrap_or_else(|_| "127.0.0.1".into()),
            socket: PathBuf::from(var(env::AGENT_SOCKET)?),
            config,
        })
    }

    /// The job ID.
    pub fn job_id(&self) -> &str {
        &self.job_id
    }
    /// This worker's ID.
    pub fn worker_id(&self) -> u32 {
        self.worker_id
    }
    /// Number of workers when this program started (`T2_NUM_WORKERS`). A job can be scaled
    /// while it runs: use [`current_num_workers`](Self::current_num_workers) for the count now,
    /// or watch [`events`](Self::events) for `JobScaled`.
    pub fn num_workers(&self) -> u32 {
        self.num_workers
    }

    /// The job's number of workers now, as the agent knows it (it follows scaling). Asks the
    /// agent each time.
    pub fn current_num_workers(&self) -> Result<u32, WorkerError> {
        let resp = self.call(&Request::Info, Some(Duration::from_secs(10)))?;
        resp.info
            .map(|i| i.num_workers)
            .ok_or_else(|| WorkerError::Refused("the agent's answer carries no identity".into()))
    }
    /// Restarts of this worker so far (0 on the first run).
    pub fn restart_count(&self) -> u32 {
        self.restart_count
    }
    /// The TCP port reserved for this worker.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// This worker's host address.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The job's `config` map.
    pub fn config(&self) -> &serde_json::Value {
        &self.config
    }

    fn call(&self, req: &Request, read_timeout: Option<Duration>) -> Result<Response, WorkerError> {
        let agent = |source| WorkerError::Agent {
            path: self.socket.display().to_string(),
            source,
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(agent)?;
        stream.set_read_timeout(read_timeout).map_err(agent)?;
        let mut line = serde_json::to_string(req)
            .map_err(|e| WorkerError::Refused(format!("cannot encode request: {e}")))?;
        line.push('\n');
        stream.write_all(line.as_bytes()).map_err(agent)?;
        let mut reply = String::new();
        BufReader::new(stream)
            .read_line(&mut reply)
            .map_err(agent)?;
        let resp: Response = serde_json::from_str(&reply)
            .map_err(|e| WorkerError::Refused(format!("bad answer from the agent: {e}")))?;
        if resp.ok {
            Ok(resp)
        } else {
            Err(WorkerError::Refused(
                resp.error.unwrap_or_else(|| "agent refused".into()),
            ))
        }
    }

    /// Every worker, once all have joined (waits).
    pub fn all_workers(&self) -> Result<Vec<WorkerAddr>, WorkerError> {
        let resp = self.call(&Request::Workers { wait: true }, None)?;
        Ok(resp.workers.unwrap_or_default())
    }

    /// The workers joined so far (does not wait).
    pub fn joined_workers(&self) -> Result<Vec<WorkerAddr>, WorkerError> {
        let resp = self.call(&Request::Workers { wait: false }, None)?;
        Ok(resp.workers.unwrap_or_default())
    }

    /// Every worker grouped by datacenter, rack and node, in worker-list order (waits for
    /// all to join).
    pub fn topology(&self) -> Result<Topology, WorkerError> {
        Ok(Topology::from_workers(&self.all_workers()?))
    }

    /// This worker's entry in the worker list (node, rack, datacenter).
    pub fn node_info(&self) -> Result<WorkerAddr, WorkerError> {
        self.all_workers()?
            .into_iter()
            .find(|w| w.id == self.worker_id)
            .ok_or_else(|| {
                WorkerError::Refused(format!("worker {} not in the list", self.worker_id))
            })
    }

    fn barrier_call(&self, init: bool, timeout: Duration) -> Result<(), WorkerError> {
        let timeout_ms = timeout.as_millis() as u64;
        let resp = match self.call(&Request::Barrier { init, timeout_ms }, None) {
            Ok(r) => r,
            Err(WorkerError::Refused(msg)) if msg.starts_with("TIMED_OUT") => {
                return Err(WorkerError::BarrierTimedOut(msg))
            }
            Err(WorkerError::Refused(msg)) if msg.starts_with("JOB_FAULTY") => {
                return Err(WorkerError::JobFaulty(msg))
            }
            Err(e) => return Err(e),
        };
        match resp.result.as_deref() {
            Some("SUCCESS") => Ok(()),
            other => Err(WorkerError::Refused(format!(
                "unexpected barrier result {other:?}"
            ))),
        }
    }

    /// Waits until every worker reaches the barrier (the job's default timeout).
    pub fn barrier(&self) -> Result<(), WorkerError> {
        self.barrier_call(false, Duration::ZERO)
    }

    /// Waits on the barrier with an explicit timeout.
    pub fn barrier_timeout(&self, timeout: Duration) -> Result<(), WorkerError> {
        self.barrier_call(false, timeout)
    }

    /// Waits on the init barrier (where restarted workers meet the others again).
    pub fn init_barrier(&self) -> Result<(), WorkerError> {
        self.barrier_call(true, Duration::ZERO)
    }

    /// Sends a message to every other worker.
    pub fn send_message(&self, message: &str) -> Result<(), WorkerError> {
        self.call(
            &Request::Send {
                message: message.into(),
            },
            None,
        )
        .map(|_| ())
    }

    /// Fault events and messages, as they come; iterate on another thread if you also work.
    pub fn events(&self) -> Result<impl Iterator<Item = FaultEvent>, WorkerError> {
        let agent = |source| WorkerError::Agent {
            path: self.socket.display().to_string(),
            source,
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(agent)?;
        let mut line = serde_json::to_string(&Request::Events)
            .map_err(|e| WorkerError::Refused(e.to_string()))?;
        line.push('\n');
        stream.write_all(line.as_bytes()).map_err(agent)?;
        Ok(BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<FaultEvent>(&l).ok()))
    }
}
