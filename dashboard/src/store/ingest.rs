//! Applying a job master's report: checked first (nothing is written for a bad one), then the
//! job, its workers and its events in one transaction. A job that has ended keeps its end:
//! a late or repeated report cannot bring it back to life.

use rusqlite::{params, Connection, OptionalExtension};
use t2_jobmaster::reporters::wire::{Report, JOB_STATES, WORKER_STATES};

/// Longest text field accepted in a report.
const MAX_TEXT: usize = 4096;

/// What a report changed, and what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// The dashboard knew the job before this report.
    pub known: bool,
    /// A kill was asked for and the job has not ended: its reason.
    pub kill: Option<String>,
    /// The job's state now.
    pub state: String,
    /// Workers written.
    pub workers: usize,
    /// Events new to the dashboard.
    pub events: usize,
}

/// True for COMPLETED, FAILED and KILLED.
pub fn is_final(state: &str) -> bool {
    matches!(state, "COMPLETED" | "FAILED" | "KILLED")
}

/// Checks a report field by field; the message names the first bad one.
pub fn validate(r: &Report) -> Result<(), String> {
    let j = &r.job;
    t2_core::names::validate_job_id(&j.job_id).map_err(|e| format!("job.job_id: {e}"))?;
    let texts = [
        ("job.name", &j.name),
        ("job.cluster", &j.cluster),
        ("job.namespace", &j.namespace),
        ("job.user", &j.user),
        ("job.reason", &j.reason),
    ];
    for (field, text) in texts {
        if text.len() > MAX_TEXT {
            return Err(format!("{field} is longer than {MAX_TEXT} bytes"));
        }
    }
    if j.name.is_empty() || j.cluster.is_empty() {
        return Err("job.name and job.cluster must not be empty".into());
    }
    if !JOB_STATES.contains(&j.state.as_str()) {
        return Err(format!(
            "job.state '{}' is not one of {}",
            t2_core::text::one_line(&j.state),
            JOB_STATES.join(", ")
        ));
    }
    if j.spec.len() > 64 || j.spec.iter().any(|(k, v)| k.len() + v.len() > MAX_TEXT) {
        return Err("job.spec has too many or too long entries".into());
    }
    for w in &r.workers {
        if !WORKER_STATES.contains(&w.state.as_str()) {
            return Err(format!(
                "workers[{}].state '{}' is not one of {}",
                w.worker_id,
                t2_core::text::one_line(&w.state),
                WORKER_STATES.join(", ")
            ));
        }
        if w.worker_id >= t2_core::spec::MAX_WORKERS {
            return Err(format!(
                "workers[].worker_id {} is out of range (at most {} workers)",
                w.worker_id,
                t2_core::spec::MAX_WORKERS
            ));
        }
        let long = [&w.host, &w.node, &w.rack, &w.datacenter]
            .iter()
            .any(|t| t.len() > 256);
        if long {
            return Err(format!(
                "workers[{}] has a host, node, rack or datacenter longer than 256 bytes",
                w.worker_id
            ));
        }
    }
    for e in &r.events {
        if e.kind.is_empty() || e.kind.len() > 32 || e.message.len() > MAX_TEXT {
            return Err(format!(
                "events[{}]: kind must be 1-32 bytes and message at most {MAX_TEXT}",
                e.seq
            ));
        }
    }
    Ok(())
}

