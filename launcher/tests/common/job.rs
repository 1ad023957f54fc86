//! A job run by the real `t2` in a private `$T2_HOME`: submit it, wait for its record to reach
//! a state, find and SIGKILL its processes, and check that none is left.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{pid_alive, pids_mentioning, run, t2, text, wait_for_record};

/// No extra arguments, for [`submit`] and its kin.
pub const NO_ARGS: &[&str] = &[];

/// `t2 submit local PKG ARGS…` with `home` as `$T2_HOME`, not started yet.
pub fn submit(home: &Path, pkg: &Path, args: &[impl AsRef<OsStr>]) -> Command {
    let mut cmd = t2(home);
    cmd.args(["submit", "local"]).arg(pkg).args(args);
    cmd
}

/// Starts `t2 submit local PKG ARGS…` in the foreground, its output piped (for [`super::wait`]).
pub fn spawn_submit(home: &Path, pkg: &Path, args: &[impl AsRef<OsStr>]) -> Child {
    let mut cmd = submit(home, pkg, args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().expect("spawn t2 submit")
}

/// The arguments that run `examples/pi` on `workers` workers long enough to kill some of them
/// meanwhile: each spends `delay_ms` more computing, and the sum has `intervals` intervals.
pub fn slow_pi_args(workers: u32, delay_ms: u32, intervals: u64) -> Vec<String> {
    vec![
        "--workers".into(),
        workers.to_string(),
        "-D".into(),
        format!("config.delay_ms={delay_ms}"),
        "-D".into(),
        format!("config.intervals={intervals}"),
    ]
}

/// Runs `t2 ARGS…` with `home` as `$T2_HOME` to the end, killing it after `deadline`.
pub fn run_t2(home: &Path, args: &[impl AsRef<OsStr>], deadline: Duration) -> Output {
    let mut cmd = t2(home);
    cmd.args(args);
    run(cmd, deadline)
}

/// The last line `t2` printed on stdout (where `t2 submit` says how the job ended).
pub fn last_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// Polls `done` until it holds; panics with `what()` once `deadline` has passed.
pub fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < deadline,
            "{} (waited {deadline:?})",
            what()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGKILL to `pid`; the error says when there was no such process.
pub fn sigkill(pid: u64) -> nix::Result<()> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
}

/// The file `logs/NAME.log` of job `id` under `home` (`jobmaster`, `worker-1`, …); empty
/// while it does not exist yet.
pub fn job_log(home: &Path, id: &str, name: &str) -> String {
    std::fs::read_to_string(
        home.join("jobs")
            .join(id)
            .join("logs")
            .join(format!("{name}.log")),
    )
    .unwrap_or_default()
}

