//! `t2 kill JOB`: ends a local job and checks that none of its processes is left. It signals
//! only processes it can tell are the job's ([`crate::local::identity`]), never a PID that
//! was reused after the job's own process died.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use t2_core::jobdir::{now_rfc3339, JobDir, RecordedState};

use crate::error::LauncherError;
use crate::local::identity::{belongs_to_job, is_job_group, is_marked};
use crate::local::process::{group_alive, pids_with_arg, pids_with_env, signal_group};

/// How long the supervisor gets to end the job itself (tell the job master, SIGTERM, then
/// SIGKILL its processes, record KILLED, print it in the foreground) before we SIGKILL
/// everything. It needs about 1.5 s; too short a grace kills a foreground `t2 submit` before
/// it can say `job … KILLED`.
const SUPERVISOR_GRACE: Duration = Duration::from_secs(5);

/// Kills the job (`job` is a valid job ID); fails if any of its processes is still alive
/// afterwards.
pub fn run(home: &Path, job: &str) -> Result<(), LauncherError> {
    let dir = JobDir::existing(home, job)?;
    let record = dir.read_record()?;
    if record.state.is_final() {
        crate::stdout::outln!(
            "job {job} has already ended ({}); nothing to kill",
            record.state
        );
        return Ok(());
    }
    let root = dir.root().to_path_buf();
    let groups: Vec<u32> = record
        .workers
        .iter()
        .filter_map(|w| w.pid)
        .chain(record.jobmaster_pid)
        .collect();
    // The supervisor: the very process recorded (start time and boot), or, for a record
    // without that mark, one that names the job folder (`t2 supervise --job-dir`).
    let mark = record.supervisor_mark.clone();
    let is_supervisor = |pid: u32| match &mark {
        Some(mark) => is_marked(pid, mark),
        None => belongs_to_job(pid, &root, job),
    };
    let supervisor = record.supervisor_pid.filter(|&p| is_supervisor(p));
    if let Some(pid) = supervisor {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < SUPERVISOR_GRACE {
            let ended = dir
                .read_record()
                .map(|r| r.state.is_final())
                .unwrap_or(false);
            if ended && !is_supervisor(pid) {
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
    for pid in pids_with_arg(&root.to_string_lossy()) {
        if pid != std::process::id() && !all.contains(&pid) {
            all.push(pid);
        }
    }
    // Only groups with a live member of this job: a recorded PID whose process is gone may
    // lead someone else's group by now.
    all.sort_unstable();
    all.dedup();
    all.retain(|&g| is_job_group(g, &root, job));
    if let Some(pid) = supervisor.filter(|&p| is_supervisor(p)) {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    for &g in &all {
        signal_group(g, Signal::SIGKILL);
    }
    let start = Instant::now();
    while all.iter().any(|&g| group_alive(g)) && start.elapsed() < Duration::from_millis(400) {
        std::thread::sleep(Duration::from_millis(10));
    }
    // And what left those groups but carries the job's ID (MPI daemons and ranks put
    // themselves in groups of their own).
    let me = std::process::id();
    let strays = || -> Vec<u32> {
        pids_with_env(t2_worker::env::JOB_ID, job)
            .into_iter()
            .filter(|&p| p != me)
            .collect()
    };
    for _ in 0..3 {
        let pids = strays();
        if pids.is_empty() {
            break;
        }
        for p in pids {
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut left: Vec<u32> = all.iter().copied().filter(|&g| group_alive(g)).collect();
    left.extend(strays());
    let mut rec = dir.read_record()?;
    if !rec.state.is_final() {
        rec.state = RecordedState::Killed;
        rec.reason = Some("killed by user (t2 kill)".into());
        rec.ended_at = Some(now_rfc3339());
        rec.supervisor_pid = None;
        rec.jobmaster_pid = None;
        for w in &mut rec.workers {
            w.pid = None;
            if !matches!(
                w.state.as_str(),
                "COMPLETED" | "FAILED" | "KILLED" | "FULLY_FAILED"
            ) {
                w.state = "KILLED".into();
            }
        }
        dir.write_record(&rec)?;
    }
    if !left.is_empty() {
        return Err(LauncherError::Failed(format!(
            "job {job}: processes still alive after SIGKILL (groups or pids {left:?})"
        )));
    }
    crate::stdout::outln!("job {job} killed");
    Ok(())
}
