//! The t2 dashboard: one per cluster, for every user. Job masters report their jobs, workers
//! and events to it (`POST /api/report`, see `t2_jobmaster::reporters`); it keeps the history
//! in SQLite, serves a REST API and server-sent events of every change, and a page (built into
//! the binary, all URLs relative so it works behind `kubectl proxy`) that shows it all live.
//! A kill asked for on the page is handed back to the job's master in the answer to its next
//! report, so the dashboard needs no cluster permissions.
//!
//! # Layout
//! - [`server`]: `run(listener, config, shutdown)`, the routes and shared state.
//! - [`store`]: the SQLite history: schema, ingesting reports, queries.
//! - `api`: the read API (jobs, one job, nodes). `report`: ingesting reports. `kill`: kill
//!   requests. `events`: server-sent events. `metrics`: `/metrics`. `auth`: the token.
//! - `page`: the embedded page (HTML, JS, CSS).
//! - [`error`]: the crate's errors and the API's error answers.

mod api;
mod auth;
pub mod error;
mod events;
mod kill;
mod metrics;
mod page;
mod report;
pub mod server;
pub mod store;
pub mod tls;

pub use error::DashboardError;
pub use server::{run, DashboardConfig};
