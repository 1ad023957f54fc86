//! How a local job ends when its submit's terminal goes away or someone kills it, and what
//! `t2 list/status/logs` say afterwards: a closed stdout and SIGHUP end the submit cleanly
//! with the job KILLED; `t2 kill` from another terminal lets the foreground submit say
//! `KILLED` and exit 3; final worker states; an orphaned job (supervisor SIGKILLed) is said;
//! `t2 logs -f` shows workers that `t2 scale` added.

mod common;

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const LONG: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(60);

/// A job whose `workers` workers print a line every 0.1 s for `seconds` seconds.
fn ticker(home: &Path, workers: u32, seconds: u32) -> PathBuf {
    shell_job(
        &home.join("src"),
        &format!("name: ticker\nworkers: {workers}\ncommand: [./run.sh]\n"),
        &format!(
            "#!/usr/bin/env bash\nfor i in $(seq 1 {}); do echo \"tick $T2_WORKER_ID $i\"; sleep 0.1; done\n",
            seconds * 10
        ),
    )
}

/// `t2 ARGS` with no kubeconfig anywhere, so that every job is local.
fn t2_local(home: &Path, args: &[&str]) -> Output {
    let mut c = t2(home);
    c.args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST");
    run(c, SHORT)
}

fn status_json(home: &Path, id: &str) -> serde_json::Value {
    let out = t2_local(home, &["status", id, "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)))
}

/// A pipe whose reading end is already closed: every write to the other end is EPIPE.
fn broken_pipe() -> OwnedFd {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    write
}

fn assert_no_panic(out: &Output) {
    let all = text(out);
    assert_ne!(out.status.code(), Some(101), "{all}");
    assert!(!all.contains("panicked"), "{all}");
}

#[test]
fn a_closed_stdout_ends_the_submit_and_the_job_is_recorded_killed() {
    let home = tempfile::tempdir().unwrap();
    let job = ticker(home.path(), 2, 120);
    let mut cmd = submit(home.path(), &job, NO_ARGS);
    cmd.stdout(Stdio::from(broken_pipe()))
        .stderr(Stdio::piped());
    let out = wait(cmd.spawn().unwrap(), LONG);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let rec = only_job(home.path());
    assert_eq!(rec["state"], "KILLED", "{rec}");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("output"),
        "{rec}"
    );
    assert_nothing_left(home.path(), rec["id"].as_str().unwrap());
}

#[test]
fn list_and_status_into_a_closed_pipe_do_not_panic() {
    let home = tempfile::tempdir().unwrap();
    let job = ticker(home.path(), 1, 1);
    let out = run(submit(home.path(), &job, NO_ARGS), LONG);
    assert!(out.status.success(), "{}", text(&out));
    let id = only_job(home.path())["id"].as_str().unwrap().to_string();
    for args in [vec!["list"], vec!["status", &id], vec!["logs", &id]] {
        let mut c = t2(home.path());
        c.args(&args).env("HOME", home.path());
        c.stdout(Stdio::from(broken_pipe())).stderr(Stdio::piped());
        let out = wait(c.spawn().unwrap(), SHORT);
        assert_no_panic(&out);
    }
}

#[test]
fn sighup_ends_the_submit_and_the_job_is_recorded_killed() {
    let home = tempfile::tempdir().unwrap();
    let job = ticker(home.path(), 2, 120);
    let child = spawn_submit(home.path(), &job, NO_ARGS);
    let running = RunningJob::wait(home.path(), LONG);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGHUP).unwrap();
    let out = wait(child, LONG);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let rec = only_job(home.path());
    assert_eq!(rec["state"], "KILLED", "{rec}");
    running.assert_nothing_left();
}

#[test]
fn t2_kill_lets_the_foreground_submit_say_killed_and_exit_3() {
    let home = tempfile::tempdir().unwrap();
    let job = ticker(home.path(), 3, 120);
    let child = spawn_submit(home.path(), &job, NO_ARGS);
    let running = RunningJob::wait(home.path(), LONG);
    let killed = t2_local(home.path(), &["kill", &running.id]);
    assert!(killed.status.success(), "{}", text(&killed));
    let out = wait(child, LONG);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let last = last_line(&out);
    assert!(
        last.starts_with(&format!("job {} KILLED", running.id)),
        "{last}"
    );
    running.assert_nothing_left();
    // Every worker's final state is KILLED, none still STARTED.
    let st = status_json(home.path(), &running.id);
    for w in st["workers"].as_array().unwrap() {
        assert_eq!(w["state"], "KILLED", "{st}");
        assert!(w["pid"].is_null(), "{st}");
    }
}

#[test]
fn ctrl_c_says_stopping_at_once_and_the_job_is_killed() {
    let home = tempfile::tempdir().unwrap();
    let job = ticker(home.path(), 2, 120);
    let child = spawn_submit(home.path(), &job, NO_ARGS);
    let running = RunningJob::wait(home.path(), LONG);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let out = wait(child, LONG);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("t2: stopping job {}…", running.id)),
        "{err}"
    );
    running.assert_nothing_left();
}

