//! The package uploader (DESIGN §3 "Distribute"): an HTTP server holding job packages by
//! sha256, and the client that uploads and deletes them. The `t2 uploader` command and a local
//! job's use of an uploader are in the launcher; agents download with `t2_worker`'s fetch.
//!
//! # Layout
//! - [`server`]: routes, counting, shutdown; [`server::run`] starts it on a bound listener.
//! - [`store`]: the package folder (atomic commits, references); [`lease`]: references as
//!   leases that running jobs renew; [`upload`] and [`download`]:
//!   the write and read handlers; [`range`]: `Range` headers; [`limits`]: sizes, disk space,
//!   concurrent uploads; [`auth`]: the token; [`sweep`]: the TTL sweep; [`metrics`]: `/metrics`.
//! - [`client`]: upload (skipped when HEAD finds the package) and delete.
//! - [`error`]: the crate's error ([`error::UploaderError`]) and HTTP answers ([`error::ApiError`]).
//!
//! # HTTP API
//! | request | token | answer |
//! |---|---|---|
//! | `PUT /packages/{sha256}[?job=ID]` | yes | 201 stored, 200 already stored (with a job: its lease starts, `x-t2-lease-ms` says how long it lasts); 400 hash mismatch or bad ID, 401/403, 408 stalled, 413 too large, 503 busy, 507 no space |
//! | `HEAD`/`GET /packages/{sha256}` | no | 200 or 206 (`Range`), strong `ETag` = the sha256, 304, 404, 416 |
//! | `PUT /packages/{sha256}/refs/{job}` | yes | 200: the job uses the package; its lease starts or is renewed (`x-t2-lease-ms`); 404 no such package |
//! | `DELETE /packages/{sha256}[?job=ID]` | yes | 200 deleted (or kept while other jobs hold live leases), 404 |
//! | `GET /healthz`, `GET /metrics` | no | `ok`; Prometheus text |
//!
//! Reads need no token: a package is found only by its sha256, which the reader must already
//! know, and packages are job code, not secrets. Put the uploader where only the cluster can
//! reach it (it binds to 127.0.0.1 unless told otherwise).

pub mod auth;
pub mod client;
pub mod download;
pub mod error;
pub mod lease;
pub mod limits;
pub mod metrics;
pub mod range;
pub mod server;
pub mod store;
pub mod sweep;
pub mod tls;
pub mod upload;
