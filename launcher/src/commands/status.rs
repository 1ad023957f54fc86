//! `t2 status JOB [-o wide|json|yaml]`: the job's state and its workers (`orphaned` when its
//! supervisor is gone).

use std::fmt::Write;
use std::path::Path;

use t2_core::jobdir::{JobDir, JobRecord};

use crate::cli::Output;
use crate::cluster::print_as;
use crate::error::LauncherError;

/// Prints one job's status (`job` is a valid job ID).
pub fn run(home: &Path, job: &str, output: Output) -> Result<(), LauncherError> {
    let dir = JobDir::existing(home, job)?;
    let record = dir.read_record()?;
    let orphaned = super::orphan::is_orphaned(&record);
    let mut value = serde_json::to_value(&record)
        .map_err(|e| LauncherError::Failed(format!("cannot encode the status: {e}")))?;
    value["orphaned"] = orphaned.into();
    print_as(output, &value, |_, wide| {
        render(&record, wide.then_some(&dir))
    })
}

/// The text form of a job's status; with `wide` (the job's folder), each worker's last line
/// of output too.
pub fn render(record: &JobRecord, wide: Option<&JobDir>) -> String {
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
    let _ = writeln!(
        out,
        "submitted: {} ({} ago)",
        record.submitted_at,
        crate::clock::age(&record.submitted_at)
    );
    if let Some(ended) = &record.ended_at {
        let _ = writeln!(out, "ended:     {ended}");
    }
    let _ = writeln!(out, "package:   sha256 {}", record.package_sha256);
    let _ = writeln!(out);
    let _ = write!(
        out,
        "{:<8} {:<13} {:>8} {:>8} {:>5}",
        "WORKER", "STATE", "RESTARTS", "PID", "EXIT"
    );
    let _ = writeln!(out, "{}", if wide.is_some() { "  LAST OUTPUT" } else { "" });
    for w in &record.workers {
        let pid = w.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        let exit = w
            .exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        let _ = write!(
            out,
            "{:<8} {:<13} {:>8} {:>8} {:>5}",
            w.id, w.state, w.restart_count, pid, exit
        );
        let last = wide.map(|d| format!("  {}", last_line(&d.worker_log(w.id))));
        let _ = writeln!(out, "{}", last.unwrap_or_default());
    }
    out
}

/// The last line of a log (at most 80 characters), or `-`.
fn last_line(path: &Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let tail = &text[text.len().saturating_sub(4096)..];
    let line = String::from_utf8_lossy(tail)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.chars().take(80).collect::<String>());
    line.unwrap_or_else(|| "-".into())
}
