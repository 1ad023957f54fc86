//! Helpers for the end-to-end tests: run the real `t2` binary with its own `$T2_HOME`, with a
//! deadline on every run.
#![allow(dead_code)]

pub mod dash;
pub mod job;
pub mod zk;

pub use job::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo root")
}

/// A `t2` command using `home` as `$T2_HOME`.
pub fn t2(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_t2"));
    c.env("T2_HOME", home)
        .env_remove("RUST_LOG")
        .env("T2_CONF_DIR", repo().join("conf"));
    c
}

/// Runs to the end, killing it after `deadline`.
pub fn run(mut cmd: Command, deadline: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn t2");
    wait(child, deadline)
}

/// Waits for a child with a deadline; panics (after killing it) when it is exceeded.
pub fn wait(mut child: Child, deadline: Duration) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "t2 did not finish within {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// stdout and stderr together, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes a job folder with `job.yaml` and an executable `run.sh`.
pub fn shell_job(root: &Path, job_yaml: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("job.yaml"), job_yaml).unwrap();
    let run = root.join("run.sh");
    std::fs::write(&run, script).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    root.to_path_buf()
}

/// The only job under `home`.
pub fn only_job(home: &Path) -> serde_json::Value {
    let jobs = home.join("jobs");
    let mut entries: Vec<_> = std::fs::read_dir(&jobs)
        .expect("jobs dir")
        .flatten()
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "expected one job under {}",
        jobs.display()
    );
    let dir = entries.pop().unwrap().path();
    serde_json::from_str(&std::fs::read_to_string(dir.join("job.json")).unwrap()).unwrap()
}

/// Polls the only job's record until `pred` holds; panics with the job's record and logs when
/// the job ends first or `deadline` passes.
pub fn wait_for_record(
    home: &Path,
    deadline: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        if let Ok(jobs) = std::fs::read_dir(home.join("jobs")) {
            for e in jobs.flatten() {
                if let Ok(text) = std::fs::read_to_string(e.path().join("job.json")) {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                        if pred(&v) {
                            return v;
                        }
                        let state = v["state"].as_str().unwrap_or_default();
                        assert!(
                            !matches!(state, "COMPLETED" | "FAILED" | "KILLED"),
                            "the job ended before the awaited condition: {v}\n{}",
                            jobs_report(home)
                        );
                    }
                }
            }
        }
        assert!(
            start.elapsed() < deadline,
            "job record condition not met within {deadline:?}\n{}",
            jobs_report(home)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True when a process with this PID exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next()),
            Some("Z") | Some("X")
        ),
        Err(_) => false,
    }
}

/// Live processes whose command line contains `needle` and whose working directory is inside
/// `home` (a test's own `$T2_HOME`), so that other tests' processes running at the same time
/// are never counted.
pub fn pids_in_home_mentioning(home: &Path, needle: &str) -> Vec<u32> {
    let home = home.canonicalize().unwrap_or_else(|_| home.to_path_buf());
    pids_mentioning(needle)
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd"))
                .map(|cwd| cwd.starts_with(&home))
                .unwrap_or(false)
        })
        .collect()
}

/// Every live PID whose command line mentions `needle`.
pub fn pids_mentioning(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(needle)
                })
                .unwrap_or(false)
                && pid_alive(*pid)
        })
        .collect()
}

/// Parses the `2026-01-02T03:04:05.123456Z` timestamps of tracing's output.
pub fn parse_stamp(s: &str) -> std::time::SystemTime {
    let (date, time) = s.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<u64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let (y, m, day) = (d[0], d[1], d[2]);
    // days from civil (Howard Hinnant)
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = (era * 146_097 + doe - 719_468) as u64;
    let nanos: u64 = format!("{frac:0<9}")[..9].parse().unwrap();
    std::time::UNIX_EPOCH
        + Duration::from_secs(days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2])
        + Duration::from_nanos(nanos)
}

/// Submits `pkg` with `extra` (at most `deadline`); asserts a failure with exactly one stderr
/// line starting `error: ` and containing `want`, and that no job folder and no process is left.
pub fn assert_submit_rejected(pkg: &Path, extra: &[&str], want: &str, deadline: Duration) {
    let home = tempfile::tempdir().unwrap();
    let out = run(submit(home.path(), pkg, extra), deadline);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "{pkg:?} {extra:?} was accepted:\n{}",
        text(&out)
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(want),
        "want '{want}' in: {}",
        lines[0]
    );
    let jobs: Vec<_> = std::fs::read_dir(home.path().join("jobs"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(jobs.is_empty(), "left behind: {jobs:?}");
    assert!(
        pids_mentioning(home.path().to_str().unwrap()).is_empty(),
        "a process of the job is alive"
    );
}