/// Every job's record and the last lines of each of its logs, for failure messages.
pub fn jobs_report(home: &Path) -> String {
    let mut out = String::new();
    let Ok(jobs) = std::fs::read_dir(home.join("jobs")) else {
        return format!("no jobs folder under {}", home.display());
    };
    for job in jobs.flatten() {
        let dir = job.path();
        let record = std::fs::read_to_string(dir.join("job.json")).unwrap_or_default();
        out += &format!("== {}/job.json\n{record}\n", dir.display());
        let mut logs: Vec<PathBuf> = std::fs::read_dir(dir.join("logs"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            out += &format!("== {} (last {} lines)\n", log.display(), tail.len());
            for l in tail {
                out += l;
                out.push('\n');
            }
        }
    }
    out
}

/// The only job under a `$T2_HOME`, once its record said RUNNING.
pub struct RunningJob {
    /// The `$T2_HOME` it runs under.
    pub home: PathBuf,
    /// Its ID.
    pub id: String,
    /// Its record (`job.json`) when it was RUNNING.
    pub rec: serde_json::Value,
}

impl RunningJob {
    /// Waits up to `deadline` for the job under `home` to be RUNNING; panics with its record and
    /// logs when it ends first or the deadline passes.
    pub fn wait(home: &Path, deadline: Duration) -> Self {
        let rec = wait_for_record(home, deadline, |r| r["state"] == "RUNNING");
        RunningJob {
            home: home.to_path_buf(),
            id: rec["id"]
                .as_str()
                .expect("job ID in the record")
                .to_string(),
            rec,
        }
    }

    /// Submits `PKG ARGS…` with `--detach`, asserts that `t2` printed the job's ID and
    /// exited 0, and waits (up to `deadline` each) for the job to be RUNNING.
    pub fn submit_detached(
        home: &Path,
        pkg: &Path,
        args: &[impl AsRef<OsStr>],
        deadline: Duration,
    ) -> Self {
        let mut cmd = submit(home, pkg, args);
        cmd.arg("--detach");
        let out = run(cmd, deadline);
        assert!(out.status.success(), "{}", text(&out));
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let job = Self::wait(home, deadline);
        assert_eq!(job.id, id, "t2 submit --detach printed another ID");
        job
    }

    /// The job's folder, `$T2_HOME/jobs/ID`.
    pub fn dir(&self) -> PathBuf {
        self.home.join("jobs").join(&self.id)
    }

    /// The agent PID of worker `w` in the RUNNING record.
    pub fn worker_pid(&self, w: usize) -> u64 {
        self.rec["workers"][w]["pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("no PID for worker {w}: {}", self.rec))
    }

    /// The job master's PID in the RUNNING record.
    pub fn jobmaster_pid(&self) -> u64 {
        self.rec["jobmaster_pid"]
            .as_u64()
            .unwrap_or_else(|| panic!("no job master PID: {}", self.rec))
    }

    /// Every PID of the job: the record's agents, job master and supervisor, and each live
    /// process whose command line names the job's folder.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.rec["workers"]
            .as_array()
            .expect("workers in the record")
            .iter()
            .filter_map(|w| w["pid"].as_u64())
            .chain(self.rec["jobmaster_pid"].as_u64())
            .chain(self.rec["supervisor_pid"].as_u64())
            .map(|p| p as u32)
            .collect();
        pids.extend(pids_mentioning(&self.dir().display().to_string()));
        pids
    }

    /// The current record, or `None` while it cannot be read (being rewritten).
    pub fn record(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir().join("job.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Waits up to `deadline` for the record to name a job master other than `old` (one
    /// started again after a kill), and returns its PID.
    pub fn next_jobmaster(&self, old: u64, deadline: Duration) -> u64 {
        let rec = wait_for_record(&self.home, deadline, |r| {
            r["jobmaster_pid"].as_u64().is_some_and(|p| p != old)
        });
        rec["jobmaster_pid"].as_u64().expect("checked above")
    }

    /// The job's `logs/NAME.log` (see [`job_log`]).
    pub fn log(&self, name: &str) -> String {
        job_log(&self.home, &self.id, name)
    }

    /// Asserts that no process names the job's folder any more.
    pub fn assert_nothing_left(&self) {
        assert_nothing_left(&self.home, &self.id);
    }
}

/// Asserts that no live process names the folder of job `id` under `home`.
pub fn assert_nothing_left(home: &Path, id: &str) {
    let left = pids_mentioning(&home.join("jobs").join(id).display().to_string());
    assert!(
        left.is_empty(),
        "processes of job {id} are left: {left:?}\n{}",
        jobs_report(home)
    );
}

/// Waits up to `deadline` for every one of `pids` (`what`, for the failure message) to be gone.
pub fn wait_all_gone(pids: &[u32], deadline: Duration, what: &str) {
    let alive = || -> Vec<u32> { pids.iter().copied().filter(|&p| pid_alive(p)).collect() };
    wait_until(
        deadline,
        || alive().is_empty(),
        || format!("{what} still alive: {:?}", alive()),
    );
}
