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
    /// Its agent service's port (MPI jobs; 0 otherwise).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub agent_port: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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

/// When the recorded state was recorded (RFC 3339), when the job master said.
pub fn state_at(data: &BTreeMap<String, String>) -> Option<String> {
    data.get(keys::STATE_AT).cloned().filter(|t| !t.is_empty())
}

/// Bytes a ConfigMap's data may hold, keys and values together (the API server's limit).
pub const CONFIGMAP_DATA_BYTES: usize = 1 << 20;

/// Room the root keeps for everything but the spec and the worker records: its other keys, a
/// scale request and its answer, the job's reason.
const ROOT_OTHER_BYTES: usize = 8 << 10;

/// The most bytes worker `id`'s record can take in the root (key and value): the longest
/// state and restart count, IPv6 addresses at their longest textual form.
pub fn max_record_bytes(id: u32) -> usize {
    let longest_ip = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255".to_string();
    let entry = WorkerEntry {
        id,
        state: "FULLY_FAILED".into(),
        restart_count: u32::MAX,
        host: longest_ip.clone(),
        port: 65535,
        node: longest_ip,
        agent_port: 65535,
    };
    worker_key(id).len() + serde_json::to_string(&entry).map_or(256, |s| s.len())
}

/// Checks that the job master's records of `workers` workers fit in the root next to a spec
/// of `spec_bytes`; the error says how many would, and the way out.
pub fn check_fits(workers: u32, spec_bytes: usize) -> Result<(), String> {
    let per_worker = max_record_bytes(workers.saturating_sub(1));
    let room = CONFIGMAP_DATA_BYTES.saturating_sub(spec_bytes + ROOT_OTHER_BYTES);
    let need = per_worker * workers as usize;
    if need <= room {
        return Ok(());
    }
    let fit = room / per_worker;
    Err(format!(
        "{workers} workers do not fit the job's root ConfigMap: their records take up to {:.1} MiB and a ConfigMap holds {} MiB; use at most {fit} workers, or set fault_tolerant: true with zookeeper.addresses so that ZooKeeper keeps the job's state",
        need as f64 / (1 << 20) as f64,
        CONFIGMAP_DATA_BYTES >> 20
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_thousand_workers_fit_and_ten_thousand_are_refused_with_the_largest_that_fits() {
        assert!(check_fits(4_000, 4_000).is_ok());
        let err = check_fits(10_000, 4_000).unwrap_err();
        assert!(
            err.starts_with("10000 workers do not fit the job's root ConfigMap"),
            "{err}"
        );
        let fit: u32 = err
            .split("use at most ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("names a worker count");
        assert!(check_fits(fit, 4_000).is_ok(), "{fit} must fit");
        assert!(
            check_fits(fit + 1, 4_000).is_err(),
            "{} must not fit",
            fit + 1
        );
    }
}
