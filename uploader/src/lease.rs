//! Job references as leases: `refs/<sha256>/<job-id>` is renewed (its modification time set
//! to now) each time the job says it still uses the package (`PUT /packages/{sha256}/refs/{job}`,
//! or an upload with `?job=`). A reference renewed within the lease is live and keeps the
//! package from the TTL sweep; one not renewed for longer (its job crashed, or ended without
//! saying so) has lapsed and is removed, so a dead job pins nothing forever.

use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The response header that tells a job how long its lease lasts, in milliseconds (it renews
/// well before that).
pub const LEASE_HEADER: &str = "x-t2-lease-ms";

/// How long a reference lives without being renewed, unless `t2 uploader --lease` says
/// otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10 * 60);

/// How often a job renews a lease of `lease`: three times per lease, so that two renewals in a
/// row may fail (the uploader restarting, a slow network) before it lapses; at most once a
/// minute, at least every 100 ms.
pub fn renew_every(lease: Duration) -> Duration {
    (lease / 3).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

/// Creates or renews the reference file `path` (its modification time becomes now).
pub fn renew(path: &Path) -> io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    f.set_modified(SystemTime::now())
}

/// True when the reference file with metadata `m` was renewed within `lease`.
fn is_live(m: &std::fs::Metadata, lease: Duration, now: SystemTime) -> bool {
    m.modified()
        .ok()
        // A time in the future (clock steps) counts as just renewed.
        .is_some_and(|t| now.duration_since(t).map_or(true, |age| age <= lease))
}

/// The number of live references in the folder `dir` (one package's references); lapsed ones
/// are removed on the way. A missing folder has none.
pub fn live(dir: &Path, lease: Duration) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut n = 0;
    for e in entries.flatten() {
        match e.metadata() {
            Ok(m) if is_live(&m, lease, now) => n += 1,
            Ok(_) => {
                let _ = std::fs::remove_file(e.path());
            }
            Err(_) => {}
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewed_reference_is_live_and_a_lapsed_one_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("job-a"), dir.path().join("job-b"));
        renew(&a).unwrap();
        renew(&b).unwrap();
        assert_eq!(live(dir.path(), Duration::from_secs(60)), 2);
        // job-b was last renewed two minutes ago: its lease of one minute has lapsed.
        let old = SystemTime::now() - Duration::from_secs(120);
        std::fs::File::options()
            .write(true)
            .open(&b)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(live(dir.path(), Duration::from_secs(60)), 1);
        assert!(!b.exists(), "a lapsed reference is removed");
        // Renewing brings a reference back to life.
        renew(&a).unwrap();
        assert_eq!(live(dir.path(), Duration::from_secs(60)), 1);
        assert_eq!(live(&dir.path().join("none"), Duration::from_secs(60)), 0);
    }

    #[test]
    fn renewals_come_three_times_per_lease_within_bounds() {
        assert_eq!(renew_every(Duration::from_secs(3)), Duration::from_secs(1));
        assert_eq!(
            renew_every(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
        assert_eq!(
            renew_every(Duration::from_millis(30)),
            Duration::from_millis(100)
        );
    }
}
