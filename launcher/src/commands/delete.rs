//! `t2 delete JOB` and `t2 gc` for local jobs: remove ended jobs' folders (record, logs,
//! package) from `$T2_HOME/jobs`. A job that may still run is never removed: it must be
//! killed first (`t2 kill`), so no process is left without its folder.

use std::path::Path;
use std::time::{Duration, SystemTime};

use t2_core::jobdir::{list_jobs, JobDir, JobRecord};

use crate::error::LauncherError;
use crate::stdout::outln;

/// Removes the folder of ended job `job` (`job` is a valid job ID).
pub fn delete(home: &Path, job: &str) -> Result<(), LauncherError> {
    let dir = JobDir::existing(home, job)?;
    let record = dir.read_record()?;
    if !record.state.is_final() {
        return Err(LauncherError::Usage(format!(
            "job {job} is {} (not ended): end it first with 't2 kill {job}', then delete it",
            super::orphan::shown_state(&record)
        )));
    }
    remove(&dir)?;
    outln!("job {job} deleted");
    Ok(())
}

/// Removes every ended job (that ended more than `older_than` ago, when given); with `dry_run`
/// only says which.
pub fn gc(home: &Path, older_than: Option<Duration>, dry_run: bool) -> Result<(), LauncherError> {
    let now = SystemTime::now();
    let mut swept = 0;
    for record in list_jobs(home) {
        if !record.state.is_final() || !old_enough(&record, older_than, now) {
            continue;
        }
        let dir = JobDir::new(home, &record.id);
        if dry_run {
            outln!("would delete job {} ({})", record.id, record.state);
        } else {
            remove(&dir)?;
            outln!("deleted job {} ({})", record.id, record.state);
        }
        swept += 1;
    }
    if swept == 0 {
        outln!(
            "no ended job{} under {}",
            older_than.map_or(String::new(), |d| format!(
                " older than {}",
                t2_core::duration::format_duration(d)
            )),
            home.join("jobs").display()
        );
    }
    Ok(())
}

/// True when `record` ended more than `older_than` before `now` (always, without an age).
fn old_enough(record: &JobRecord, older_than: Option<Duration>, now: SystemTime) -> bool {
    let Some(age) = older_than else {
        return true;
    };
    let ended = record.ended_at.as_deref().unwrap_or(&record.submitted_at);
    crate::clock::parse_rfc3339(ended)
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|d| d > age)
}

fn remove(dir: &JobDir) -> Result<(), LauncherError> {
    std::fs::remove_dir_all(dir.root()).map_err(LauncherError::io(format!(
        "cannot delete {}",
        dir.root().display()
    )))
}
