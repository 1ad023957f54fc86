//! MPI jobs end to end with the real `t2`, Debian's OpenMPI (`mpirun`, `orted`, `mpicc`) and
//! real processes: worker 0's agent runs mpirun, and every worker's `orted` is started by
//! that worker's t2 agent (checked in the process tree: not by ssh, not forked by mpirun).
//! A crashing rank fails the job with mpirun's own message; `t2 kill` and a SIGKILLed agent
//! leave no MPI process (checked in /proc).

mod common;
// The /proc reader of the Kubernetes tests' runtime (self-contained; not all of it is used here).
#[path = "kube_real_support/procs.rs"]
#[allow(dead_code)]
mod procs;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use procs::{all_procs, Proc};

const LONG: Duration = Duration::from_secs(240);

/// A copy of `examples/mpi-allreduce` in `dir` (each test builds its own binary there).
fn example(dir: &Path) -> PathBuf {
    let src = repo().join("examples/mpi-allreduce");
    let dst = dir.join("mpi-allreduce");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["job.yaml", "allreduce.c"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

/// The processes whose environment says they work for a job under `home`.
fn job_procs(home: &Path) -> Vec<Proc> {
    let prefix = home.display().to_string();
    all_procs()
        .into_iter()
        .filter(|p| {
            p.env
                .get("T2_WORK_DIR")
                .is_some_and(|d| d.starts_with(&prefix))
        })
        .collect()
}

/// Waits until `n` orteds and `ranks` ranks of the job under `home` run; returns the snapshot.
fn wait_for_mpi(home: &Path, n: usize, ranks: usize) -> Vec<Proc> {
    let mut snapshot = Vec::new();
    wait_until(
        LONG,
        || {
            snapshot = job_procs(home);
            let orteds = snapshot.iter().filter(|p| p.name == "orted").count();
            let rank_count = snapshot.iter().filter(|p| p.name == "allreduce").count();
            orteds == n && rank_count == ranks
        },
        || format!("not {n} orteds and {ranks} ranks\n{}", jobs_report(home)),
    );
    snapshot
}

/// Asserts that no process of a job under `home` is left (MPI daemons and ranks included).
fn assert_no_mpi_left(home: &Path) {
    let left: Vec<String> = job_procs(home)
        .iter()
        .map(|p| format!("{} {} ({})", p.pid, p.name, p.cmdline))
        .collect();
    let named: Vec<String> = all_procs()
        .into_iter()
        .filter(|p| p.cmdline.contains(&home.display().to_string()))
        .map(|p| format!("{} {} ({})", p.pid, p.name, p.cmdline))
        .collect();
    assert!(
        left.is_empty() && named.is_empty(),
        "MPI processes left: {left:?} {named:?}\n{}",
        jobs_report(home)
    );
}

#[test]
fn eight_ranks_on_four_workers_sum_right_and_every_orted_was_started_by_its_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let pkg = example(tmp.path());
    // Each rank waits 3 s before the allreduce, so the process tree can be looked at.
    let child = spawn_submit(
        &home,
        &pkg,
        &[
            "--workers",
            "4",
            "-D",
            "mpi.slots_per_worker=2",
            "-D",
            "env.HOLD_SECONDS=3",
        ],
    );
    let snapshot = wait_for_mpi(&home, 4, 8);
    let by_pid: BTreeMap<u32, &Proc> = snapshot.iter().map(|p| (p.pid, p)).collect();
    let procs = all_procs();
    let any: BTreeMap<u32, &Proc> = procs.iter().map(|p| (p.pid, p)).collect();
    let mut daemon_workers = BTreeSet::new();
    for orted in snapshot.iter().filter(|p| p.name == "orted") {
        // orted's parent is the `/bin/sh -c` its agent ran, whose parent is that agent.
        let sh = any.get(&orted.ppid).expect("orted's parent");
        assert_eq!(
            sh.name, "sh",
            "orted {} was not started by a shell: {sh:?}",
            orted.pid
        );
        let agent = any.get(&sh.ppid).expect("the shell's parent");
        assert!(
            agent.cmdline.contains("worker agent"),
            "orted {}'s shell was started by {:?}, not a t2 agent",
            orted.pid,
            agent.cmdline
        );
        let worker = orted.env.get("T2_WORKER_ID").cloned().unwrap_or_default();
        assert!(
            agent.cmdline.contains(&format!("--worker-id {worker} ")),
            "orted of worker {worker} started by {:?}",
            agent.cmdline
        );
        // Nothing between it and its agent is ssh or mpirun.
        for p in [orted, *sh] {
            assert!(
                !p.cmdline.contains("ssh") && !p.cmdline.contains("mpirun"),
                "{p:?}"
            );
        }
        daemon_workers.insert(worker);
    }
    assert_eq!(
        daemon_workers,
        ["0", "1", "2", "3"].map(String::from).into(),
        "one orted per worker"
    );
    // Every rank is a child of an orted, none of mpirun.
    for rank in snapshot.iter().filter(|p| p.name == "allreduce") {
        let parent = by_pid.get(&rank.ppid).map(|p| p.name.as_str());
        assert_eq!(
            parent,
            Some("orted"),
            "rank {} has parent {parent:?}",
            rank.pid
        );
    }
    let mpirun: Vec<&Proc> = snapshot.iter().filter(|p| p.name == "mpirun").collect();
    assert_eq!(mpirun.len(), 1, "{snapshot:?}");
    assert_eq!(
        mpirun[0].env.get("T2_WORKER_ID").map(String::as_str),
        Some("0")
    );

    let out = wait(child, LONG);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("allreduce over 8 ranks: sum = 36 (expected 36) OK"),
        "{all}"
    );
    // Ranks 2w and 2w+1 ran on worker w.
    for r in 0..8 {
        assert!(
            all.contains(&format!("rank {r} of 8 on t2 worker {}", r / 2)),
            "rank {r}:\n{all}"
        );
    }
    let rec = only_job(&home);
    assert_eq!(rec["state"], "COMPLETED", "{rec}");
    assert_no_mpi_left(&home);
}

