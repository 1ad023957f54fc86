//! `t2 logs JOB [--worker I | --jobmaster] [-f] [--tail N] [--since D] [--timestamps]`:
//! worker output merged by time across workers (each line's time is in `worker-I.times`),
//! prefixed by worker, optionally followed.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use t2_core::jobdir::JobDir;

use crate::error::LauncherError;
use crate::local::output::times_path;

/// Longest `-f` follows a job that never ends (a week).
const FOLLOW_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// What `t2 logs` prints.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Only this worker (no prefix).
    pub worker: Option<u32>,
    /// The job master's log instead.
    pub jobmaster: bool,
    /// Keep printing until the job ends.
    pub follow: bool,
    /// Only the last N lines (of everything selected, merged).
    pub tail: Option<usize>,
    /// Only lines written this long ago or later.
    pub since: Option<Duration>,
    /// Start each line with its time.
    pub timestamps: bool,
}

/// One log being read.
struct Source {
    log: PathBuf,
    /// `Some` when the log has a times file (worker logs written by this version).
    times: Option<PathBuf>,
    prefix: Option<String>,
    log_at: u64,
    times_at: u64,
}

/// One line, with when it was written when that is known.
struct Line {
    millis: Option<u64>,
    prefix: Option<String>,
    /// True when the line's time came from a times file (so `--timestamps` shows it).
    timed: bool,
    text: String,
}

/// Prints (and with `follow`, keeps printing) the logs (`job` is a valid job ID). While
/// following, workers that `t2 scale` adds are picked up as their logs appear.
pub fn run(home: &Path, job: &str, o: &LogOptions) -> Result<(), LauncherError> {
    let dir = JobDir::existing(home, job)?;
    if let Some(w) = o.worker {
        let known = known_workers(&dir);
        if w >= known && !o.follow {
            return Err(LauncherError::Usage(format!(
                "job {job} has workers 0..{}; there is no worker {w}",
                known.saturating_sub(1)
            )));
        }
    }
    let mut sources: BTreeMap<u32, Source> = BTreeMap::new();
    let started = std::time::Instant::now();
    let add_sources = |sources: &mut BTreeMap<u32, Source>| {
        if o.jobmaster {
            sources.entry(0).or_insert_with(|| Source {
                log: dir.jobmaster_log(),
                times: None,
                prefix: None,
                log_at: 0,
                times_at: 0,
            });
            return;
        }
        let ids: Vec<u32> = match o.worker {
            Some(w) => vec![w],
            None => (0..known_workers(&dir)).collect(),
        };
        for id in ids {
            sources.entry(id).or_insert_with(|| {
                let log = dir.worker_log(id);
                Source {
                    times: Some(times_path(&log)),
                    log,
                    prefix: o.worker.is_none().then(|| format!("[worker-{id}]")),
                    log_at: 0,
                    times_at: 0,
                }
            });
        }
    };
    // The first pass: everything there, filtered by --since, cut by --tail.
    add_sources(&mut sources);
    let mut lines = read_all(&mut sources, false);
    if let Some(since) = o.since {
        let from = crate::clock::now_millis().saturating_sub(since.as_millis() as u64);
        lines.retain(|l| l.millis.is_none_or(|m| m >= from));
    }
    if let Some(n) = o.tail {
        let drop = lines.len().saturating_sub(n);
        lines.drain(..drop);
    }
    print(&lines, o.timestamps);
    if !o.follow {
        return Ok(());
    }
    loop {
        if started.elapsed() > FOLLOW_DEADLINE {
            return Ok(());
        }
        // An orphaned job never ends by itself: stop following it.
        let ended = dir
            .read_record()
            .map(|r| r.state.is_final() || super::orphan::is_orphaned(&r))
            .unwrap_or(true);
        add_sources(&mut sources);
        // After the end, one last pass for output written just before it.
        print(&read_all(&mut sources, ended), o.timestamps);
        if ended {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The new complete lines of every source, in time order (stable: a worker's own lines stay
/// in order, and lines without a time keep their place by worker). With `last`, lines whose
/// time is missing are taken too instead of waiting for it.
fn read_all(sources: &mut BTreeMap<u32, Source>, last: bool) -> Vec<Line> {
    let mut lines = Vec::new();
    for s in sources.values_mut() {
        let texts = complete_lines(&s.log, s.log_at);
        let mut stamps: Vec<Option<u64>> = Vec::with_capacity(texts.len());
        let mut taken = texts.len();
        if let Some(times) = &s.times {
            let ts = complete_lines(times, s.times_at);
            if times.is_file() && !last {
                taken = taken.min(ts.len());
            }
            for (t, len) in ts.iter().take(taken) {
                stamps.push(t.trim().parse().ok());
                s.times_at += *len as u64;
            }
        } else {
            // A log whose lines carry their own time (the job master's tracing lines).
            stamps.extend(texts.iter().map(|(t, _)| {
                t.split_whitespace()
                    .next()
                    .and_then(crate::clock::parse_rfc3339)
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64)
            }));
        }
        stamps.resize(taken, None);
        for ((text, len), millis) in texts.into_iter().take(taken).zip(stamps) {
            s.log_at += len as u64;
            lines.push(Line {
                millis,
                prefix: s.prefix.clone(),
                timed: s.times.is_some(),
                text,
            });
        }
    }
    lines.sort_by_key(|l| l.millis);
    lines
}

/// Prints lines, prefixed and with their times as asked (the job master's lines start with
/// their time already).
fn print(lines: &[Line], timestamps: bool) {
    let mut out = std::io::stdout().lock();
    for l in lines {
        let mut head = String::new();
        if let Some(p) = &l.prefix {
            head.push_str(p);
            head.push(' ');
        }
        if timestamps && l.timed {
            match l.millis {
                Some(m) => head.push_str(&crate::clock::format_millis(m)),
                None => head.push('-'),
            }
            head.push(' ');
        }
        crate::stdout::or_exit(writeln!(out, "{head}{}", l.text));
    }
    crate::stdout::or_exit(out.flush());
}

/// How many worker IDs the job has had: its current count, and any higher ID a scale-down
/// removed (its log stays).
fn known_workers(dir: &JobDir) -> u32 {
    let now = dir.read_record().map(|r| r.num_workers).unwrap_or(0);
    (0..)
        .take_while(|&id| id < now || dir.worker_log(id).is_file())
        .last()
        .map_or(0, |last: u32| last + 1)
}

/// The complete lines of `path` after byte `offset`, each as text (without its newline)
/// with its length in bytes (with it).
fn complete_lines(path: &Path, offset: u64) -> Vec<(String, usize)> {
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
        return Vec::new();
    };
    buf[..last_nl]
        .split(|&b| b == b'\n')
        .map(|l| {
            let text = String::from_utf8_lossy(l.strip_suffix(b"\r").unwrap_or(l));
            (text.into_owned(), l.len() + 1)
        })
        .collect()
}
