//! The `t2 pod …` roles that run inside a job's pods, and the in-cluster job master's pieces.
//!
//! # Layout
//! - [`env`]: reading the pod's environment (DESIGN §5 object model, `manifests::pod`).
//! - [`init`]: `t2 pod init` — the init container: download the package from the uploader,
//!   or wait for the launcher to stream it in; fail the pod with one clear line otherwise.
//! - [`from_jobmaster`]: the init container fetching the job master's copy of the package
//!   (pods made after the submit).
//! - [`receive`]: `t2 pod receive` — what the launcher's exec stream runs: take exactly the
//!   package's bytes from stdin, verify the sha256, put it in place.
//! - [`agent`]: `t2 pod agent` — a worker agent whose ID comes from the pod ordinal and
//!   container index, and whose restart count survives container restarts.
//! - [`jobmaster`]: `t2 pod jobmaster` — the job master, which records the job's state in its
//!   root ConfigMap ([`store`]) and deletes the root at the end ([`cluster`]); [`scaler`]
//!   carries out `t2 scale` requests, [`nodes`] gives workers their rack and datacenter;
//!   [`finished`] keeps a finished job for `kubernetes.ttl_after_finished`, and [`health`]
//!   answers the kubelet's gRPC probes; [`lease`] keeps the job's lease on its package on
//!   the uploader while the job runs and drops it at the end.

pub mod agent;
pub mod cluster;
pub mod env;
pub mod finished;
pub mod from_jobmaster;
pub mod health;
pub mod init;
pub mod jobmaster;
pub mod lease;
pub mod nodes;
pub mod receive;
pub mod scaler;
pub mod store;
