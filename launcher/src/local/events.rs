//! A local job's events (`events.jsonl` in its folder): every change of the job's state and
//! of each worker's, with its time and reason, as `t2 describe` shows them.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use t2_core::jobdir::{now_rfc3339, JobDir, JobRecord};

/// Largest events file; past it no more events are written (a job restarting workers for
/// days must not fill the disk).
const MAX_BYTES: u64 = 4 << 20;

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When, RFC 3339.
    pub time: String,
    /// `job`, or `worker-I`.
    pub object: String,
    /// The new state (STARTING, RUNNING, … for the job; STARTED, RESTARTED, … for workers).
    pub state: String,
    /// Why, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The events file of `dir`.
pub fn path(dir: &JobDir) -> PathBuf {
    dir.root().join("events.jsonl")
}

/// Appends one event.
pub fn append(dir: &JobDir, object: &str, state: &str, reason: Option<String>) {
    let p = path(dir);
    if std::fs::metadata(&p).is_ok_and(|m| m.len() > MAX_BYTES) {
        return;
    }
    let e = Event {
        time: now_rfc3339(),
        object: object.into(),
        state: state.into(),
        reason,
    };
    let Ok(line) = serde_json::to_string(&e) else {
        return;
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&p)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Appends an event for every difference between `old` and `new`: the job's state, and each
/// worker's state or restart count.
pub fn record_changes(dir: &JobDir, old: Option<&JobRecord>, new: &JobRecord) {
    // A reason arrives with the final record, after the state: the event is written again
    // with it.
    if old.is_none_or(|o| o.state != new.state || (o.reason != new.reason && new.reason.is_some()))
    {
        append(dir, "job", &new.state.to_string(), new.reason.clone());
    }
    for (i, w) in new.workers.iter().enumerate() {
        // Workers are recorded in ID order: the same position first, a search only if not.
        let before = old.and_then(|o| {
            o.workers
                .get(i)
                .filter(|x| x.id == w.id)
                .or_else(|| o.workers.iter().find(|x| x.id == w.id))
        });
        let changed =
            before.is_none_or(|b| b.state != w.state || b.restart_count != w.restart_count);
        if !changed {
            continue;
        }
        // (A failed worker's exit code here is its agent's; the job's reason names the
        // program's.)
        let reason = match w.state.as_str() {
            "RESTARTED" | "STARTED" if w.restart_count > 0 => {
                Some(format!("restart {}", w.restart_count))
            }
            _ => None,
        };
        append(dir, &format!("worker-{}", w.id), &w.state, reason);
    }
}

/// Every event of the job, oldest first (lines that do not parse are skipped).
pub fn read(dir: &JobDir) -> Vec<Event> {
    std::fs::read_to_string(path(dir))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
