//! Where the uploader keeps packages: `packages/<sha256>` (complete, verified files only),
//! `tmp/` (uploads in progress, renamed into `packages/` atomically once verified) and
//! `refs/<sha256>/<job-id>` (the jobs using a package, as leases they renew: see
//! [`crate::lease`]; a package with a live lease is never swept, and a shared package outlives
//! one job).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A temporary file nobody wrote to for this long belongs to no upload any more.
pub const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(60);

/// A package ID: the package's sha256, 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackageId(String);

impl PackageId {
    /// Checks `text` (any case) and lowercases it; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let shown: String = text
            .chars()
            .take(80)
            .collect::<String>()
            .escape_default()
            .to_string();
        if text.len() != 64 {
            return Err(format!(
                "'{shown}' is not a package ID: it must be a sha256, 64 hex digits (it has {} characters)",
                text.chars().count()
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "'{shown}' is not a package ID: it must be a sha256 in hex (0-9, a-f)"
            ));
        }
        Ok(Self(text.to_ascii_lowercase()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PackageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Number and total size of stored packages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Packages.
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The package folder.
#[derive(Debug)]
pub struct Store {
    packages: PathBuf,
    tmp: PathBuf,
    refs: PathBuf,
    /// How long a job reference lives without being renewed.
    lease: std::time::Duration,
    /// Guards the totals and makes "does it exist, rename, count" one step, so concurrent
    /// uploads of the same package count it once.
    totals: Mutex<Totals>,
    /// `<dir>/lock`, locked (flock) around the same steps, so that another uploader process
    /// sharing the folder never removes a package between this one's check and its answer.
    dir_lock: std::fs::File,
}

/// One step on the folder: this process's totals, with the folder locked against other
/// uploader processes until dropped.
struct Exclusive<'a> {
    totals: std::sync::MutexGuard<'a, Totals>,
    file: &'a std::fs::File,
}

impl std::ops::Deref for Exclusive<'_> {
    type Target = Totals;
    fn deref(&self) -> &Totals {
        &self.totals
    }
}

impl std::ops::DerefMut for Exclusive<'_> {
    fn deref_mut(&mut self) -> &mut Totals {
        &mut self.totals
    }
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl Store {
    /// Opens (creating) the store under `dir`; leftovers of interrupted uploads are removed.
    /// Several uploaders may share one folder.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let dir_lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        let store = Self {
            dir_lock,
            packages: dir.join("packages"),
            tmp: dir.join("tmp"),
            refs: dir.join("refs"),
            lease: crate::lease::DEFAULT_LEASE,
            totals: Mutex::new(Totals::default()),
        };
        for d in [&store.packages, &store.tmp, &store.refs] {
            std::fs::create_dir_all(d)?;
        }
        // Another uploader may share the folder (one per local job): only what nobody has
        // written to for a while is a leftover.
        for e in std::fs::read_dir(&store.tmp)?.flatten() {
            let stale = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age > STALE_TEMP);
            if stale {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let mut totals = Totals::default();
        for (_, meta) in store.list() {
            totals.count += 1;
            totals.bytes += meta.len();
        }
        *store.lock() = totals;
        Ok(store)
    }