#[test]
fn with_tls_mpiruns_daemons_are_started_over_the_agents_tls_relay() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let pkg = example(tmp.path());
    let out = run(
        submit(
            &home,
            &pkg,
            &[
                "--workers",
                "3",
                "-D",
                "mpi.slots_per_worker=2",
                "-D",
                "tls=true",
            ],
        ),
        LONG,
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("allreduce over 6 ranks: sum = 21 (expected 21) OK"),
        "{all}"
    );
    let rec = only_job(&home);
    assert_eq!(rec["state"], "COMPLETED", "{rec}");
    // The agents served their service with the agents' certificate, kept private.
    let dir = home.join("jobs").join(rec["id"].as_str().unwrap());
    for f in ["agent.crt", "agent.key"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    assert!(std::fs::read_to_string(dir.join("agent.crt"))
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    assert_no_mpi_left(&home);
}

#[test]
fn a_crashing_rank_fails_the_job_with_mpiruns_own_message() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let pkg = example(tmp.path());
    let out = run(
        submit(
            &home,
            &pkg,
            &[
                "--workers",
                "3",
                "-D",
                "mpi.slots_per_worker=2",
                "-D",
                "env.CRASH_RANK=3",
            ],
        ),
        LONG,
    );
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let rec = only_job(&home);
    assert_eq!(rec["state"], "FAILED", "{rec}");
    let reason = rec["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("worker 0 (mpirun) exited with code")
            && reason.contains("mpirun noticed that process rank 3")
            && reason.contains("Segmentation fault"),
        "reason: {reason}\n{all}"
    );
    // mpirun's exit code for a rank killed by SIGSEGV is 128 + 11.
    assert!(reason.contains("exited with code 139"), "reason: {reason}");
    assert_no_mpi_left(&home);
}

#[test]
fn t2_kill_leaves_no_mpi_process() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let pkg = example(tmp.path());
    let job = RunningJob::submit_detached(
        &home,
        &pkg,
        &["--workers", "3", "-D", "env.HOLD_SECONDS=120"],
        LONG,
    );
    wait_for_mpi(&home, 3, 3);
    let out = run_t2(&home, &["kill", &job.id], LONG);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_mpi_left(&home);
    let rec = job.record().expect("record");
    assert_eq!(rec["state"], "KILLED", "{rec}");
}

#[test]
fn a_sigkilled_agent_fails_the_mpi_job_and_nothing_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let pkg = example(tmp.path());
    let child = spawn_submit(
        &home,
        &pkg,
        &["--workers", "3", "-D", "env.HOLD_SECONDS=120"],
    );
    wait_for_mpi(&home, 3, 3);
    let job = RunningJob::wait(&home, LONG);
    // Worker 2's agent dies at once; its orted and rank are orphaned.
    sigkill(job.worker_pid(2)).expect("kill worker 2's agent");
    let out = wait(child, LONG);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let rec = only_job(&home);
    assert_eq!(rec["state"], "FAILED", "{rec}");
    assert_no_mpi_left(&home);
}
