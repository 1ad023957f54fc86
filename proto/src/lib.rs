//! Generated gRPC types and services of the t2 job master protocol.
//!
//! # Layout
//! - `proto/jobmaster.proto`: the one service (`JobMaster`): the workers' bidirectional stream
//!   (registration, heartbeats, worker lists, barriers, messages, events) and the control calls
//!   (status, kill, scale).
//! - [`jobmaster`]: the code tonic and prost generate from it at build time (`build.rs`, with
//!   `protoc` from `protoc-bin-vendored`), re-exported at the crate root.
//! - [`PROTOCOL_VERSION`]: what a worker presents at registration.
//! - [`table`]: the worker list on the wire: a compact table encoded once, shared by every
//!   stream, in pieces of at most 1 MiB.
//! - [`limits`]: message-size limits, set from the number of workers where a message grows.

pub mod limits;
pub mod table;

/// The protocol version a worker must present at registration; bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Generated code for package `t2.jobmaster.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod jobmaster {
    tonic::include_proto!("t2.jobmaster.v1");
}

pub use jobmaster::*;