    /// The same store, its job references lasting `lease` without renewal.
    pub fn with_lease(mut self, lease: std::time::Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a job reference lives without being renewed.
    pub fn lease(&self) -> std::time::Duration {
        self.lease
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Totals> {
        self.totals.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This process's lock, then the folder's (short steps only: renames and removals).
    fn exclusive(&self) -> io::Result<Exclusive<'_>> {
        let totals = self.lock();
        self.dir_lock.lock()?;
        Ok(Exclusive {
            totals,
            file: &self.dir_lock,
        })
    }

    /// The file of package `id` (which may not exist).
    pub fn path(&self, id: &PackageId) -> PathBuf {
        self.packages.join(id.as_str())
    }

    /// A fresh temporary file name for an upload of `id`.
    pub fn temp_path(&self, id: &PackageId) -> PathBuf {
        self.tmp
            .join(format!("{id}.{:016x}.part", rand::random::<u64>()))
    }

    /// The folder of temporary files.
    pub fn temp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Current totals.
    pub fn totals(&self) -> Totals {
        *self.lock()
    }

    /// Moves the verified, synced file `tmp` into place as `id` (atomically: readers see the
    /// old file or the whole new one), records job `job`'s reference to it in the same step
    /// (so a concurrent [`Store::release`] of another job cannot remove it in between) and
    /// syncs the folder. True when the package is new.
    pub fn commit(
        &self,
        tmp: &Path,
        id: &PackageId,
        size: u64,
        job: Option<&str>,
    ) -> io::Result<bool> {
        let dest = self.path(id);
        let mut totals = self.exclusive()?;
        let existed = dest.exists();
        std::fs::rename(tmp, &dest)?;
        if let Some(job) = job {
            self.add_ref(id, job)?;
        }
        if let Ok(d) = std::fs::File::open(&self.packages) {
            let _ = d.sync_all();
        }
        if !existed {
            totals.count += 1;
            totals.bytes += size;
        }
        Ok(!existed)
    }

    /// Removes package `id` and its references; false when it was not there.
    pub fn remove(&self, id: &PackageId) -> io::Result<bool> {
        self.remove_unused_for(id, std::time::Duration::ZERO)
    }

    /// Removes package `id` and its references if it is still unused (not uploaded or
    /// downloaded) for longer than `age` and no job holds a live lease on it (with a non-zero
    /// `age`), checked under the same lock as [`Store::commit`], so an upload or a renewal that
    /// lands meanwhile is never removed; false when it was not removed.
    pub fn remove_unused_for(&self, id: &PackageId, age: std::time::Duration) -> io::Result<bool> {
        let dest = self.path(id);
        let mut totals = self.exclusive()?;
        let size = match std::fs::metadata(&dest) {
            Ok(m) if !age.is_zero() && !older_than(&m, age) => return Ok(false),
            Ok(_) if !age.is_zero() && self.live_refs(id) > 0 => return Ok(false),
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        std::fs::remove_file(&dest)?;
        let _ = std::fs::remove_dir_all(self.refs.join(id.as_str()));
        totals.count = totals.count.saturating_sub(1);
        totals.bytes = totals.bytes.saturating_sub(size);
        Ok(true)
    }

    /// Drops job `job`'s reference (if any) and removes the package when no job holds a live
    /// lease on it any more, in one step with respect to [`Store::commit`]: `Ok(None)` when it was not there,
    /// `Ok(Some(n))` with the jobs still using it (0: removed).
    pub fn release(&self, id: &PackageId, job: Option<&str>) -> io::Result<Option<usize>> {
        let dest = self.path(id);
        let mut totals = self.exclusive()?;
        let size = match std::fs::metadata(&dest) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if let Some(job) = job {
            let left = self.drop_ref(id, job)?;
            if left > 0 {
                return Ok(Some(left));
            }
        }
        std::fs::remove_file(&dest)?;
        let _ = std::fs::remove_dir_all(self.refs.join(id.as_str()));
        totals.count = totals.count.saturating_sub(1);
        totals.bytes = totals.bytes.saturating_sub(size);
        Ok(Some(0))
    }

    /// Records that job `job` (an already validated job ID) uses package `id`, or renews that
    /// lease.
    pub fn add_ref(&self, id: &PackageId, job: &str) -> io::Result<()> {
        let dir = self.refs.join(id.as_str());
        std::fs::create_dir_all(&dir)?;
        crate::lease::renew(&dir.join(job))
    }

    /// Renews job `job`'s lease on package `id`, under the folder's lock so that the sweep
    /// cannot remove the package in between; false when the package is not there.
    pub fn renew_ref(&self, id: &PackageId, job: &str) -> io::Result<bool> {
        let _held = self.exclusive()?;
        if !self.path(id).is_file() {
            return Ok(false);
        }
        self.add_ref(id, job)?;
        Ok(true)
    }

    /// Drops job `job`'s reference to `id`; returns how many jobs still hold a live lease on it
    /// (lapsed leases are removed).
    pub fn drop_ref(&self, id: &PackageId, job: &str) -> io::Result<usize> {
        let dir = self.refs.join(id.as_str());
        match std::fs::remove_file(dir.join(job)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(self.live_refs(id))
    }

    /// How many jobs hold a live lease on `id` (lapsed leases are removed).
    pub fn live_refs(&self, id: &PackageId) -> usize {
        crate::lease::live(&self.refs.join(id.as_str()), self.lease)
    }

    /// Every stored package with its metadata (files with other names are ignored).
    pub fn list(&self) -> Vec<(PackageId, std::fs::Metadata)> {
        let Ok(entries) = std::fs::read_dir(&self.packages) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let id = PackageId::parse(e.file_name().to_str()?).ok()?;
                let meta = e.metadata().ok().filter(|m| m.is_file())?;
                Some((id, meta))
            })
            .collect()
    }
}

/// True when `m` was last modified more than `age` ago.
fn older_than(m: &std::fs::Metadata, age: std::time::Duration) -> bool {
    m.modified()
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|a| a > age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strict() {
        let good = "AB".repeat(32);
        assert_eq!(PackageId::parse(&good).unwrap().as_str(), "ab".repeat(32));
        assert!(PackageId::parse("abc")
            .unwrap_err()
            .contains("64 hex digits"));
        assert!(PackageId::parse(&format!("../{}", "a".repeat(61)))
            .unwrap_err()
            .contains("hex"));
        assert!(PackageId::parse(&"g".repeat(64)).is_err());
    }

    #[test]
    fn commit_counts_once_and_refs_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = PackageId::parse(&"a".repeat(64)).unwrap();
        for _ in 0..2 {
            let tmp = store.temp_path(&id);
            std::fs::write(&tmp, b"12345").unwrap();
            store.commit(&tmp, &id, 5, None).unwrap();
        }
        assert_eq!(store.totals(), Totals { count: 1, bytes: 5 });
        store.add_ref(&id, "job-a").unwrap();
        store.add_ref(&id, "job-b").unwrap();
        assert_eq!(store.drop_ref(&id, "job-a").unwrap(), 1);
        assert!(store.remove(&id).unwrap());
        assert!(!store.remove(&id).unwrap());
        assert_eq!(store.totals(), Totals::default());
        assert_eq!(Store::open(dir.path()).unwrap().totals(), Totals::default());
    }

    /// Sets the modification time of `path` to `ago` before now.
    fn age_by(path: &Path, ago: std::time::Duration) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(std::time::SystemTime::now() - ago)
            .unwrap();
    }

