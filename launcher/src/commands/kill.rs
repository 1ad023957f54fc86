//! `t2 kill JOB`: ends a local job and checks that none of its processes is left.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use t2_core::jobdir::{now_rfc3339, JobDir, RecordedState};

use crate::error::LauncherError;
use crate::local::process::{alive_with, group_alive, pids_with_arg, signal_group};

/// How long the supervisor gets to end the job itself before we SIGKILL everything.
const SUPERVISOR_GRACE: Duration = Duration::from_millis(1500);

/// Kills the job (`job` is a valid job ID); fails if any of its processes is still alive
/// afterwards.
pub fn run(home: &Path, job: &str) -> Result<(), LauncherError> {
    let dir = JobDir::existing(home, job)?;
    let record = dir.read_record()?;
    if record.state.is_final() {
        println!(
            "job {job} has already ended ({}); nothing to kill",
            record.state
        );
        return Ok(());
    }
    let groups: Vec<u32> = record
        .workers
        .iter()
        .filter_map(|w| w.pid)
        .chain(record.jobmaster_pid)
        .collect();
    let supervisor = record.supervisor_pid.filter(|&p| alive_with(p, "t2"));
    if let Some(pid) = supervisor {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < SUPERVISOR_GRACE {
            let ended = dir
                .read_record()
                .map(|r| r.state.is_final())
                .unwrap_or(false);
            if ended && !alive_with(pid, "t2") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Whatever is left: SIGKILL, including groups started after the record we read.
    let latest = dir.read_record().unwrap_or(record);
    let mut all = groups;
    all.extend(latest.workers.iter().filter_map(|w| w.pid));
    all.extend(latest.jobmaster_pid);
    // And any process of the job no record names (an agent a scale-down was stopping when its
    // supervisor died): each is the leader of its group.
    let root = dir.root().to_string_lossy().into_owned();
    for pid in pids_with_arg(&root) {
        if pid != std::process::id() && !all.contains(&pid) {
            all.push(pid);
        }
    }
    if let Some(pid) = supervisor.filter(|&p| alive_with(p, "t2")) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    for &g in &all {
        signal_group(g, Signal::SIGKILL);
    }
    let start = Instant::now();
    while all.iter().any(|&g| group_alive(g)) && start.elapsed() < Duration::from_millis(400) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let left: Vec<u32> = all.iter().copied().filter(|&g| group_alive(g)).collect();
    let mut rec = dir.read_record()?;
    if !rec.state.is_final() {
        rec.state = RecordedState::Killed;
        rec.reason = Some("killed by user (t2 kill)".into());
        rec.ended_at = Some(now_rfc3339());
        rec.supervisor_pid = None;
        rec.jobmaster_pid = None;
        for w in &mut rec.workers {
            w.pid = None;
        }
        dir.write_record(&rec)?;
    }
    if !left.is_empty() {
        return Err(LauncherError::Failed(format!(
            "job {job}: processes still alive after SIGKILL (groups {left:?})"
        )));
    }
    println!("job {job} killed");
    Ok(())
}
