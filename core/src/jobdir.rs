//! Where jobs live on the local machine (`$T2_HOME/jobs/<job-id>/`) and the job record that
//! `t2 list`, `t2 status`, `t2 logs` and `t2 kill` read from another terminal.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors reading or writing job directories.
#[derive(Debug, Error)]
pub enum JobDirError {
    /// No job with that ID under `$T2_HOME`.
    #[error("no job '{id}' under {home} (see 't2 list')")]
    NoSuchJob {
        /// The job ID.
        id: String,
        /// The jobs folder searched.
        home: String,
    },
    /// Neither `$T2_HOME` nor `$HOME` is set.
    #[error("cannot find a home for t2: set T2_HOME or HOME")]
    NoHome,
    /// I/O with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A record that does not parse.
    #[error("{path}: corrupt job record: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
}

/// `$T2_HOME`, or `~/.t2`.
pub fn t2_home() -> Result<PathBuf, JobDirError> {
    if let Some(h) = std::env::var_os("T2_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(h));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".t2"))
        .ok_or(JobDirError::NoHome)
}

/// The state of a job as recorded on disk (mirrors the job master's `JobState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordedState {
    /// Processes being started, workers joining.
    Starting,
    /// All workers joined at least once.
    Running,
    /// Every worker completed.
    Completed,
    /// A worker failed past its restarts, or the job master failed.
    Failed,
    /// Killed by a user.
    Killed,
}

impl RecordedState {
    /// True for COMPLETED, FAILED and KILLED.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Killed)
    }
}

impl std::fmt::Display for RecordedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        };
        f.write_str(s)
    }
}

/// One worker as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Worker ID.
    pub id: u32,
    /// Latest worker state name (STARTED, RESTARTED, COMPLETED, FAILED, ...).
    pub state: String,
    /// Restarts so far.
    pub restart_count: u32,
    /// Process ID of the current agent, if running.
    pub pid: Option<u32>,
    /// Exit code of the last run, if it ended.
    pub exit_code: Option<i32>,
}

/// What identifies one process across PID reuse: the boot it runs in and when it started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessMark {
    /// `/proc/sys/kernel/random/boot_id` when it was recorded.
    pub boot_id: String,
    /// Its start time in clock ticks after boot (field 22 of `/proc/PID/stat`).
    pub start_ticks: u64,
}

/// The on-disk record of a local job (`job.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Job ID.
    pub id: String,
    /// Sanitised job name.
    pub name: String,
    /// Cluster (`local`).
    pub cluster: String,
    /// Current state.
    pub state: RecordedState,
    /// Why it ended, for FAILED and KILLED.
    pub reason: Option<String>,
    /// Number of workers.
    pub num_workers: u32,
    /// Workers that have joined.
    pub joined: u32,
    /// Package ID.
    pub package_sha256: String,
    /// Submit time, RFC 3339.
    pub submitted_at: String,
    /// End time, RFC 3339.
    pub ended_at: Option<String>,
    /// PID of the supervisor (the `t2 submit` process or its detached twin).
    pub supervisor_pid: Option<u32>,
    /// Which process `supervisor_pid` is (start time and boot), so that `t2 kill` never
    /// signals a process that reused the PID after a crash or a reboot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor_mark: Option<ProcessMark>,
    /// PID of the job master.
    pub jobmaster_pid: Option<u32>,
    /// Job master address (`http://127.0.0.1:PORT`).
    pub jobmaster_addr: Option<String>,
    /// Workers.
    pub workers: Vec<WorkerRecord>,
}

/// The folder of one job and the files in it.
#[derive(Debug, Clone)]
pub struct JobDir {
    root: PathBuf,
}

impl JobDir {
    /// The folder of job `id` under `home` (not created).
    pub fn new(home: &Path, id: &str) -> Self {
        Self {
            root: home.join("jobs").join(id),
        }
    }

