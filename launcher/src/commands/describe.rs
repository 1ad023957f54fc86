//! `t2 describe JOB`: one local job in full, as `kubectl describe` shows an object — its spec
//! in short, its workers, its events, and why it is in its state.

use std::fmt::Write;
use std::path::Path;

use t2_core::jobdir::JobDir;

use crate::error::LauncherError;
use crate::local::events;

/// Prints the description (`job` is a valid job ID).
pub fn run(home: &Path, job: &str) -> Result<(), LauncherError> {
    let dir = JobDir::existing(home, job)?;
    let record = dir.read_record()?;
    let mut out = String::new();
    let orphaned = super::orphan::is_orphaned(&record);
    let _ = writeln!(out, "Job:          {}", record.id);
    let _ = writeln!(out, "Cluster:      {}", record.cluster);
    let _ = writeln!(out, "State:        {}", super::orphan::shown_state(&record));
    let reason = if orphaned {
        Some(super::orphan::explain(&record))
    } else {
        record.reason.clone()
    };
    let evs = events::read(&dir);
    let since = evs
        .iter()
        .rev()
        .find(|e| e.object == "job")
        .map(|e| e.time.clone());
    let _ = writeln!(
        out,
        "Reason:       {}",
        reason.unwrap_or_else(|| last_change(&record.state.to_string()))
    );
    if let Some(t) = since {
        let _ = writeln!(out, "Since:        {t} ({} ago)", crate::clock::age(&t));
    }
    let _ = writeln!(
        out,
        "Submitted:    {} ({} ago)",
        record.submitted_at,
        crate::clock::age(&record.submitted_at)
    );
    if let Some(e) = &record.ended_at {
        let _ = writeln!(out, "Ended:        {e}");
    }
    let _ = writeln!(out, "Folder:       {}", dir.root().display());
    match crate::jobfiles::read_spec(&dir) {
        Ok(spec) => {
            let _ = writeln!(out, "Spec:");
            let _ = writeln!(out, "  Name:         {}", spec.name);
            let _ = writeln!(
                out,
                "  Workers:      {} ({} per slot)",
                spec.workers, spec.workers_per_pod
            );
            let mut command = spec.command.clone();
            command.extend(spec.args.iter().cloned());
            let _ = writeln!(out, "  Command:      {}", shell_words(&command));
            let _ = writeln!(out, "  Max restarts: {}", spec.max_restarts);
            let _ = writeln!(
                out,
                "  Resources:    cpu {}, memory {} MB, disk {} MB",
                spec.resources.cpu, spec.resources.memory_mb, spec.resources.disk_mb
            );
            let _ = writeln!(
                out,
                "  Fault tolerant: {}{}",
                spec.fault_tolerant,
                if spec.fault_tolerant {
                    format!(" (ZooKeeper {})", spec.zookeeper.addresses)
                } else {
                    String::new()
                }
            );
            if spec.mpi.enabled {
                let _ = writeln!(
                    out,
                    "  MPI:          {} slot(s) per worker",
                    spec.mpi.slots_per_worker
                );
            }
            if !spec.env.is_empty() {
                let keys: Vec<&str> = spec.env.keys().map(String::as_str).collect();
                let _ = writeln!(out, "  Env:          {}", keys.join(", "));
            }
        }
        Err(e) => {
            let _ = writeln!(out, "Spec:         unreadable: {e}");
        }
    }
    let _ = writeln!(out, "Package:      sha256 {}", record.package_sha256);
    let _ = writeln!(
        out,
        "Workers:      {}/{} joined",
        record.joined, record.num_workers
    );
    let _ = writeln!(
        out,
        "  {:<8} {:<13} {:>8} {:>8} {:>5}",
        "WORKER", "STATE", "RESTARTS", "PID", "EXIT"
    );
    for w in &record.workers {
        let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  {:<8} {:<13} {:>8} {:>8} {:>5}",
            w.id,
            w.state,
            w.restart_count,
            dash(w.pid.map(|p| p.to_string())),
            dash(w.exit_code.map(|c| c.to_string()))
        );
    }
    let _ = writeln!(out, "Events:");
    if evs.is_empty() {
        let _ = writeln!(out, "  (none recorded)");
    } else {
        let _ = writeln!(
            out,
            "  {:<20} {:<10} {:<10} REASON",
            "TIME", "OBJECT", "STATE"
        );
        for e in &evs {
            let _ = writeln!(
                out,
                "  {:<20} {:<10} {:<10} {}",
                e.time,
                e.object,
                e.state,
                e.reason.as_deref().unwrap_or("")
            );
        }
    }
    crate::stdout::out!("{out}");
    Ok(())
}

/// The reason shown for a state that has none recorded.
pub(crate) fn last_change(state: &str) -> String {
    match state {
        "STARTING" => "workers are starting and joining".into(),
        "RUNNING" => "every worker joined".into(),
        "COMPLETED" => "every worker completed".into(),
        other => format!("{other} (no reason recorded)"),
    }
}

/// Words joined as a shell would read them back (quoted when needed).
pub(crate) fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
