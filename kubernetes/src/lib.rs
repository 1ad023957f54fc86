//! t2's `kubernetes` cluster (DESIGN §5): a job becomes a root ConfigMap owning a token Secret,
//! Services, a job master StatefulSet and a worker StatefulSet; the launcher (crate
//! `t2-launcher`, which only wires this crate to its command line) and the in-cluster job
//! master talk to the API server through a [`kube::Client`] they are given, so tests drive
//! them with a mock service. Depends on `t2-core`, `t2-proto`, `t2-jobmaster` and `t2-worker`.
//!
//! # Layout
//! - [`settings`] / [`checks`] / [`image`]: the `kubernetes` section of the job spec, checked;
//!   [`claims`]: its existing volumes, checked against their claims at submit and scale.
//! - [`names`]: object names from the job ID. - [`manifests`]: the objects, as pure functions.
//! - [`client`]: kubeconfig, context, namespace, in-cluster config → a [`Kube`].
//! - [`dry_run`]: `--dry-run=server`, every object judged by the API server, none stored.
//! - [`disruption`]: whether a worker's pod was evicted or otherwise disrupted.
//! - [`create`]: root first, rollback on failure. - [`deliver`]: direct and uploader delivery.
//! - [`podstate`] / [`wait`]: pods while the job starts, and the fail-fast reasons.
//! - [`root_watch`]: a job's root ConfigMap, read then watched (follow, scale, the scaler),
//!   over [`configmap_watch`] (a watch kept going across the server's ends).
//! - [`follow`]: the job's recorded state until it ends. - [`submit`]: all of it in order.
//! - [`record`]: what the job master records in the root. - [`jobs`]: list and status;
//!   [`jobs_watch`]: every job's root, listed then watched (`t2 list --watch`).
//! - [`kill`], [`logs`], [`scale`], [`gc`], [`doctor`] (with [`permissions`]): the commands;
//!   [`events`]: a job's Kubernetes events (`t2 describe`).
//! - [`scale_request`]: how `t2 scale` asks the in-cluster job master through the root.
//! - [`inventory`]: a job's objects by label.
//! - [`incluster`]: the `t2 pod …` roles inside a job's pods, and the job master's store and
//!   cluster.
//! - [`gang`]: gang scheduling and queues (Volcano, Kueue): the checks, why a job is queued;
//!   [`identity`]: who the cluster says the caller is (the owner label).
//! - [`error`]: one-line errors naming the object, verb or setting at fault.

pub mod checks;
pub mod claims;
pub mod client;
pub mod configmap_watch;
pub mod create;
pub mod deliver;
pub mod disruption;
pub mod doctor;
pub mod dry_run;
pub mod error;
pub mod events;
pub mod follow;
pub mod gang;
pub mod gc;
pub mod identity;
pub mod image;
pub mod incluster;
pub mod inventory;
pub mod jobs;
pub mod jobs_watch;
pub mod kill;
pub mod logs;
pub mod manifests;
pub mod names;
pub mod permissions;
pub mod podstate;
pub mod record;
pub mod root_watch;
pub mod scale;
pub mod scale_request;
pub mod settings;
pub mod submit;
pub mod wait;

pub use client::{ClientOptions, Kube};
pub use error::KubeError;
pub use manifests::{build_objects, to_yaml, JobInfo, Object};
pub use settings::{read_settings, Settings};
