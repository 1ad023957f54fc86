//! The `local` cluster: a job's job master and workers run as processes on this machine,
//! supervised by the `t2 submit` process (or, with `--detach`, by a background `t2 supervise`).

pub mod events;
pub mod hosts;
pub mod identity;
pub mod output;
pub mod process;
pub mod supervisor;
pub mod topology;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use t2_core::jobdir::{JobDir, RecordedState};

use crate::error::LauncherError;
use crate::prepare::Prepared;

/// Runs a prepared job; returns its final state (detached: RUNNING or STARTING once started).
pub async fn run(prepared: Prepared, detach: bool) -> Result<RecordedState, LauncherError> {
    let id = prepared.record.id.clone();
    if detach {
        return detach_supervisor(&prepared.dir, &id).await;
    }
    let _ = writeln!(
        std::io::stderr(),
        "t2: job {id} submitted: {}, package sha256 {}",
        match prepared.spec.workers {
            1 => "1 worker".to_string(),
            n => format!("{n} workers"),
        },
        &prepared.record.package_sha256[..12.min(prepared.record.package_sha256.len())]
    );
    let started = Instant::now();
    let record = supervisor::supervise(prepared.dir, true).await?;
    // stdout may be gone (the job was stopped because of it): the exit code still says it.
    let mut out = std::io::stdout();
    let _ = match &record.reason {
        Some(reason) => writeln!(
            out,
            "job {id} {} after {:.1?}: {reason}",
            record.state,
            started.elapsed()
        ),
        None => writeln!(
            out,
            "job {id} {} in {:.1?}",
            record.state,
            started.elapsed()
        ),
    };
    Ok(record.state)
}

async fn detach_supervisor(dir: &JobDir, id: &str) -> Result<RecordedState, LauncherError> {
    let log = std::fs::File::create(dir.logs_dir().join("supervisor.log"))
        .map_err(LauncherError::io("cannot create the supervisor log"))?;
    let log2 = log
        .try_clone()
        .map_err(LauncherError::io("cannot create the supervisor log"))?;
    tokio::process::Command::new(process::t2_exe())
        .arg("supervise")
        .arg("--job-dir")
        .arg(dir.root())
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .process_group(0)
        .spawn()
        .map_err(LauncherError::io("cannot start the job's supervisor"))?;
    // Return once the supervisor has taken the job over.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(r) = dir.read_record() {
            if r.supervisor_pid.is_some() {
                crate::stdout::outln!("{id}");
                eprintln!("t2: job {id} started in the background; follow it with 't2 status {id}' and 't2 logs {id} -f'");
                return Ok(r.state);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(LauncherError::Failed(format!(
        "the supervisor of job {id} did not start within 10s; see {}",
        dir.logs_dir().join("supervisor.log").display()
    )))
}
