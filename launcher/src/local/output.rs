//! Worker output: every line goes to the worker's log file and, in the foreground, to the
//! terminal prefixed with `[worker-i]` (stdout lines on stdout, stderr lines on stderr).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use indicatif::ProgressBar;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;

/// Where worker lines are shown. When stdout fails (a closed pipe, a terminal gone), lines
/// stop being shown and [`Terminal::closed`] completes, so the supervisor can end the job.
#[derive(Clone)]
pub struct Terminal {
    bar: Option<ProgressBar>,
    quiet: bool,
    gone: Arc<AtomicBool>,
    closed: Arc<Notify>,
}

impl Terminal {
    /// Shows lines on stdout (keeping `bar` at the bottom when it is drawn), or nowhere.
    pub fn new(bar: Option<ProgressBar>, quiet: bool) -> Self {
        Self {
            bar,
            quiet,
            gone: Arc::new(AtomicBool::new(false)),
            closed: Arc::new(Notify::new()),
        }
    }

    /// Prints one line.
    pub fn line(&self, text: &str) {
        if self.quiet || self.gone.load(Ordering::Relaxed) {
            return;
        }
        // Worker lines always go to stdout itself (the bar only draws on stderr): a write that
        // fails means nobody reads them any more.
        let written = {
            let mut out = std::io::stdout().lock();
            match &self.bar {
                Some(bar) if !bar.is_hidden() && !bar.is_finished() => {
                    bar.suspend(|| writeln!(out, "{text}").and_then(|_| out.flush()))
                }
                _ => writeln!(out, "{text}").and_then(|_| out.flush()),
            }
        };
        if written.is_err() && !self.gone.swap(true, Ordering::Relaxed) {
            self.closed.notify_one();
        }
    }

    /// Prints one line of a worker's stderr on stderr (a failure there is not fatal: stdout
    /// decides whether anyone is still reading).
    pub fn err_line(&self, text: &str) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = match &self.bar {
            Some(bar) if !bar.is_hidden() && !bar.is_finished() => {
                bar.suspend(|| writeln!(err, "{text}"))
            }
            _ => writeln!(err, "{text}"),
        };
    }

    /// Completes once a write to stdout has failed.
    pub async fn closed(&self) {
        self.closed.notified().await
    }
}

/// A worker's log and, line for line, when each line was written (`worker-I.times`: one
/// line of milliseconds since the epoch per log line), which `t2 logs` merges by time and
/// shows with `--timestamps`. The log itself stays plain output.
pub struct LogFiles {
    log: std::fs::File,
    times: Option<std::fs::File>,
}

/// A worker's log files, shared by its stdout and stderr readers.
pub type LogFile = Arc<Mutex<LogFiles>>;

/// The times file beside log `path` (`worker-3.log` → `worker-3.times`).
pub fn times_path(path: &Path) -> std::path::PathBuf {
    path.with_extension("times")
}

/// Opens (appending) a worker's log file and its times file.
pub fn open_log(path: &Path) -> std::io::Result<LogFile> {
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
    };
    let log = open(path)?;
    let times = open(&times_path(path)).ok();
    Ok(Arc::new(Mutex::new(LogFiles { log, times })))
}

/// Appends one line to a log, and its time to the times file (under one lock, so the two
/// files stay line for line).
pub fn log_line(log: &LogFile, text: &str) {
    if let Ok(mut f) = log.lock() {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        if writeln!(f.log, "{text}").is_ok() {
            if let Some(t) = f.times.as_mut() {
                let _ = writeln!(t, "{millis}");
            }
        }
    }
}

/// Which of a worker's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Its stdout: shown on t2's stdout.
    Out,
    /// Its stderr: shown on t2's stderr.
    Err,
}

/// Copies `stream` line by line into `log` and, prefixed, to `term` (on the same stream).
pub fn pump(
    stream: impl AsyncRead + Unpin + Send + 'static,
    which: Stream,
    prefix: String,
    log: LogFile,
    term: Terminal,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log_line(&log, &line);
            match which {
                Stream::Out => term.line(&format!("{prefix} {line}")),
                Stream::Err => term.err_line(&format!("{prefix} {line}")),
            }
        }
    })
}
