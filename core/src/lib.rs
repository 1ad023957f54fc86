//! Shared domain of t2: what a job is and how it is named, configured, packaged and stored.
//!
//! # Layout
//! - [`names`]: job-name sanitising and job IDs (DESIGN §6).
//! - [`spec`]: the job spec (`job.yaml`), layered configuration and validation.
//! - [`package`]: building deterministic job packages and unpacking untrusted ones safely.
//! - [`topology`]: racks and datacenters from the job spec's lists; the local cluster's simulated nodes.
//! - [`jobdir`]: where a job lives under `$T2_HOME` and its on-disk record.
//! - `zk` (feature `zookeeper`): ZooKeeper znodes and sessions of fault-tolerant jobs.
//! - [`text`]: user text made safe for one-line messages.
//! - [`calendar`]: dates from day counts (RFC 3339 timestamps).
//! - [`duration`]: human durations (`500ms`, `3s`) in YAML and on the command line.
//! - [`secret`]: owner-only files for tokens, and constant-time token comparison.
//! - `tls` (feature `tls`): the per-job certificate, rustls configurations, a TLS accept loop.
//! - `grpc_tls` (feature `grpc-tls`): TLS connections for tonic's servers.

pub mod calendar;
pub mod duration;
#[cfg(feature = "grpc-tls")]
pub mod grpc_tls;
pub mod jobdir;
pub mod names;
pub mod package;
pub mod secret;
pub mod spec;
pub mod text;
#[cfg(feature = "tls")]
pub mod tls;
pub mod topology;
#[cfg(feature = "zookeeper")]
pub mod zk;
