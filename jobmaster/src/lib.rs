//! The t2 job master: one per job. It accepts worker agents over gRPC, tracks their state and
//! liveness (heartbeats both ways), answers worker-list requests, runs barriers, pushes fault
//! events, decides the job's state and reports it to watchers.
//!
//! # Layout
//! - [`config`]: what the job master needs to know about its job.
//! - [`server`]: `run(listener, config, shutdown)`, the entry point (binds nothing itself);
//!   `run_with` adds a state store and a cluster.
//! - [`service`]: the tonic service: turns streams into events for the master.
//! - [`attach`]: the workers' stream on the wire: shared buffers (the worker list) sent as
//!   they are, not copied into every stream.
//! - [`master`]: the single task that owns all job state and handles every event in order.
//!   Its work is split over private modules that each add an `impl Master` block:
//!   - `register`: registration, restarts and reconnects, and what follows once all joined.
//!   - `messages`: worker lists, barriers and relayed messages asked for by workers.
//!   - `failures`: workers completing, failing, being killed or lost.
//!   - `tick`: silent workers, expired barriers, missed join and rejoin deadlines.
//!   - `recover`: rebuilding the job from the store after a job master restart.
//!   - `status`: the job's status and its watchers.
//!   - `topology`: workers' racks and datacenters from the job's lists; the worker list order.
//! - [`registry`]: the workers, their states, restart counts and connections.
//! - [`barrier`]: DEFAULT and INIT barriers with timeouts.
//! - [`scale`]: changing the number of workers of a running job.
//! - [`package`]: the job master's copy of the package, served to pods made later.
//! - [`cluster`]: what the job master needs from its cluster (scale workers, end the job).
//! - [`reporters`]: where the job is reported (the dashboard), through a bounded queue;
//!   `report` is the master's side of it.
//! - [`store`]: where durable job state is written (in memory here; ZooKeeper later).
//! - [`zkstore`]: the ZooKeeper store of fault-tolerant jobs.
//! - [`error`]: the crate's errors.

pub mod attach;
pub mod barrier;
pub mod cluster;
pub mod config;
pub mod error;
mod failures;
pub mod master;
pub mod messages;
pub mod package;
mod recover;
mod register;
pub mod registry;
mod report;
pub mod reporters;
pub mod scale;
pub mod server;
pub mod service;
mod status;
pub mod store;
mod tick;
mod topology;
pub mod zkstore;

pub use config::JobMasterConfig;
pub use error::JobMasterError;
pub use server::{run, run_with, JobOutcome};
