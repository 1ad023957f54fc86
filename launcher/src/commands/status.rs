//! `t2 status JOB [-o json]`: the job's state and its workers (`orphaned` when its supervisor
//! is gone).

use std::fmt::Write;
use std::path::Path;

use t2_core::jobdir::{JobDir, JobRecord};

use crate::cli::Output;
use crate::cluster::print_as;
use crate::error::LauncherError;

/// Prints one job's status (`job` is a valid job ID).
pub fn run(home: &Path, job: &str, output: Output) -> Result<(), LauncherError> {
    let record = JobDir::existing(home, job)?.read_record()?;
    let orphaned = super::orphan::is_orphaned(&record);
    let mut value = serde_json::to_value(&record)
        .map_err(|e| LauncherError::Failed(format!("cannot encode the status: {e}")))?;
    value["orphaned"] = orphaned.into();
    print_as(output, &value, |_| render(&record))
}

/// The text form of a job's status.
fn render(record: &JobRecord) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "job:       {}", record.id);
    let _ = writeln!(out, "state:     {}", super::orphan::shown_state(record));
    if super::orphan::is_orphaned(record) {
        let _ = writeln!(out, "reason:    {}", super::orphan::explain(record));
    } else if let Some(reason) = &record.reason {
        let _ = writeln!(out, "reason:    {reason}");
    }
    let _ = writeln!(out, "cluster:   {}", record.cluster);
    let _ = writeln!(
        out,
        "workers:   {}/{} joined",
        record.joined, record.num_workers
    );
    let _ = writeln!(out, "submitted: {}", record.submitted_at);
    if let Some(ended) = &record.ended_at {
        let _ = writeln!(out, "ended:     {ended}");
    }
    let _ = writeln!(out, "package:   sha256 {}", record.package_sha256);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<8} {:<13} {:>8} {:>8} {:>5}",
        "WORKER", "STATE", "RESTARTS", "PID", "EXIT"
    );
    for w in &record.workers {
        let pid = w.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        let exit = w
            .exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<8} {:<13} {:>8} {:>8} {:>5}",
            w.id, w.state, w.restart_count, pid, exit
        );
    }
    out
}