#[test]
fn final_worker_states_are_right() {
    let home = tempfile::tempdir().unwrap();
    let out = run(
        submit(
            home.path(),
            &repo().join("examples/shell"),
            &["--workers", "6"],
        ),
        LONG,
    );
    assert!(out.status.success(), "{}", text(&out));
    let id = only_job(home.path())["id"].as_str().unwrap().to_string();
    let st = status_json(home.path(), &id);
    for w in st["workers"].as_array().unwrap() {
        assert_eq!(w["state"], "COMPLETED", "{st}");
        assert_eq!(w["exit_code"], 0, "{st}");
    }
    // The workers' unpacked copies are gone; the logs and the record stay.
    let dir = home.path().join("jobs").join(&id);
    assert!(!dir.join("workers").exists(), "unpacked copies left");
    assert!(dir.join("logs/worker-5.log").is_file() && dir.join("job.json").is_file());

    let home = tempfile::tempdir().unwrap();
    let out = run(
        submit(home.path(), &repo().join("examples/fail"), NO_ARGS),
        LONG,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let id = only_job(home.path())["id"].as_str().unwrap().to_string();
    let st = status_json(home.path(), &id);
    let workers = st["workers"].as_array().unwrap();
    // The worker out of restarts is FULLY_FAILED (the job master's word for it) or FAILED; the
    // others were ended with the job. None is left STARTED or RESTARTED.
    let failed =
        |w: &serde_json::Value| matches!(w["state"].as_str(), Some("FAILED" | "FULLY_FAILED"));
    for w in workers {
        assert!(failed(w) || w["state"] == "KILLED", "{st}");
    }
    assert!(workers.iter().any(failed), "{st}");
}

#[test]
fn an_orphaned_job_is_detected_and_said() {
    let home = tempfile::tempdir().unwrap();
    let job = ticker(home.path(), 2, 300);
    let running = RunningJob::submit_detached(home.path(), &job, NO_ARGS, LONG);
    let sup = running.rec["supervisor_pid"].as_u64().unwrap();
    sigkill(sup).unwrap();
    wait_all_gone(&[sup as u32], SHORT, "the supervisor");
    let list = t2_local(home.path(), &["list"]);
    let row = String::from_utf8_lossy(&list.stdout)
        .lines()
        .find(|l| l.contains(&running.id))
        .unwrap_or_default()
        .to_string();
    assert!(row.contains("ORPHANED"), "{}", text(&list));
    let st = t2_local(home.path(), &["status", &running.id]);
    let s = text(&st);
    assert!(s.contains("state:     ORPHANED"), "{s}");
    assert!(s.contains(&format!("t2 kill {}", running.id)), "{s}");
    let json = status_json(home.path(), &running.id);
    assert_eq!(json["orphaned"], true, "{json}");
    let killed = t2_local(home.path(), &["kill", &running.id]);
    assert!(killed.status.success(), "{}", text(&killed));
    running.assert_nothing_left();
}

#[test]
fn logs_follow_shows_workers_added_by_scale() {
    let home = tempfile::tempdir().unwrap();
    let job = ticker(home.path(), 1, 12);
    let running = RunningJob::submit_detached(home.path(), &job, NO_ARGS, LONG);
    let mut follow = t2(home.path());
    follow
        .args(["logs", &running.id, "-f"])
        .env("HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut follower = follow.spawn().unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The follower has started once it printed worker 0's output.
    let first = rx.recv_timeout(SHORT).expect("no output from t2 logs -f");
    assert!(first.contains("tick 0"), "{first}");
    let scaled = t2_local(home.path(), &["scale", &running.id, "2"]);
    assert!(scaled.status.success(), "{}", text(&scaled));
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(LONG) {
            Ok(line) if line.contains("[worker-1] tick 1") => break true,
            Ok(line) => seen.push(line),
            Err(_) => break false,
        }
    };
    let _ = follower.kill();
    let _ = follower.wait();
    assert!(
        found,
        "t2 logs -f never showed worker 1:\n{}",
        seen.join("\n")
    );
    let _ = t2_local(home.path(), &["kill", &running.id]);
}

#[test]
fn delete_and_gc_remove_ended_local_jobs_only() {
    let home = tempfile::tempdir().unwrap();
    // The running job first: RunningJob::wait reads every job under the home.
    let slow = shell_job(
        &home.path().join("slow"),
        "name: slow\ncommand: [./run.sh]\n",
        "#!/bin/sh\nsleep 300\n",
    );
    let running = RunningJob::submit_detached(home.path(), &slow, NO_ARGS, LONG);
    let quick = ticker(home.path(), 1, 1);
    for _ in 0..2 {
        let out = run(submit(home.path(), &quick, NO_ARGS), LONG);
        assert!(out.status.success(), "{}", text(&out));
    }
    let ended: Vec<String> = std::fs::read_dir(home.path().join("jobs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|id| *id != running.id)
        .collect();
    assert_eq!(ended.len(), 2, "{ended:?}");
    let refused = t2_local(home.path(), &["delete", &running.id]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains(&format!("t2 kill {}", running.id)));
    let deleted = t2_local(home.path(), &["delete", &ended[0]]);
    assert!(deleted.status.success(), "{}", text(&deleted));
    assert!(!home.path().join("jobs").join(&ended[0]).exists());
    let dry = t2_local(home.path(), &["gc", "--dry-run"]);
    assert!(
        text(&dry).contains(&format!("would delete job {}", ended[1])),
        "{}",
        text(&dry)
    );
    assert!(home.path().join("jobs").join(&ended[1]).exists());
    let gc = t2_local(home.path(), &["gc"]);
    assert!(gc.status.success(), "{}", text(&gc));
    assert!(!home.path().join("jobs").join(&ended[1]).exists());
    assert!(
        running.dir().join("job.json").is_file(),
        "gc removed a running job"
    );
    let _ = t2_local(home.path(), &["kill", &running.id]);
}
