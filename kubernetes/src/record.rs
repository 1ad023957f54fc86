//! What the job master records in its job's root ConfigMap, and reading it back: the job
//! state and reason, and one `worker.<id>` entry per worker (state, restart count, address),
//! so that restart counts survive a job master restart and `t2 status` can show workers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::manifests::root::keys;

/// One worker as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerEntry {
    /// Worker ID.
    pub id: u32,
    /// STARTED, RESTARTED, COMPLETED, FAILED, KILLED, FULLY_FAILED.
    pub state: String,
    /// Restarts so far.
    pub restart_count: u32,
    /// Its address.
    #[serde(default)]
    pub host: String,
    /// Its port.
    #[serde(default)]
    pub port: u32,
    /// Its node.
    #[serde(default)]
    pub node: String,
}

/// The key of worker `id`.
pub fn worker_key(id: u32) -> String {
    format!("{}{id}", keys::WORKER_PREFIX)
}

/// The workers recorded in a root's data, by ID (entries that do not parse are skipped).
pub fn workers(data: &BTreeMap<String, String>) -> Vec<WorkerEntry> {
    let mut out: Vec<WorkerEntry> = data
        .iter()
        .filter(|(k, _)| k.starts_with(keys::WORKER_PREFIX))
        .filter_map(|(_, v)| serde_json::from_str(v).ok())
        .collect();
    out.sort_by_key(|w| w.id);
    out
}

/// The recorded job state (`STARTING` until the job master records one) and reason.
pub fn state(data: &BTreeMap<String, String>) -> (String, Option<String>) {
    (
        data.get(keys::STATE)
            .cloned()
            .unwrap_or_else(|| "STARTING".into()),
        data.get(keys::REASON).cloned().filter(|r| !r.is_empty()),
    )
}
