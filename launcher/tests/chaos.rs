//! Chaos: fault-tolerant 16-worker jobs run one after another while random SIGKILLs hit their
//! workers and their job master and the real ZooKeeper under them is killed and restarted.
//! Each job must still compute pi correctly and leave no process and no znode behind.
//!
//! The whole run lasts about `T2_CHAOS_SECONDS` (150 in the suite, so that it stays near five
//! minutes with its jobs' calm endings); `bench/soak/run SECONDS` runs the same for hours.

mod common;

use std::time::{Duration, Instant};

use common::zk::ZkServer;
use common::*;
use rand::Rng;

const WORKERS: u32 = 16;
/// Each job: this long under fire, then left alone to finish.
const FIRE: Duration = Duration::from_secs(30);
/// Extra time each worker computes (ms), so that a job outlives its time under fire.
const DELAY_MS: u32 = 8_000;
const LONG: Duration = Duration::from_secs(300);

/// What the chaos did to one job.
#[derive(Debug, Default)]
struct Blows {
    workers: u32,
    jobmaster: u32,
    zookeeper: u32,
}

/// Runs one job under fire for [`FIRE`], then to its end; checks the outcome.
fn one_job(zk: &mut ZkServer, rng: &mut impl Rng) -> Blows {
    // Kept on failure (the panic says where), so that the job's logs can be read.
    let dir = tempfile::Builder::new()
        .prefix("t2-chaos-")
        .tempdir()
        .unwrap();
    let home = Home(dir.keep());
    let mut args: Vec<String> = [
        "-D",
        "fault_tolerant=true",
        "-D",
        &format!("zookeeper.addresses={}", zk.address()),
        "-D",
        // Longer than a ZooKeeper restart takes on a loaded 2-core machine (its JVM took over
        // 10 s to serve again while the suite's Kubernetes control plane ran beside it), so
        // that the restart stays "within the sessions' timeout" as meant.
        "zookeeper.session_timeout=30s",
        "-D",
        "max_restarts=1000",
    ]
    .map(String::from)
    .to_vec();
    args.extend(slow_pi_args(WORKERS, DELAY_MS, 16_000_000));
    // The output goes to files: a pipe nobody reads during the chaos would fill up.
    let (out_path, err_path) = (home.path().join("out.txt"), home.path().join("err.txt"));
    let mut cmd = submit(home.path(), &repo().join("examples/pi"), &args);
    cmd.stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut guard = KillOnPanic {
        home: home.path().to_path_buf(),
        child: Some(cmd.spawn().expect("spawn t2 submit")),
    };
    let running = RunningJob::wait(home.path(), LONG);
    let mut blows = Blows::default();
    let mut jm = running.jobmaster_pid();
    let start = Instant::now();
    while start.elapsed() < FIRE {
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1200)));
        let Some(r) = running.record() else {
            continue;
        };
        assert_ne!(r["state"], "FAILED", "the job failed under chaos: {r}");
        if r["state"] != "RUNNING" {
            break;
        }
        // Random blows, with at least one ZooKeeper restart and one job master kill per job.
        let roll = if blows.zookeeper == 0 && start.elapsed() > FIRE / 3 {
            99
        } else if blows.jobmaster == 0 && start.elapsed() > FIRE / 2 {
            85
        } else {
            rng.random_range(0..100)
        };
        match roll {
            0..=79 => {
                let victim = rng.random_range(0..WORKERS as usize);
                if let Some(pid) = r["workers"][victim]["pid"].as_u64() {
                    if sigkill(pid).is_ok() {
                        blows.workers += 1;
                    }
                }
            }
            80..=91 => {
                if sigkill(jm).is_ok() {
                    blows.jobmaster += 1;
                    jm = running.next_jobmaster(jm, LONG);
                }
            }
            _ => {
                // ZooKeeper dies and comes back on the same port with its data, within the
                // sessions' timeout.
                zk.stop();
                std::thread::sleep(Duration::from_millis(rng.random_range(200..2000)));
                zk.restart();
                blows.zookeeper += 1;
            }
        }
    }
    let child = guard.child.take().expect("the submit is running");
    let out = wait_or_report(child, LONG, home.path());
    let all = format!(
        "{}{}",
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    assert!(
        out.status.success(),
        "the job did not complete after {blows:?}:\n{all}\n{}",
        jobs_report(home.path())
    );
    assert!(
        all.contains("pi ~= 3.14159265358"),
        "wrong result after {blows:?}:\n{all}"
    );
    running.assert_nothing_left();
    let left = zk.znodes_of(&running.id);
    assert!(left.is_empty(), "znodes left after {blows:?}: {left:?}");
    std::fs::remove_dir_all(home.path()).ok();
    blows
}

/// Ends the job of a failing test (as a user would, with `t2 kill`) and its `t2 submit`, so
/// that a failed run leaves no process behind; its folder stays for reading.
struct KillOnPanic {
    home: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        kill_jobs(&self.home);
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `t2 kill` of every job under `home`, each given 30 s; never panics (it runs while one
/// unwinds).
fn kill_jobs(home: &std::path::Path) {
    let Ok(ids) = std::fs::read_dir(home.join("jobs"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
    else {
        return;
    };
    for id in ids {
        let mut cmd = t2(home);
        cmd.arg("kill")
            .arg(&id)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let Ok(mut c) = cmd.spawn() else { continue };
        let start = Instant::now();
        while matches!(c.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A job's `$T2_HOME`, left in place when the test fails.
struct Home(std::path::PathBuf);

impl Home {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

/// [`wait`], but a job that outlives `deadline` fails the test with its record and logs.
fn wait_or_report(
    mut child: std::process::Child,
    deadline: Duration,
    home: &std::path::Path,
) -> std::process::Output {
    let start = Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > deadline {
            let report = jobs_report(home);
            // The job is ended the way a user would, then its `t2 submit`.
            kill_jobs(home);
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the job did not finish within {deadline:?}; its folder is kept in {}\n{}",
                home.display(),
                report
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn jobs_complete_correctly_under_random_kills_and_zookeeper_restarts() {
    let seconds: u64 = std::env::var("T2_CHAOS_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let mut zk = ZkServer::start();
    let mut rng = rand::rng();
    let start = Instant::now();
    let mut total = Blows::default();
    let mut jobs = 0;
    while jobs == 0 || start.elapsed() < Duration::from_secs(seconds) {
        let b = one_job(&mut zk, &mut rng);
        jobs += 1;
        eprintln!("chaos: job {jobs} completed correctly after {b:?}");
        total.workers += b.workers;
        total.jobmaster += b.jobmaster;
        total.zookeeper += b.zookeeper;
    }
    eprintln!(
        "chaos: {jobs} jobs of {WORKERS} workers in {:?}, all correct, nothing left: {total:?}",
        start.elapsed()
    );
    assert!(
        total.workers >= jobs && total.jobmaster >= jobs && total.zookeeper >= jobs,
        "the chaos hit too little: {total:?} over {jobs} jobs"
    );
}
