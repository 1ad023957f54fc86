//! `t2 logs JOB [--worker I] [-f]`: worker output, prefixed by worker, optionally followed.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use t2_core::jobdir::JobDir;

use crate::error::LauncherError;

/// Longest `-f` follows a job that never ends (a week).
const FOLLOW_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Prints (and with `follow`, keeps printing) the logs (`job` is a valid job ID).
pub fn run(home: &Path, job: &str, worker: Option<u32>, follow: bool) -> Result<(), LauncherError> {
    let dir = JobDir::existing(home, job)?;
    let record = dir.read_record()?;
    // Workers a scale-down removed have left their logs: those are shown too.
    let known = (0..)
        .take_while(|&id| id < record.num_workers || dir.worker_log(id).is_file())
        .last()
        .map_or(0, |last: u32| last + 1);
    let ids: Vec<u32> = match worker {
        Some(w) if w >= known => {
            return Err(LauncherError::Usage(format!(
                "job {job} has workers 0..{}; there is no worker {w}",
                known.saturating_sub(1)
            )))
        }
        Some(w) => vec![w],
        None => (0..known).collect(),
    };
    let prefix = ids.len() > 1;
    let mut offsets = vec![0u64; ids.len()];
    let started = std::time::Instant::now();
    loop {
        for (i, id) in ids.iter().enumerate() {
            offsets[i] = print_new(&dir.worker_log(*id), offsets[i], prefix.then_some(*id));
        }
        if !follow || started.elapsed() > FOLLOW_DEADLINE {
            return Ok(());
        }
        let ended = dir
            .read_record()
            .map(|r| r.state.is_final())
            .unwrap_or(true);
        if ended {
            // One last pass for output written just before the end.
            for (i, id) in ids.iter().enumerate() {
                offsets[i] = print_new(&dir.worker_log(*id), offsets[i], prefix.then_some(*id));
            }
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
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
    for line in text.lines() {
        match prefix {
            Some(id) => println!("[worker-{id}] {line}"),
            None => println!("{line}"),
        }
    }
    offset + last_nl as u64 + 1
}
