//! `t2 status JOB [-o json]`: the job's state and its workers.

use std::path::Path;

use t2_core::jobdir::JobDir;
use t2_core::names::validate_job_id;

use crate::cli::Output;
use crate::error::LauncherError;

/// Prints one job's status.
pub fn run(home: &Path, job: &str, output: Output) -> Result<(), LauncherError> {
    validate_job_id(job)?;
    let record = JobDir::existing(home, job)?.read_record()?;
    if output == Output::Json {
        let text = serde_json::to_string_pretty(&record)
            .map_err(|e| LauncherError::Cluster(format!("cannot encode the record: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    println!("job:       {}", record.id);
    println!("state:     {}", record.state);
    if let Some(reason) = &record.reason {
        println!("reason:    {reason}");
    }
    println!("cluster:   {}", record.cluster);
    println!("workers:   {}/{} joined", record.joined, record.num_workers);
    println!("submitted: {}", record.submitted_at);
    if let Some(ended) = &record.ended_at {
        println!("ended:     {ended}");
    }
    println!("package:   sha256 {}", record.package_sha256);
    println!();
    println!(
        "{:<8} {:<13} {:>8} {:>8} {:>5}",
        "WORKER", "STATE", "RESTARTS", "PID", "EXIT"
    );
    for w in &record.workers {
        let pid = w.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into());
        let exit = w
            .exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<8} {:<13} {:>8} {:>8} {:>5}",
            w.id, w.state, w.restart_count, pid, exit
        );
    }
    Ok(())
}
