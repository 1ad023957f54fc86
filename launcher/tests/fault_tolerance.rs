//! Fault tolerance with a real ZooKeeper server and real processes killed with SIGKILL: workers
//! and the job master survive crashes, ZooKeeper outages are survived or fail the job clearly,
//! and nothing is left behind (processes or znodes).

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::zk::ZkServer;
use common::*;

const LONG: Duration = Duration::from_secs(240);

fn ft_args(zk: &ZkServer) -> Vec<String> {
    vec![
        "-D".into(),
        "fault_tolerant=true".into(),
        "-D".into(),
        format!("zookeeper.addresses={}", zk.address()),
        "-D".into(),
        "zookeeper.session_timeout=3s".into(),
    ]
}

#[test]
fn a_sigkilled_worker_restarts_from_zookeeper_and_the_others_hear_of_it() {
    let zk = ZkServer::start();
    let home = tempfile::tempdir().unwrap();
    let mut args = ft_args(&zk);
    args.extend(slow_pi_args(4, 3000, 4_000_000));
    let child = spawn_submit(home.path(), &repo().join("examples/pi"), &args);
    let job = RunningJob::wait(home.path(), LONG);
    std::thread::sleep(Duration::from_millis(500));
    let _ = sigkill(job.worker_pid(2));
    let out = wait(child, LONG);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("pi ~= 3.14159265358"), "{all}");
    assert!(
        all.contains(r#""event":"worker_failed","worker_id":2"#),
        "{all}"
    );
    assert!(
        all.contains(r#""event":"worker_restarted","worker_id":2,"restart_count":1"#),
        "{all}"
    );
    let rec = only_job(home.path());
    assert_eq!(rec["workers"][2]["restart_count"], 1);
    assert!(zk.znodes_of(&job.id).is_empty(), "znodes left");
}

/// A job whose workers pass two barriers; worker 0 (first barrier) and worker 1 (second) come
/// late, so a barrier is in progress whenever the job master is killed.
fn barrier_job(root: &std::path::Path) -> std::path::PathBuf {
    shell_job(
        root,
        "name: ft-barriers\nworkers: 3\ncommand: [./run.sh]\n",
        r#"#!/usr/bin/env bash
set -u
[ "$T2_WORKER_ID" = 0 ] && sleep 3
echo "barrier 1: $(t2 worker barrier --timeout 60s)"
[ "$T2_WORKER_ID" = 1 ] && sleep 3
echo "barrier 2: $(t2 worker barrier --timeout 60s)"
"#,
    )
}

#[test]
fn the_job_master_is_sigkilled_three_times_and_the_job_still_completes() {
    let zk = ZkServer::start();
    let home = tempfile::tempdir().unwrap();
    let job = barrier_job(&home.path().join("src"));
    let child = spawn_submit(home.path(), &job, &ft_args(&zk));
    let running = RunningJob::wait(home.path(), LONG);
    let mut jm = running.jobmaster_pid();
    let mut kills = Vec::new();
    for pause in [1000, 1500, 2500] {
        std::thread::sleep(Duration::from_millis(pause));
        kills.push(SystemTime::now());
        let _ = sigkill(jm);
        jm = running.next_jobmaster(jm, LONG);
    }
    let out = wait(child, LONG);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for n in [1, 2] {
        let ok = all
            .lines()
            .filter(|l| l.ends_with(&format!("barrier {n}: SUCCESS")))
            .count();
        assert_eq!(ok, 3, "barrier {n}:\n{all}");
    }
    let log = running.log("jobmaster");
    assert_eq!(
        log.matches("job master restarted; state restored").count(),
        3,
        "{log}"
    );
    // Recovery time: kill -> all workers reconnected (printed for BENCHMARKS.md, not asserted).
    let reconnected: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("all workers reconnected after the job master restart"))
        .collect();
    assert_eq!(reconnected.len(), 3, "{log}");
    for (kill_at, line) in kills.iter().zip(&reconnected) {
        let at = parse_stamp(line.split_whitespace().next().unwrap());
        eprintln!(
            "RECOVERY kill -> all workers reconnected: {:?}",
            at.duration_since(*kill_at).unwrap_or_default()
        );
    }
    assert!(zk.znodes_of(&running.id).is_empty(), "znodes left");
    running.assert_nothing_left();
}

#[test]
fn a_short_zookeeper_outage_is_survived() {
    let mut zk = ZkServer::start();
    let home = tempfile::tempdir().unwrap();
    let job = shell_job(
        &home.path().join("src"),
        "name: zk-blip\nworkers: 2\ncommand: [./run.sh]\n",
        "#!/usr/bin/env bash\nsleep 5\necho \"after the outage: $(t2 worker barrier)\"\n",
    );
    let mut args = ft_args(&zk);
    args[5] = "zookeeper.session_timeout=6s".into();
    let child = spawn_submit(home.path(), &job, &args);
    RunningJob::wait(home.path(), LONG);
    zk.stop();
    std::thread::sleep(Duration::from_millis(1500));
    zk.restart();
    let out = wait(child, LONG);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert_eq!(all.matches("after the outage: SUCCESS").count(), 2, "{all}");
}

