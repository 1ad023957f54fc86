//! `t2 logs JOB [--worker I] [-f]`: worker output, prefixed by worker, optionally followed.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use t2_core::jobdir::JobDir;

use crate::error::LauncherError;

/// Longest `-f` follows a job that never ends (a week).
const FOLLOW_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Prints (and with `follow`, keeps printing) the logs (`job` is a valid job ID). Lines are
/// prefixed `[worker-I]` unless `--worker` chose one; while following, workers that `t2 scale`
/// adds are picked up as their logs appear.
pub fn run(home: &Path, job: &str, worker: Option<u32>, follow: bool) -> Result<(), LauncherError> {
    let dir = JobDir::existing(home, job)?;
    if let Some(w) = worker {
        let known = known_workers(&dir);
        if w >= known && !follow {
            return Err(LauncherError::Usage(format!(
                "job {job} has workers 0..{}; there is no worker {w}",
                known.saturating_sub(1)
            )));
        }
    }
    let prefix = worker.is_none();
    let mut offsets: BTreeMap<u32, u64> = BTreeMap::new();
    let started = std::time::Instant::now();
    let pass = |offsets: &mut BTreeMap<u32, u64>| {
        let ids: Vec<u32> = match worker {
            Some(w) => vec![w],
            None => (0..known_workers(&dir)).collect(),
        };
        for id in ids {
            let at = offsets.entry(id).or_insert(0);
            *at = print_new(&dir.worker_log(id), *at, prefix.then_some(id));
        }
    };
    loop {
        pass(&mut offsets);
        if !follow || started.elapsed() > FOLLOW_DEADLINE {
            return Ok(());
        }
        // An orphaned job never ends by itself: stop following it.
        let ended = dir
            .read_record()
            .map(|r| r.state.is_final() || super::orphan::is_orphaned(&r))
            .unwrap_or(true);
        if ended {
            // One last pass for output written just before the end.
            pass(&mut offsets);
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
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

/// Prints complete lines of `path` after `offset`; returns the new offset.
fn print_new(path: &Path, offset: u64, prefix: Option<u32>) -> u64 {
    let Ok(mut f) = std::fs::File::open(path) else {
        return offset;
    };
    if f.seek(SeekFrom::Start(offset)).is_err() {
        return offset;
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return offset;
    }
    let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
        return offset;
    };
    let text = String::from_utf8_lossy(&buf[..=last_nl]);
    let mut out = std::io::stdout().lock();
    for line in text.lines() {
        let written = match prefix {
            Some(id) => writeln!(out, "[worker-{id}] {line}"),
            None => writeln!(out, "{line}"),
        };
        crate::stdout::or_exit(written);
    }
    offset + last_nl as u64 + 1
}