    /// An existing job's folder, or [`JobDirError::NoSuchJob`].
    pub fn existing(home: &Path, id: &str) -> Result<Self, JobDirError> {
        let dir = Self::new(home, id);
        if dir.record_path().is_file() {
            Ok(dir)
        } else {
            Err(JobDirError::NoSuchJob {
                id: id.to_string(),
                home: home.join("jobs").display().to_string(),
            })
        }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `job.json`.
    pub fn record_path(&self) -> PathBuf {
        self.root.join("job.json")
    }
    /// The package file.
    pub fn package_path(&self) -> PathBuf {
        self.root.join("package.tar.gz")
    }
    /// The merged job spec, as JSON.
    pub fn spec_path(&self) -> PathBuf {
        self.root.join("spec.json")
    }
    /// The job token (mode 0600).
    pub fn token_path(&self) -> PathBuf {
        self.root.join("token")
    }
    /// Logs folder.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// Log of worker `id`.
    pub fn worker_log(&self, id: u32) -> PathBuf {
        self.logs_dir().join(format!("worker-{id}.log"))
    }
    /// Log of the job master.
    pub fn jobmaster_log(&self) -> PathBuf {
        self.logs_dir().join("jobmaster.log")
    }
    /// Working folder of worker `id` (the package is unpacked here).
    pub fn worker_dir(&self, id: u32) -> PathBuf {
        self.root.join("workers").join(format!("worker-{id}"))
    }

    /// Reads `job.json`.
    pub fn read_record(&self) -> Result<JobRecord, JobDirError> {
        let path = self.record_path();
        let text = std::fs::read_to_string(&path).map_err(|source| JobDirError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| JobDirError::Corrupt {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Writes `job.json` atomically (temporary file, then rename), so readers never see half.
    /// The temporary file's name is unique to this process and call: the supervisor and
    /// `t2 kill` (another process) may write at the same time, and each rename then installs
    /// one whole record, never a mix of the two.
    pub fn write_record(&self, record: &JobRecord) -> Result<(), JobDirError> {
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let path = self.record_path();
        let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .root
            .join(format!(".job.json.{}.{serial}.tmp", std::process::id()));
        let io = |source| JobDirError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = serde_json::to_string_pretty(record).map_err(|e| JobDirError::Corrupt {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let written = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written.map_err(io)
    }
}

/// Every job under `home`, newest first; unreadable records are skipped.
pub fn list_jobs(home: &Path) -> Vec<JobRecord> {
    let Ok(entries) = std::fs::read_dir(home.join("jobs")) else {
        return Vec::new();
    };
    let mut jobs: Vec<JobRecord> = entries
        .flatten()
        .filter_map(|e| {
            let id = e.file_name().to_string_lossy().to_string();
            JobDir::new(home, &id).read_record().ok()
        })
        .collect();
    jobs.sort_by(|a, b| b.submitted_at.cmp(&a.submitted_at));
    jobs
}

/// Now, as RFC 3339 UTC with seconds (no extra dependency).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = crate::calendar::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_and_missing_job() {
        let home = tempfile::tempdir().unwrap();
        assert!(matches!(
            JobDir::existing(home.path(), "nope-1"),
            Err(JobDirError::NoSuchJob { .. })
        ));
        let dir = JobDir::new(home.path(), "pi-abc");
        std::fs::create_dir_all(dir.root()).unwrap();
        let rec = JobRecord {
            id: "pi-abc".into(),
            name: "pi".into(),
            cluster: "local".into(),
            state: RecordedState::Running,
            reason: None,
            num_workers: 2,
            joined: 2,
            package_sha256: "00".into(),
            submitted_at: now_rfc3339(),
            ended_at: None,
            supervisor_pid: Some(1),
            supervisor_mark: None,
            jobmaster_pid: None,
            jobmaster_addr: None,
            workers: vec![],
        };
        dir.write_record(&rec).unwrap();
        assert_eq!(
            JobDir::existing(home.path(), "pi-abc")
                .unwrap()
                .read_record()
                .unwrap(),
            rec
        );
        assert_eq!(list_jobs(home.path()).len(), 1);
    }

    #[test]
    fn concurrent_writers_never_mix_or_lose_the_record() {
        let home = tempfile::tempdir().unwrap();
        let dir = JobDir::new(home.path(), "pi-abc");
        std::fs::create_dir_all(dir.root()).unwrap();
        let record = |state, reason: &str| JobRecord {
            id: "pi-abc".into(),
            name: "pi".into(),
            cluster: "local".into(),
            state,
            reason: Some(reason.repeat(2000)),
            num_workers: 1,
            joined: 0,
            package_sha256: "00".into(),
            submitted_at: now_rfc3339(),
            ended_at: None,
            supervisor_pid: None,
            supervisor_mark: None,
            jobmaster_pid: None,
            jobmaster_addr: None,
            workers: vec![],
        };
        let a = record(RecordedState::Running, "a");
        let b = record(RecordedState::Killed, "b");
        std::thread::scope(|s| {
            for rec in [&a, &b] {
                let dir = &dir;
                s.spawn(move || {
                    for _ in 0..200 {
                        dir.write_record(rec).expect("every write succeeds");
                    }
                });
            }
            s.spawn(|| {
                for _ in 0..200 {
                    let got = dir.read_record();
                    if let Ok(got) = got {
                        assert!(got == a || got == b, "a mixed record");
                    }
                }
            });
        });
        let last = dir.read_record().unwrap();
        assert!(last == a || last == b);
        let leftovers: Vec<_> = std::fs::read_dir(dir.root())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "job.json")
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }
}
