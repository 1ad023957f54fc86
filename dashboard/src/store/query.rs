//! What the API reads: a page of jobs (filtered, searched, newest first), one job with its
//! workers and events, workers grouped by datacenter, rack and node, and counts by state.

use std::collections::BTreeMap;

use rusqlite::{params_from_iter, Connection, OptionalExtension, Row};
use serde::Serialize;

/// Most events a job's page shows (the newest).
pub const MAX_EVENTS_SHOWN: u32 = 2000;

/// Which jobs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobQuery {
    /// Only these states (all when empty).
    pub states: Vec<String>,
    /// Only names or IDs containing this (case-insensitive).
    pub search: String,
    /// Page number, from 1.
    pub page: u32,
    /// Jobs per page.
    pub per_page: u32,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    /// Its ID.
    pub job_id: String,
    /// Its name.
    pub name: String,
    /// `local` or `kubernetes`.
    pub cluster: String,
    /// Kubernetes namespace.
    pub namespace: String,
    /// Who submitted it.
    pub user: String,
    /// Spec summary.
    pub spec: serde_json::Value,
    /// Its state.
    pub state: String,
    /// Why.
    pub reason: String,
    /// Workers it has.
    pub num_workers: u32,
    /// Workers running now (STARTED or RESTARTED).
    pub workers_running: u32,
    /// Workers that ever reported.
    pub workers_known: u32,
    /// Start, Unix ms.
    pub started_ms: i64,
    /// End, Unix ms.
    pub ended_ms: Option<i64>,
    /// Last report, Unix ms.
    pub updated_ms: i64,
    /// A kill was asked for on the dashboard.
    pub kill_requested: bool,
}

/// A worker as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRow {
    /// Its job.
    pub job_id: String,
    /// Its ID.
    pub worker_id: u32,
    /// Address.
    pub host: String,
    /// Port.
    pub port: u32,
    /// Node.
    pub node: String,
    /// Rack.
    pub rack: String,
    /// Datacenter.
    pub datacenter: String,
    /// State.
    pub state: String,
    /// Restarts.
    pub restart_count: u32,
    /// Last heartbeat, Unix ms.
    pub heartbeat_ms: i64,
    /// Exit code of its program's last run.
    pub exit_code: Option<i32>,
}

/// An event as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    /// When, Unix ms.
    pub at_ms: i64,
    /// What kind.
    pub kind: String,
    /// About which worker.
    pub worker_id: Option<u32>,
    /// For people.
    pub message: String,
}

/// A page of jobs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobPage {
    /// The jobs, newest first.
    pub jobs: Vec<JobRow>,
    /// Jobs matching in all.
    pub total: u64,
    /// This page.
    pub page: u32,
    /// Jobs per page.
    pub per_page: u32,
}

const JOB_COLUMNS: &str = "j.job_id, j.name, j.cluster, j.namespace, j.user, j.spec, j.state, j.reason,
    j.num_workers, j.started_ms, j.ended_ms, j.updated_ms, j.kill_reason IS NOT NULL,
    (SELECT COUNT(*) FROM workers w WHERE w.job_id = j.job_id AND w.state IN ('STARTED', 'RESTARTED')),
    (SELECT COUNT(*) FROM workers w WHERE w.job_id = j.job_id)";

fn job_row(r: &Row) -> rusqlite::Result<JobRow> {
    let spec: String = r.get(5)?;
    Ok(JobRow {
        job_id: r.get(0)?,
        name: r.get(1)?,
        cluster: r.get(2)?,
        namespace: r.get(3)?,
        user: r.get(4)?,
        spec: serde_json::from_str(&spec).unwrap_or(serde_json::Value::Null),
        state: r.get(6)?,
        reason: r.get(7)?,
        num_workers: r.get(8)?,
        started_ms: r.get(9)?,
        ended_ms: r.get(10)?,
        updated_ms: r.get(11)?,
        kill_requested: r.get(12)?,
        workers_running: r.get(13)?,
        workers_known: r.get(14)?,
    })
}

fn worker_row(r: &Row) -> rusqlite::Result<WorkerRow> {
    Ok(WorkerRow {
        job_id: r.get(0)?,
        worker_id: r.get(1)?,
        host: r.get(2)?,
        port: r.get(3)?,
        node: r.get(4)?,
        rack: r.get(5)?,
        datacenter: r.get(6)?,
        state: r.get(7)?,
        restart_count: r.get(8)?,
        heartbeat_ms: r.get(9)?,
        exit_code: r.get(10)?,
    })
}

