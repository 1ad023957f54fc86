//! The t2 worker side.
//!
//! User programs use [`WorkerContext`] (or the `t2 worker …` commands, or plain environment
//! variables) to learn who they are, find the other workers, wait on barriers and hear about
//! faults. The worker agent (feature `agent`) is what sits between a user program and the job
//! master: it unpacks the package, registers, heartbeats, runs the program and reports its end.
//!
//! # Layout
//! - [`context`]: `WorkerContext`, the Rust API for user programs.
//! - [`local_api`]: the JSON-lines protocol spoken over the agent's Unix socket.
//! - [`topology`]: the workers grouped by datacenter, rack and node.
//! - [`env`]: names of the environment variables a user program receives.
//! - [`agent`] (feature `agent`): the worker agent.

#[cfg(feature = "agent")]
pub mod agent;
pub mod context;
pub mod env;
pub mod local_api;
pub mod topology;

pub use context::{FaultEvent, WorkerAddr, WorkerContext, WorkerError};
pub use topology::Topology;
