//! A container's output kept as a container runtime keeps it, so that the API server's pod log
//! API works without a kubelet: KWOK's server (the fake nodes' kubelet endpoint, which the
//! API server calls for `pods/log`) reads a container's log through the kubelet's own CRI log
//! reader (`k8s.io/cri-client/pkg/logs`), which accepts only the CRI log format, one line per
//! line of output:
//!
//! ```text
//! 2026-01-02T03:04:05.123456789Z stdout F the line
//! ```
//!
//! (`F` a full line, `P` a partial one). The runtime pipes each container's stdout and stderr
//! through [`Sink::spawn_reader`], which stamps every line as it arrives (as containerd's shim
//! does) into `NAME.cri.log` — the file the pod's KWOK `Logs` rule names — and also appends it
//! unchanged to `NAME.log`, which the tests read ([`super::runtime::Runtime::log`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The CRI-format log beside a container's plain log `NAME.log`: `NAME.cri.log`.
pub fn cri_path(plain: &Path) -> PathBuf {
    plain.with_extension("cri.log")
}

/// Both logs of one container (all its runs), shared by the readers of its streams.
#[derive(Clone)]
pub struct Sink {
    files: Arc<Mutex<(File, File)>>,
    /// Streams still open (their reader has not seen the end yet).
    open: Arc<AtomicUsize>,
}

fn append(path: &Path) -> Result<File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl Sink {
    /// Opens (appending) `plain` and its CRI-format twin.
    pub fn open(plain: &Path) -> Result<Sink, String> {
        Ok(Sink {
            files: Arc::new(Mutex::new((append(plain)?, append(&cri_path(plain))?))),
            open: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// A pipe whose write end is the container's `stream` (`stdout` or `stderr`); a thread
    /// copies what comes out of it into both logs until every writer closed it.
    pub fn spawn_reader(&self, stream: &'static str) -> Result<std::io::PipeWriter, String> {
        let (reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let sink = self.clone();
        sink.open.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => sink.write(stream, &line),
                }
            }
            sink.open.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(writer)
    }

    fn write(&self, stream: &str, line: &[u8]) {
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let mut cri = format!("{} {stream} F ", rfc3339_nanos(SystemTime::now())).into_bytes();
        cri.extend_from_slice(text);
        cri.push(b'\n');
        if let Ok(mut f) = self.files.lock() {
            let _ = f.0.write_all(line);
            let _ = f.1.write_all(&cri);
        }
    }

    /// Waits (at most `deadline`) until the streams of every run so far reached their end, so
    /// that a process's last lines are in the logs once it exited.
    pub fn drain(&self, deadline: Duration) {
        let start = Instant::now();
        while self.open.load(Ordering::SeqCst) > 0 && start.elapsed() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `t` as RFC 3339 in UTC with nanoseconds (`2026-01-02T03:04:05.123456789Z`), as the CRI
/// log format writes times.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Days since 1970-01-01 to the civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[test]
fn cri_times_are_rfc3339_with_nanoseconds() {
    let t = UNIX_EPOCH + Duration::new(1_764_000_000, 123_456_789);
    assert_eq!(rfc3339_nanos(t), "2025-11-24T16:00:00.123456789Z");
    assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
}
