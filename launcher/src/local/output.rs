//! Worker output: every line goes to the worker's log file and, in the foreground, to the
//! terminal prefixed with `[worker-i]` (stdout lines on stdout, stderr lines on stderr).

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::ProgressBar;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Notify;

/// Lines waiting for the terminal at most; past this, lines are counted and not shown (every
/// one is in the job's logs), so a terminal or pipe that is not read never stalls the job.
pub const TERMINAL_QUEUE: usize = 10_000;

/// Longest [`Terminal::flush`] waits for queued lines to be written.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// One thing for the terminal's writer thread.
enum Line {
    Out(String),
    Err(String),
    Flush(std::sync::mpsc::SyncSender<()>),
}

/// Where worker lines are shown: a thread of its own writes them, from a bounded queue, so
/// that a slow or stalled reader of stdout or stderr never blocks the supervisor. When stdout
/// fails (a closed pipe, a terminal gone), lines stop being shown and [`Terminal::closed`]
/// completes, so the supervisor can end the job.
#[derive(Clone)]
pub struct Terminal {
    tx: Option<SyncSender<Line>>,
    dropped: Arc<AtomicU64>,
    gone: Arc<AtomicBool>,
    closed: Arc<Notify>,
}

impl Terminal {
    /// Shows lines on stdout (keeping `bar` at the bottom when it is drawn), or nowhere.
    pub fn new(bar: Option<ProgressBar>, quiet: bool) -> Self {
        let gone = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(Notify::new());
        let dropped = Arc::new(AtomicU64::new(0));
        let tx = (!quiet).then(|| {
            let (tx, rx) = std::sync::mpsc::sync_channel(TERMINAL_QUEUE);
            let writer = Writer {
                bar,
                gone: gone.clone(),
                closed: closed.clone(),
                dropped: dropped.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name("t2-terminal".into())
                .spawn(move || writer.run(rx));
            // Without its thread the terminal shows nothing; the logs still have every line.
            spawned.ok().map(|_| tx)
        });
        Self {
            tx: tx.flatten(),
            dropped,
            gone,
            closed,
        }
    }

    /// Shows one line on stdout.
    pub fn line(&self, text: &str) {
        self.send(Line::Out(text.to_string()));
    }

    /// Shows one line of a worker's stderr on stderr (a failure there is not fatal: stdout
    /// decides whether anyone is still reading).
    pub fn err_line(&self, text: &str) {
        self.send(Line::Err(text.to_string()));
    }

    fn send(&self, line: Line) {
        let Some(tx) = &self.tx else { return };
        if self.gone.load(Ordering::Relaxed) {
            return;
        }
        if let Err(TrySendError::Full(_)) = tx.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits (a few seconds at most) until every line queued so far is written.
    pub fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let deadline = std::time::Instant::now() + FLUSH_DEADLINE;
        let mut msg = Line::Flush(done_tx);
        loop {
            match tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if std::time::Instant::now() < deadline => {
                    msg = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return,
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let _ = done_rx.recv_timeout(left);
    }

    /// Completes once a write to stdout has failed.
    pub async fn closed(&self) {
        self.closed.notified().await
    }
}

/// The terminal's writer thread.
struct Writer {
    bar: Option<ProgressBar>,
    gone: Arc<AtomicBool>,
    closed: Arc<Notify>,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    fn run(self, rx: std::sync::mpsc::Receiver<Line>) {
        for line in rx {
            let skipped = self.dropped.swap(0, Ordering::Relaxed);
            if skipped > 0 {
                self.write_err(&format!(
                    "t2: {skipped} output line(s) not shown: the terminal did not keep up (every line is in the job's logs: t2 logs)"
                ));
            }
            match line {
                Line::Out(text) => self.write_out(&text),
                Line::Err(text) => self.write_err(&text),
                Line::Flush(done) => {
                    let _ = done.try_send(());
                }
            }
        }
    }

    /// Worker lines always go to stdout itself (the bar only draws on stderr): a write that
    /// fails means nobody reads them any more.
    fn write_out(&self, text: &str) {
        if self.gone.load(Ordering::Relaxed) {
            return;
        }
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

    fn write_err(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = match &self.bar {
            Some(bar) if !bar.is_hidden() && !bar.is_finished() => {
                bar.suspend(|| writeln!(err, "{text}"))
            }
            _ => writeln!(err, "{text}"),
        };
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
