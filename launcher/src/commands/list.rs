//! `t2 list`: every job under `$T2_HOME`, newest first.

use std::path::Path;

/// Prints the job table.
pub fn run(home: &Path) {
    let jobs = t2_core::jobdir::list_jobs(home);
    if jobs.is_empty() {
        eprintln!("no jobs under {}", home.join("jobs").display());
        return;
    }
    crate::stdout::outln!(
        "{:<40} {:<10} {:<9} {:>7}  SUBMITTED",
        "JOB",
        "CLUSTER",
        "STATE",
        "WORKERS"
    );
    for j in jobs {
        crate::stdout::outln!(
            "{:<40} {:<10} {:<9} {:>7}  {}",
            j.id,
            j.cluster,
            super::orphan::shown_state(&j),
            format!("{}/{}", j.joined, j.num_workers),
            j.submitted_at
        );
    }
}