#[test]
fn agents_whose_zookeeper_session_expired_during_a_job_master_restart_open_a_new_one() {
    // ZooKeeper is away for longer than the sessions' timeout while the job master is SIGKILLed:
    // the agents' sessions expire (they never come back), so each must open a new session to
    // find the restarted job master, and announce its liveness znode again.
    let mut zk = ZkServer::start();
    let home = tempfile::tempdir().unwrap();
    let job = shell_job(
        &home.path().join("src"),
        "name: zk-expired\nworkers: 2\ncommand: [./run.sh]\n",
        "#!/usr/bin/env bash\nsleep 12\necho \"after the outage: $(t2 worker barrier)\"\n",
    );
    let mut args = ft_args(&zk);
    args[5] = "zookeeper.session_timeout=2s".into();
    let child = spawn_submit(home.path(), &job, &args);
    let running = RunningJob::wait(home.path(), LONG);
    let jm = running.jobmaster_pid();
    zk.stop();
    let _ = sigkill(jm);
    std::thread::sleep(Duration::from_secs(6));
    zk.restart();
    let out = wait(child, LONG);
    let all = text(&out);
    assert!(out.status.success(), "{all}\n{}", jobs_report(home.path()));
    assert_eq!(all.matches("after the outage: SUCCESS").count(), 2, "{all}");
    for w in 0..2 {
        let log = running.log(&format!("worker-{w}"));
        assert!(
            log.contains("the ZooKeeper session had expired; using a new one"),
            "worker {w} did not renew its session:\n{log}"
        );
    }
    assert!(zk.znodes_of(&running.id).is_empty(), "znodes left");
    running.assert_nothing_left();
}

#[test]
fn a_long_zookeeper_outage_fails_the_job_naming_zookeeper() {
    let mut zk = ZkServer::start();
    let home = tempfile::tempdir().unwrap();
    let job = shell_job(
        &home.path().join("src"),
        "name: zk-gone\nworkers: 2\ncommand: [./run.sh]\n",
        "#!/usr/bin/env bash\nsleep 120\n",
    );
    let child = spawn_submit(home.path(), &job, &ft_args(&zk));
    RunningJob::wait(home.path(), LONG);
    let stopped = Instant::now();
    zk.stop();
    let out = wait(child, Duration::from_secs(60));
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    let last = last_line(&out);
    assert!(
        last.contains("FAILED") && last.contains("ZooKeeper"),
        "{all}"
    );
    assert!(stopped.elapsed() < Duration::from_secs(60));
    assert_eq!(only_job(home.path())["state"], "FAILED");
}

#[test]
fn without_fault_tolerance_a_jobmaster_crash_fails_the_job_clearly() {
    let home = tempfile::tempdir().unwrap();
    let job = shell_job(
        &home.path().join("src"),
        "name: fragile\nworkers: 2\ncommand: [./run.sh]\n",
        "#!/usr/bin/env bash\nsleep 120\n",
    );
    let child = spawn_submit(home.path(), &job, NO_ARGS);
    let running = RunningJob::wait(home.path(), LONG);
    let _ = sigkill(running.jobmaster_pid());
    let out = wait(child, Duration::from_secs(30));
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    let last = last_line(&out);
    assert!(
        last.contains("FAILED")
            && last.contains("job master was killed")
            && last.contains("not fault tolerant"),
        "{last}"
    );
    running.assert_nothing_left();
}

#[test]
fn soak_twenty_worker_kills_and_three_jobmaster_kills() {
    use rand::Rng;
    let zk = ZkServer::start();
    let home = tempfile::tempdir().unwrap();
    let mut args = ft_args(&zk);
    args.extend(["-D", "max_restarts=40"].map(String::from));
    args.extend(slow_pi_args(4, 2500, 2_000_000));
    let child = spawn_submit(home.path(), &repo().join("examples/pi"), &args);
    let running = RunningJob::wait(home.path(), LONG);
    let mut rng = rand::rng();
    let (mut worker_kills, mut jm_kills) = (0, 0);
    let mut jm = running.jobmaster_pid();
    while worker_kills < 20 || jm_kills < 3 {
        std::thread::sleep(Duration::from_millis(rng.random_range(150..400)));
        if jm_kills < 3
            && (worker_kills == 5 || worker_kills == 11 || worker_kills == 17)
            && jm_kills < worker_kills / 5
        {
            let _ = sigkill(jm);
            jm = running.next_jobmaster(jm, LONG);
            jm_kills += 1;
            continue;
        }
        let Some(r) = running.record() else {
            continue;
        };
        assert_ne!(r["state"], "FAILED", "{r}");
        let victim = rng.random_range(0..4usize);
        if let Some(pid) = r["workers"][victim]["pid"].as_u64() {
            let _ = sigkill(pid);
            worker_kills += 1;
        }
    }
    let out = wait(child, LONG);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("pi ~= 3.14159265358"), "{all}");
    running.assert_nothing_left();
    assert!(zk.znodes_of(&running.id).is_empty(), "znodes left");
}

#[test]
fn workers_wait_on_the_init_barrier_until_a_restarted_one_is_back() {
    let zk = ZkServer::start();
    let home = tempfile::tempdir().unwrap();
    let job = shell_job(
        &home.path().join("src"),
        "name: init-barrier\nworkers: 3\ncommand: [./run.sh]\n",
        r#"#!/usr/bin/env bash
if [ "$T2_WORKER_ID" = 2 ] && [ "$T2_RESTART_COUNT" = 0 ]; then sleep 1; echo "worker 2 crashing"; exit 1; fi
echo "init barrier (restart $T2_RESTART_COUNT): $(t2 worker barrier --init --timeout 60s)"
"#,
    );
    let out = wait(spawn_submit(home.path(), &job, &ft_args(&zk)), LONG);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("[worker-2] worker 2 crashing"), "{all}");
    assert_eq!(
        all.matches("init barrier (restart 0): SUCCESS").count(),
        2,
        "{all}"
    );
    assert!(
        all.contains("[worker-2] init barrier (restart 1): SUCCESS"),
        "{all}"
    );
}
