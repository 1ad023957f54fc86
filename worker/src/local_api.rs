//! The agent's local API: one JSON object per line over a Unix socket. A client writes a
//! [`Request`] and reads one [`Response`]; `events` instead streams [`EventLine`]s until closed;
//! `exec` turns the connection into a remote-shell session: the client sends [`ExecFrameIn`]s
//! and reads [`ExecFrameOut`]s until `exit` or `error`.

use serde::{Deserialize, Serialize};

/// A request from a user program (or `t2 worker …`) to its agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Who am I (with the job's current number of workers).
    Info,
    /// The worker list; with `wait`, only once all workers have joined.
    Workers {
        /// Wait until all workers have joined.
        wait: bool,
    },
    /// Wait on a barrier.
    Barrier {
        /// `default` or `init`.
        #[serde(default)]
        init: bool,
        /// Timeout in milliseconds; 0 means the job's default.
        #[serde(default)]
        timeout_ms: u64,
    },
    /// Send a message to the other workers, relayed by the job master.
    Send {
        /// The message.
        message: String,
    },
    /// Stream fault events and messages until the connection closes.
    Events,
    /// Run `command` (with `/bin/sh -c`) on the worker whose host is `host`, through that
    /// worker's agent (what `t2 worker rsh` does for mpirun). Closing the connection before
    /// the `exit` frame ends the command.
    Exec {
        /// The target worker's host, as in the worker list (and the MPI hostfile).
        host: String,
        /// The command line, as a remote shell gets it.
        command: String,
    },
}

/// The most bytes of stdin or output one exec frame carries (before hex encoding); longer
/// output is split into frames of this size.
pub const EXEC_CHUNK: usize = 32 * 1024;

/// The longest exec frame line either side reads (a full [`EXEC_CHUNK`] is twice that as hex,
/// plus the JSON around it); a longer one ends the session with an `error` frame.
pub const MAX_EXEC_FRAME: usize = 4 * EXEC_CHUNK;

/// What an `exec` client sends after its request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ExecFrameIn {
    /// Bytes for the command's stdin, hex-encoded.
    Stdin {
        /// The bytes, as hex.
        hex: String,
    },
    /// The client's stdin ended.
    StdinClosed,
    /// Deliver a signal (Linux number) to the command's process group.
    Signal {
        /// The signal number.
        signal: i32,
    },
}

/// What the agent sends an `exec` client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ExecFrameOut {
    /// The command started on `worker_id` as process `pid` there.
    Started {
        /// The target worker.
        worker_id: u32,
        /// The command's process ID on it.
        pid: u32,
    },
    /// Output on the command's stdout, hex-encoded.
    Stdout {
        /// The bytes, as hex.
        hex: String,
    },
    /// Output on the command's stderr, hex-encoded.
    Stderr {
        /// The bytes, as hex.
        hex: String,
    },
    /// The command ended (the last frame).
    Exit {
        /// Its exit code (128 + the signal when killed by one).
        code: i32,
        /// A readable description.
        description: String,
    },
    /// The command could not be run or the session broke (the last frame).
    Error {
        /// Why, as one line.
        message: String,
    },
}

/// A worker as the local API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerEntry {
    /// Worker ID.
    pub id: u32,
    /// Host address.
    pub host: String,
    /// Worker port.
    pub port: u32,
    /// Node IP.
    pub node: String,
    /// Rack name.
    pub rack: String,
    /// Datacenter name.
    pub datacenter: String,
    /// Restarts so far.
    pub restart_count: u32,
    /// Its state as the job master knows it: `PENDING`, `STARTED`, `RESTARTED`, `COMPLETED`,
    /// `FAILED`, `KILLED` or `FULLY_FAILED`. A program that needs something from a worker that
    /// has `COMPLETED` (and so is gone) must do without it, e.g. compute it itself.
    #[serde(default)]
    pub state: String,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Response {
    /// True on success.
    pub ok: bool,
    /// A readable error when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Barrier result name: SUCCESS, TIMED_OUT or JOB_FAULTY.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Workers, for `workers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<WorkerEntry>>,
    /// Identity, for `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Identity>,
}

/// Who a worker is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Job ID.
    pub job_id: String,
    /// Worker ID.
    pub worker_id: u32,
    /// Number of workers.
    pub num_workers: u32,
    /// Restarts so far.
    pub restart_count: u32,
}

/// One streamed event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventLine {
    /// Another worker failed.
    WorkerFailed {
        /// Which.
        worker_id: u32,
        /// Why.
        reason: String,
    },
    /// Another worker came back.
    WorkerRestarted {
        /// Which.
        worker_id: u32,
        /// Its restart count.
        restart_count: u32,
    },
    /// All workers have joined (again).
    AllJoined {
        /// How many.
        num_workers: u32,
    },
    /// A message from another worker.
    Message {
        /// The text.
        message: String,
    },
    /// The job master was restarted and this worker reconnected to it.
    JobMasterRestarted {},
    /// The job was scaled. On a scale-down, workers with IDs `>= num_workers` are stopped; on
    /// a scale-up, new workers join and an `all_joined` with the new count follows.
    JobScaled {
        /// The new number of workers.
        num_workers: u32,
        /// The number before.
        previous: u32,
    },
    /// The job ended.
    JobEnded {
        /// Final state.
        state: String,
        /// Why.
        reason: String,
    },
}