/// Writes a checked report.
pub fn apply(conn: &mut Connection, r: &Report, now_ms: i64) -> rusqlite::Result<Ingested> {
    let tx = conn.transaction()?;
    let j = &r.job;
    let before: Option<(String, Option<String>)> = tx
        .query_row(
            "SELECT state, kill_reason FROM jobs WHERE job_id = ?1",
            [&j.job_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let spec = serde_json::to_string(&j.spec).unwrap_or_else(|_| "{}".into());
    tx.execute(
        "INSERT INTO jobs (job_id, name, cluster, namespace, user, spec, state, reason, num_workers,
                           started_ms, ended_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (job_id) DO UPDATE SET
            name = excluded.name, cluster = excluded.cluster, namespace = excluded.namespace,
            user = excluded.user, spec = excluded.spec,
            state = CASE WHEN jobs.state IN ('COMPLETED', 'FAILED', 'KILLED') THEN jobs.state ELSE excluded.state END,
            reason = CASE WHEN jobs.state IN ('COMPLETED', 'FAILED', 'KILLED') THEN jobs.reason ELSE excluded.reason END,
            ended_ms = COALESCE(jobs.ended_ms, excluded.ended_ms),
            num_workers = excluded.num_workers,
            started_ms = MIN(jobs.started_ms, excluded.started_ms),
            updated_ms = excluded.updated_ms",
        params![
            j.job_id,
            j.name,
            j.cluster,
            j.namespace,
            j.user,
            spec,
            j.state,
            j.reason,
            j.num_workers,
            j.started_ms,
            j.ended_ms,
            now_ms
        ],
    )?;
    {
        let mut put = tx.prepare_cached(
            "INSERT INTO workers (job_id, worker_id, host, port, node, rack, datacenter, state,
                                  restart_count, heartbeat_ms, exit_code)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (job_id, worker_id) DO UPDATE SET
                host = excluded.host, port = excluded.port, node = excluded.node,
                rack = excluded.rack, datacenter = excluded.datacenter, state = excluded.state,
                restart_count = excluded.restart_count,
                heartbeat_ms = MAX(workers.heartbeat_ms, excluded.heartbeat_ms),
                exit_code = excluded.exit_code",
        )?;
        for w in &r.workers {
            put.execute(params![
                j.job_id,
                w.worker_id,
                w.host,
                w.port,
                w.node,
                w.rack,
                w.datacenter,
                w.state,
                w.restart_count,
                w.heartbeat_ms,
                w.exit_code
            ])?;
        }
    }
    let mut events = 0;
    {
        let mut put = tx.prepare_cached(
            "INSERT OR IGNORE INTO events (job_id, epoch, seq, at_ms, kind, worker_id, message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for e in &r.events {
            events += put.execute(params![
                j.job_id,
                e.epoch,
                e.seq as i64,
                e.at_ms,
                e.kind,
                e.worker_id,
                e.message
            ])?;
        }
    }
    let state: String = tx.query_row(
        "SELECT state FROM jobs WHERE job_id = ?1",
        [&j.job_id],
        |row| row.get(0),
    )?;
    tx.commit()?;
    let kill = before
        .as_ref()
        .and_then(|(_, k)| k.clone())
        .filter(|_| !is_final(&state));
    Ok(Ingested {
        known: before.is_some(),
        kill,
        state,
        workers: r.workers.len(),
        events,
    })
}

/// What asking to kill a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillAsked {
    /// Recorded; the job master hears it at its next report.
    Recorded,
    /// The dashboard does not know the job.
    Unknown,
    /// It has ended already, in this state.
    Ended(String),
}

/// Records a kill request for `job_id` (and an event saying so).
pub fn ask_kill(
    conn: &mut Connection,
    job_id: &str,
    reason: &str,
    now_ms: i64,
) -> rusqlite::Result<KillAsked> {
    let tx = conn.transaction()?;
    let state: Option<String> = tx
        .query_row("SELECT state FROM jobs WHERE job_id = ?1", [job_id], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(state) = state else {
        return Ok(KillAsked::Unknown);
    };
    if is_final(&state) {
        return Ok(KillAsked::Ended(state));
    }
    tx.execute(
        "UPDATE jobs SET kill_reason = ?2, updated_ms = ?3 WHERE job_id = ?1",
        params![job_id, reason, now_ms],
    )?;
    // Epoch 0 is the dashboard's own: job masters' epochs are their start times.
    let seq: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job_id = ?1 AND epoch = 0",
        [job_id],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO events (job_id, epoch, seq, at_ms, kind, worker_id, message)
         VALUES (?1, 0, ?2, ?3, 'KILL_REQUESTED', NULL, ?4)",
        params![job_id, seq, now_ms, reason],
    )?;
    tx.commit()?;
    Ok(KillAsked::Recorded)
}
