//! `t2 kill` signals only the job's own processes: a PID in the record that now belongs to
//! someone else (reused after a crash or a reboot) is left alone, while the job's orphaned
//! programs are still found and ended.

mod common;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(240);

/// A long-running stranger in its own process group whose command line says `t2`, like a
/// process that reused a PID of the job.
fn stranger(cwd: &Path) -> Child {
    Command::new("sh")
        .args(["-c", "sleep 120; :", "t2"])
        .current_dir(cwd)
        .env_remove("T2_JOB_ID")
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn a stranger")
}

/// The start time of `pid` in clock ticks (field 22 of /proc/PID/stat).
fn start_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

#[test]
fn kill_leaves_alone_processes_that_reused_the_jobs_pids() {
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let id = "crashed-abcd1234";
    let dir = home.path().join("jobs").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    // The job's supervisor, job master and agents died in a crash; their PIDs now belong to
    // strangers (one even looks like t2). The record still names them.
    let mut supervisor = stranger(elsewhere.path());
    let mut jobmaster = stranger(elsewhere.path());
    let mut agent = stranger(elsewhere.path());
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let record = serde_json::json!({
        "id": id, "name": "crashed", "cluster": "local", "state": "RUNNING",
        "reason": null, "num_workers": 1, "joined": 1, "package_sha256": "00",
        "submitted_at": "2026-01-01T00:00:00Z", "ended_at": null,
        "supervisor_pid": supervisor.id(),
        // The real supervisor started earlier than the process now holding its PID.
        "supervisor_mark": {"boot_id": boot.trim(), "start_ticks": start_ticks(supervisor.id()) - 1},
        "jobmaster_pid": jobmaster.id(), "jobmaster_addr": null,
        "workers": [{"id": 0, "state": "STARTED", "restart_count": 0, "pid": agent.id(), "exit_code": null}],
    });
    std::fs::write(dir.join("job.json"), record.to_string()).unwrap();

    let out = run_t2(home.path(), &["kill", id], Duration::from_secs(20));
    assert!(out.status.success(), "{}", text(&out));
    for (what, child) in [
        ("supervisor", &mut supervisor),
        ("job master", &mut jobmaster),
        ("agent", &mut agent),
    ] {
        assert!(
            child.try_wait().unwrap().is_none(),
            "t2 kill signalled the process that reused the {what}'s PID: {}",
            text(&out)
        );
    }
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("job.json")).unwrap()).unwrap();
    assert_eq!(rec["state"], "KILLED", "{rec}");
    for mut c in [supervisor, jobmaster, agent] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[test]
fn kill_after_a_crash_still_ends_the_jobs_orphaned_programs() {
    let home = tempfile::tempdir().unwrap();
    let job = shell_job(
        &home.path().join("src"),
        "name: orphans\nworkers: 2\ncommand: [./run.sh]\n",
        "#!/usr/bin/env bash\necho started; sleep 300\n",
    );
    let running = RunningJob::submit_detached(home.path(), &job, NO_ARGS, LONG);
    wait_until(
        Duration::from_secs(60),
        || {
            running.log("worker-0").contains("started")
                && running.log("worker-1").contains("started")
        },
        || format!("programs did not start\n{}", jobs_report(home.path())),
    );
    let programs: Vec<u32> = pids_in_home_mentioning(home.path(), "sleep 300");
    assert!(programs.len() >= 2, "{programs:?}");
    // A crash: the supervisor, the job master and the agents die at once; the programs are
    // left in the agents' (now leaderless) process groups.
    let rec = running.record().expect("record");
    let leaders: Vec<u64> = [
        rec["supervisor_pid"].as_u64(),
        rec["jobmaster_pid"].as_u64(),
    ]
    .into_iter()
    .flatten()
    .chain((0..2).map(|w| running.worker_pid(w)))
    .collect();
    for &pid in &leaders {
        let _ = sigkill(pid);
    }
    let leaders: Vec<u32> = leaders.iter().map(|&p| p as u32).collect();
    wait_all_gone(&leaders, Duration::from_secs(20), "the crashed processes");
    assert!(
        programs.iter().any(|&p| pid_alive(p)),
        "the programs should outlive the crash"
    );

    let out = run_t2(home.path(), &["kill", &running.id], Duration::from_secs(20));
    assert!(out.status.success(), "{}", text(&out));
    wait_all_gone(&programs, Duration::from_secs(20), "the job's programs");
    let rec = running.record().expect("record");
    assert_eq!(rec["state"], "KILLED", "{rec}");
}
