//! An orphaned local job: its record says it runs, but its supervisor (the `t2 submit` or
//! `t2 supervise` process that keeps the record) is gone — SIGKILLed, or its machine rebooted.
//! Nothing will end it or update its record, so `t2 list/status/logs` say so.

use t2_core::jobdir::JobRecord;

use crate::local::process::alive_with;

/// True when `record` is of a job that has not ended but whose supervisor is gone.
pub fn is_orphaned(record: &JobRecord) -> bool {
    !record.state.is_final()
        && record
            .supervisor_pid
            .is_some_and(|pid| !alive_with(pid, "t2"))
}

/// The state to show: `ORPHANED` for an orphaned job, else the recorded one.
pub fn shown_state(record: &JobRecord) -> String {
    if is_orphaned(record) {
        "ORPHANED".into()
    } else {
        record.state.to_string()
    }
}

/// Why an orphaned job is shown so, and what to do.
pub fn explain(record: &JobRecord) -> String {
    format!(
        "the job was {} when its supervisor (pid {}) went away, so nothing ends it or updates its record; some of its processes may still run: end them with 't2 kill {}'",
        record.state,
        record.supervisor_pid.unwrap_or_default(),
        record.id
    )
}
