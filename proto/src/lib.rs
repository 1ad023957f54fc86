//! Generated gRPC types and services of the t2 protocols.
//!
//! # Layout
//! - `proto/jobmaster.proto`: the job master service (`JobMaster`): the workers' bidirectional
//!   stream (registration, heartbeats, worker lists, barriers, messages, events) and the control
//!   calls (status, kill, scale).
//! - `proto/agent.proto`: the agent service (`Agent`) agents of an MPI job offer each other:
//!   running mpirun's daemons on a worker (`t2 worker rsh`).
//! - [`jobmaster`] (re-exported at the crate root) and [`agent`]: the code tonic and prost
//!   generate from them at build time (`build.rs`, with `protoc` from `protoc-bin-vendored`).
//! - [`PROTOCOL_VERSION`]: what a worker presents at registration.
//! - [`table`]: the worker list on the wire: a compact, compressed table encoded once, shared
//!   by every stream, in pieces of at most 1 MiB.
//! - [`limits`]: message-size limits, set from the number of workers where a message grows.

pub mod limits;
pub mod table;

/// The protocol version a worker must present at registration; bumped on incompatible changes.
/// Version 2 added `WorkerInfo.agent_port` and the agent service; version 3 sends the worker
/// list with step-encoded columns, zlib-compressed ([`table`]).
pub const PROTOCOL_VERSION: u32 = 3;

/// Generated code for package `t2.jobmaster.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod jobmaster {
    tonic::include_proto!("t2.jobmaster.v1");
}

/// Generated code for package `t2.agent.v1`: what an agent serves the other agents of its job.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod agent {
    tonic::include_proto!("t2.agent.v1");
}

pub use jobmaster::*;
