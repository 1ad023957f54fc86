//! `t2 list [-o wide|json|yaml] [--watch]`: every job under `$T2_HOME`, newest first; with
//! `--watch`, then each job again whenever its state or workers change.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use t2_core::jobdir::JobRecord;

use crate::cli::Output;
use crate::error::LauncherError;

/// Longest `--watch` runs (a week).
const WATCH_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Prints the job table (and with `watch`, its changes).
pub fn run(home: &Path, output: Output, watch: bool) -> Result<(), LauncherError> {
    let jobs = t2_core::jobdir::list_jobs(home);
    if jobs.is_empty() && !watch && matches!(output, Output::Text | Output::Wide) {
        eprintln!("no jobs under {}", home.join("jobs").display());
        return Ok(());
    }
    let wide = output == Output::Wide;
    match output {
        Output::Text | Output::Wide => {
            crate::stdout::outln!("{}", header(wide));
            for j in &jobs {
                crate::stdout::outln!("{}", row(j, wide));
            }
        }
        Output::Json if !watch => {
            let text = serde_json::to_string_pretty(&listing(&jobs)?)
                .map_err(LauncherError::json("cannot encode the jobs"))?;
            crate::stdout::outln!("{text}")
        }
        Output::Yaml if !watch => {
            let text = crate::cluster::to_yaml(&listing(&jobs)?)?;
            crate::stdout::out!("{text}")
        }
        // Watching: one document per job, and one more for each change.
        _ => jobs.iter().try_for_each(|j| print_one(j, output))?,
    }
    if !watch {
        return Ok(());
    }
    let mut seen: BTreeMap<String, String> = jobs.iter().map(|j| (j.id.clone(), key(j))).collect();
    let started = std::time::Instant::now();
    while started.elapsed() < WATCH_DEADLINE {
        std::thread::sleep(Duration::from_millis(500));
        // Oldest first, so that a new job's lines come in the order things happened.
        for j in t2_core::jobdir::list_jobs(home).iter().rev() {
            let k = key(j);
            if seen.get(&j.id) != Some(&k) {
                match output {
                    Output::Text | Output::Wide => crate::stdout::outln!("{}", row(j, wide)),
                    _ => print_one(j, output)?,
                }
                seen.insert(j.id.clone(), k);
            }
        }
    }
    Ok(())
}

/// What a watch compares: a change in any of these prints the job again.
fn key(j: &JobRecord) -> String {
    format!(
        "{} {}/{} {:?}",
        super::orphan::shown_state(j),
        j.joined,
        j.num_workers,
        j.reason
    )
}

fn header(wide: bool) -> String {
    let mut h = format!(
        "{:<40} {:<10} {:<9} {:>7} {:>6}",
        "JOB", "CLUSTER", "STATE", "WORKERS", "AGE"
    );
    if wide {
        h.push_str(&format!("  {:<20} {:<20} REASON", "SUBMITTED", "ENDED"));
    }
    h
}

fn row(j: &JobRecord, wide: bool) -> String {
    let mut r = format!(
        "{:<40} {:<10} {:<9} {:>7} {:>6}",
        j.id,
        j.cluster,
        super::orphan::shown_state(j),
        format!("{}/{}", j.joined, j.num_workers),
        crate::clock::age(&j.submitted_at)
    );
    if wide {
        let reason = if super::orphan::is_orphaned(j) {
            super::orphan::explain(j)
        } else {
            j.reason.clone().unwrap_or_default()
        };
        r.push_str(&format!(
            "  {:<20} {:<20} {}",
            j.submitted_at,
            j.ended_at.as_deref().unwrap_or("-"),
            reason
        ));
    }
    r
}

/// A job as `-o json|yaml` shows it: its record, with `orphaned`.
fn document(j: &JobRecord) -> Result<serde_json::Value, LauncherError> {
    let mut v = serde_json::to_value(j).map_err(LauncherError::json("cannot encode a job"))?;
    v["orphaned"] = super::orphan::is_orphaned(j).into();
    Ok(v)
}

/// The list as `-o json|yaml` shows it: `{"jobs": [...]}`.
fn listing(jobs: &[JobRecord]) -> Result<serde_json::Value, LauncherError> {
    let docs: Vec<_> = jobs.iter().map(document).collect::<Result<_, _>>()?;
    Ok(serde_json::json!({ "jobs": docs }))
}

/// One job while watching: a JSON line, or a YAML document.
fn print_one(j: &JobRecord, output: Output) -> Result<(), LauncherError> {
    let v = document(j)?;
    if output == Output::Yaml {
        crate::stdout::out!("---\n{}", crate::cluster::to_yaml(&v)?);
    } else {
        let line = serde_json::to_string(&v).map_err(LauncherError::json("cannot encode"))?;
        crate::stdout::outln!("{line}");
    }
    Ok(())
}