    #[test]
    fn a_live_lease_keeps_a_package_past_its_ttl_and_a_lapsed_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let lease = std::time::Duration::from_secs(60);
        let store = Store::open(dir.path()).unwrap().with_lease(lease);
        let id = PackageId::parse(&"d".repeat(64)).unwrap();
        let tmp = store.temp_path(&id);
        std::fs::write(&tmp, b"12345").unwrap();
        store.commit(&tmp, &id, 5, Some("job-a")).unwrap();
        // Unused for an hour, far past a TTL of a second, but job-a's lease is live.
        let ttl = std::time::Duration::from_secs(1);
        age_by(&store.path(&id), std::time::Duration::from_secs(3600));
        assert!(!store.remove_unused_for(&id, ttl).unwrap());
        assert!(store.path(&id).is_file());
        // job-a stops renewing: two minutes later its lease has lapsed and the sweep takes it.
        let reference = dir.path().join("refs").join(id.as_str()).join("job-a");
        age_by(&reference, std::time::Duration::from_secs(120));
        assert!(store.remove_unused_for(&id, ttl).unwrap());
        assert!(!store.path(&id).exists());
        assert!(!reference.exists());
        assert!(!store.renew_ref(&id, "job-a").unwrap(), "nothing to renew");
    }

    #[test]
    fn a_release_keeps_a_package_only_for_live_leases() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path())
            .unwrap()
            .with_lease(std::time::Duration::from_secs(60));
        let id = PackageId::parse(&"e".repeat(64)).unwrap();
        let tmp = store.temp_path(&id);
        std::fs::write(&tmp, b"12345").unwrap();
        store.commit(&tmp, &id, 5, Some("job-a")).unwrap();
        assert!(store.renew_ref(&id, "job-b").unwrap());
        assert!(store.renew_ref(&id, "job-c").unwrap());
        // job-c crashed long ago; job-b still runs.
        let refs = dir.path().join("refs").join(id.as_str());
        age_by(&refs.join("job-c"), std::time::Duration::from_secs(600));
        assert_eq!(store.release(&id, Some("job-a")).unwrap(), Some(1));
        assert_eq!(store.release(&id, Some("job-b")).unwrap(), Some(0));
        assert!(!store.path(&id).exists());
    }

    #[test]
    fn a_release_racing_a_commit_never_removes_the_committed_package() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = PackageId::parse(&"b".repeat(64)).unwrap();
        for _ in 0..200 {
            let tmp = store.temp_path(&id);
            std::fs::write(&tmp, b"12345").unwrap();
            store.commit(&tmp, &id, 5, Some("job-a")).unwrap();
            let again = store.temp_path(&id);
            std::fs::write(&again, b"12345").unwrap();
            std::thread::scope(|s| {
                s.spawn(|| store.commit(&again, &id, 5, Some("job-b")).unwrap());
                s.spawn(|| store.release(&id, Some("job-a")).unwrap());
            });
            // job-b's upload succeeded, so its package is there, whatever the order.
            assert!(store.path(&id).is_file(), "a committed package was removed");
            assert_eq!(store.release(&id, Some("job-b")).unwrap(), Some(0));
        }
        assert_eq!(store.totals(), Totals::default());
    }

    #[test]
    fn two_stores_on_one_folder_take_turns_like_two_uploader_processes() {
        // flock locks belong to an open file, so two stores in one process exclude each other
        // exactly as two uploader processes sharing the folder do.
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            Store::open(dir.path()).unwrap(),
            Store::open(dir.path()).unwrap(),
        );
        let id = PackageId::parse(&"c".repeat(64)).unwrap();
        for _ in 0..200 {
            let tmp = a.temp_path(&id);
            std::fs::write(&tmp, b"12345").unwrap();
            a.commit(&tmp, &id, 5, Some("job-a")).unwrap();
            let again = b.temp_path(&id);
            std::fs::write(&again, b"12345").unwrap();
            std::thread::scope(|s| {
                s.spawn(|| b.commit(&again, &id, 5, Some("job-b")).unwrap());
                s.spawn(|| a.release(&id, Some("job-a")).unwrap());
            });
            assert!(
                a.path(&id).is_file(),
                "a package committed by the other store was removed"
            );
            assert_eq!(b.release(&id, Some("job-b")).unwrap(), Some(0));
        }
        let held = a.exclusive().unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                b.remove(&id).unwrap();
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            std::thread::sleep(std::time::Duration::from_millis(200));
            assert!(
                !done.load(std::sync::atomic::Ordering::SeqCst),
                "the second store removed while the first held the folder"
            );
            drop(held);
        });
        assert!(done.load(std::sync::atomic::Ordering::SeqCst));
    }
}
