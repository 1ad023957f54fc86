//! Worker output: every line goes to the worker's log file and, in the foreground, to the
//! terminal prefixed with `[worker-i]`.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use indicatif::ProgressBar;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Where worker lines are shown.
#[derive(Clone)]
pub struct Terminal {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Terminal {
    /// Shows lines on stdout (keeping `bar` at the bottom when it is drawn), or nowhere.
    pub fn new(bar: Option<ProgressBar>, quiet: bool) -> Self {
        Self { bar, quiet }
    }

    /// Prints one line.
    pub fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) if !bar.is_hidden() && !bar.is_finished() => bar.println(text),
            _ => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
            }
        }
    }
}

/// An append-only log file shared by a worker's stdout and stderr readers.
pub type LogFile = Arc<Mutex<std::fs::File>>;

/// Opens (appending) a worker's log file.
pub fn open_log(path: &Path) -> std::io::Result<LogFile> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    Ok(Arc::new(Mutex::new(f)))
}

/// Appends one line to a log.
pub fn log_line(log: &LogFile, text: &str) {
    if let Ok(mut f) = log.lock() {
        let _ = writeln!(f, "{text}");
    }
}

/// Copies `stream` line by line into `log` and, prefixed, to `term`.
pub fn pump(
    stream: impl AsyncRead + Unpin + Send + 'static,
    prefix: String,
    log: LogFile,
    term: Terminal,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log_line(&log, &line);
            term.line(&format!("{prefix} {line}"));
        }
    })
}