const WORKER_COLUMNS: &str = "job_id, worker_id, host, port, node, rack, datacenter, state, restart_count, heartbeat_ms, exit_code";

/// A page of jobs matching `q`, newest first.
pub fn jobs(conn: &Connection, q: &JobQuery) -> rusqlite::Result<JobPage> {
    let mut filter = String::from(" WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    if !q.states.is_empty() {
        let marks: Vec<String> = q
            .states
            .iter()
            .map(|s| {
                args.push(s.clone());
                format!("?{}", args.len())
            })
            .collect();
        filter.push_str(&format!(" AND j.state IN ({})", marks.join(", ")));
    }
    if !q.search.is_empty() {
        args.push(q.search.to_lowercase());
        let n = args.len();
        filter.push_str(&format!(
            " AND (instr(lower(j.name), ?{n}) > 0 OR instr(j.job_id, ?{n}) > 0)"
        ));
    }
    let total: u64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM jobs j{filter}"),
        params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs j{filter} ORDER BY j.started_ms DESC, j.job_id DESC LIMIT {} OFFSET {}",
        q.per_page,
        (q.page.saturating_sub(1) as u64) * q.per_page as u64
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let jobs = stmt
        .query_map(params_from_iter(args.iter()), job_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(JobPage {
        jobs,
        total,
        page: q.page,
        per_page: q.per_page,
    })
}

/// Job `id` with its workers and its newest events (oldest first), if known.
pub fn job(
    conn: &Connection,
    id: &str,
) -> rusqlite::Result<Option<(JobRow, Vec<WorkerRow>, Vec<EventRow>)>> {
    let Some(job) = conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs j WHERE j.job_id = ?1"
        ))?
        .query_row([id], job_row)
        .optional()?
    else {
        return Ok(None);
    };
    let workers = conn
        .prepare_cached(&format!(
            "SELECT {WORKER_COLUMNS} FROM workers WHERE job_id = ?1 ORDER BY worker_id"
        ))?
        .query_map([id], worker_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut events = conn
        .prepare_cached(&format!(
            "SELECT at_ms, kind, worker_id, message FROM events WHERE job_id = ?1
             ORDER BY at_ms DESC, epoch DESC, seq DESC LIMIT {MAX_EVENTS_SHOWN}"
        ))?
        .query_map([id], |r| {
            Ok(EventRow {
                at_ms: r.get(0)?,
                kind: r.get(1)?,
                worker_id: r.get(2)?,
                message: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    events.reverse();
    Ok(Some((job, workers, events)))
}

/// Workers grouped by datacenter, then rack, then node: of running jobs, or of all when `all`.
pub fn nodes(conn: &Connection, all: bool) -> rusqlite::Result<serde_json::Value> {
    let filter = if all {
        ""
    } else {
        "WHERE job_id IN (SELECT job_id FROM jobs WHERE state IN ('STARTING', 'RUNNING'))"
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {WORKER_COLUMNS} FROM workers {filter} ORDER BY datacenter, rack, node, job_id, worker_id"
    ))?;
    let rows = stmt
        .query_map([], worker_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    type Nodes = BTreeMap<String, Vec<WorkerRow>>;
    let mut tree: BTreeMap<String, BTreeMap<String, Nodes>> = BTreeMap::new();
    for w in rows {
        let or = |s: &str, d: &str| {
            if s.is_empty() {
                d.to_string()
            } else {
                s.to_string()
            }
        };
        tree.entry(or(&w.datacenter, "default-datacenter"))
            .or_default()
            .entry(or(&w.rack, "default-rack"))
            .or_default()
            .entry(or(&w.node, &w.host))
            .or_default()
            .push(w);
    }
    let datacenters: Vec<serde_json::Value> = tree
        .into_iter()
        .map(|(dc, racks)| {
            let racks: Vec<serde_json::Value> = racks
                .into_iter()
                .map(|(rack, nodes)| {
                    let nodes: Vec<serde_json::Value> = nodes
                        .into_iter()
                        .map(
                            |(node, workers)| serde_json::json!({"node": node, "workers": workers}),
                        )
                        .collect();
                    serde_json::json!({"rack": rack, "nodes": nodes})
                })
                .collect();
            serde_json::json!({"datacenter": dc, "racks": racks})
        })
        .collect();
    Ok(serde_json::json!({ "datacenters": datacenters }))
}

/// Jobs per state, for `/metrics`.
pub fn counts(conn: &Connection) -> rusqlite::Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
