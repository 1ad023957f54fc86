//! The dashboard's history in SQLite: jobs, workers and events, kept across restarts.
//! One connection writes (reports, kill requests), another reads (WAL lets them run side by
//! side); both are used from blocking tasks so the async server never waits on the disk.
//!
//! - `ingest`: applying a report. - `query`: what the API reads.

mod ingest;
mod query;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

pub use ingest::{apply, ask_kill, is_final, validate, Ingested, KillAsked};
pub use query::{counts, job, jobs, nodes, EventRow, JobPage, JobQuery, JobRow, WorkerRow};

use crate::DashboardError;

/// The schema; `user_version` says which one a file has.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    cluster TEXT NOT NULL,
    namespace TEXT NOT NULL,
    user TEXT NOT NULL,
    spec TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    num_workers INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    updated_ms INTEGER NOT NULL,
    kill_reason TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_start ON jobs (started_ms DESC);
CREATE TABLE IF NOT EXISTS workers (
    job_id TEXT NOT NULL,
    worker_id INTEGER NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    node TEXT NOT NULL,
    rack TEXT NOT NULL,
    datacenter TEXT NOT NULL,
    state TEXT NOT NULL,
    restart_count INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    exit_code INTEGER,
    PRIMARY KEY (job_id, worker_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    worker_id INTEGER,
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, epoch, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events (job_id, at_ms);
PRAGMA user_version = 1;
"#;

/// The history.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, DashboardError> {
        let err = |what: &str| {
            let (path, what) = (path.display().to_string(), what.to_string());
            move |source| DashboardError::Db { path, what, source }
        };
        let writer = Connection::open(path).map_err(err("cannot open"))?;
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;",
            )
            .map_err(err("cannot set it up"))?;
        let version: i64 = writer
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(err("cannot read its schema version"))?;
        if version > 1 {
            return Err(DashboardError::Db {
                path: path.display().to_string(),
                what: format!("it has schema version {version}, newer than this t2 knows (1); use a newer t2 or another --db"),
                source: rusqlite::Error::InvalidQuery,
            });
        }
        writer
            .execute_batch(SCHEMA)
            .map_err(err("cannot create its tables"))?;
        let reader = Connection::open(path).map_err(err("cannot open for reading"))?;
        reader
            .execute_batch("PRAGMA busy_timeout = 5000; PRAGMA query_only = 1;")
            .map_err(err("cannot set it up for reading"))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db_error(&self, what: &str, source: rusqlite::Error) -> DashboardError {
        DashboardError::Db {
            path: self.path.display().to_string(),
            what: what.to_string(),
            source,
        }
    }

    /// Runs `f` on the writing connection in a blocking task.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, DashboardError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = this
                .writer
                .lock()
                .map_err(|_| DashboardError::Task("the writer lock is poisoned".into()))?;
            f(&mut conn).map_err(|e| this.db_error(what, e))
        })
        .await
        .map_err(|e| DashboardError::Task(e.to_string()))?
    }

    /// Runs `f` on the reading connection in a blocking task.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, DashboardError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this
                .reader
                .lock()
                .map_err(|_| DashboardError::Task("the reader lock is poisoned".into()))?;
            f(&conn).map_err(|e| this.db_error(what, e))
        })
        .await
        .map_err(|e| DashboardError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests;
