//! What the uploader accepts: the largest package, the disk space it must leave free, an
//! optional quota on everything stored, and how many uploads may run at once. Space for an
//! upload is reserved when it is admitted, so concurrent uploads cannot overcommit the disk.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// The uploader's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest package accepted.
    pub max_package_bytes: u64,
    /// Free space the disk must keep after an upload.
    pub min_free_bytes: u64,
    /// Most bytes stored in all (none: only the disk limits it).
    pub max_store_bytes: Option<u64>,
    /// Uploads running at once; more get 503.
    pub max_uploads: usize,
    /// An upload that sends nothing for this long is abandoned (408).
    pub upload_idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_package_bytes: t2_core::package::DEFAULT_MAX_PACKAGE_BYTES,
            min_free_bytes: 256 << 20,
            max_store_bytes: None,
            max_uploads: 8,
            upload_idle: Duration::from_secs(30),
        }
    }
}

/// Admits uploads against the limits.
#[derive(Debug)]
pub struct Gate {
    /// The limits.
    pub limits: Limits,
    uploads: Arc<Semaphore>,
    reserved: Arc<AtomicU64>,
}

/// An admitted upload: holds its slot and its reserved space until dropped.
#[derive(Debug)]
pub struct Admission {
    _permit: OwnedSemaphorePermit,
    reserved: Arc<AtomicU64>,
    bytes: u64,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.reserved.fetch_sub(self.bytes, Ordering::SeqCst);
    }
}

impl Gate {
    /// A gate for `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            uploads: Arc::new(Semaphore::new(limits.max_uploads.max(1))),
            limits,
            reserved: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Uploads running now.
    pub fn uploads_in_progress(&self) -> usize {
        self.limits.max_uploads.max(1) - self.uploads.available_permits()
    }

    /// Admits an upload of `len` bytes (the declared length; the maximum when unknown) into
    /// `dir`, which holds `stored` bytes of packages.
    pub fn admit(&self, len: Option<u64>, stored: u64, dir: &Path) -> Result<Admission, ApiError> {
        let l = &self.limits;
        if let Some(len) = len {
            if len > l.max_package_bytes {
                return Err(too_large(len, l.max_package_bytes));
            }
        }
        let permit = self.uploads.clone().try_acquire_owned().map_err(|_| {
            ApiError::busy(format!(
                "too many uploads in progress (limit {}); retry shortly",
                l.max_uploads
            ))
        })?;
        let need = len.unwrap_or(l.max_package_bytes);
        let before = self.reserved.fetch_add(need, Ordering::SeqCst);
        let admission = Admission {
            _permit: permit,
            reserved: self.reserved.clone(),
            bytes: need,
        };
        if let Some(quota) = l.max_store_bytes {
            let total = stored.saturating_add(before).saturating_add(need);
            if total > quota {
                return Err(ApiError::insufficient_storage(format!(
                    "the store is full: {need} more bytes would make {total}, over its quota of {quota} bytes; nothing stored"
                )));
            }
        }
        let free = free_bytes(dir).map_err(|e| {
            ApiError::internal(format!(
                "cannot read the free space of {}: {e}",
                dir.display()
            ))
        })?;
        let after = free.saturating_sub(before).saturating_sub(need);
        if free < before.saturating_add(need).saturating_add(l.min_free_bytes) {
            return Err(ApiError::insufficient_storage(format!(
                "not enough disk space: {free} bytes free, {need} needed, and {} must stay free ({after} would); nothing stored",
                l.min_free_bytes
            )));
        }
        Ok(admission)
    }
}

/// The 413 for a package of `size` bytes.
pub fn too_large(size: u64, limit: u64) -> ApiError {
    ApiError::too_large(format!(
        "the package is {size} bytes, over the limit of {limit} bytes; nothing stored"
    ))
}

/// Bytes available to unprivileged users on the file system of `dir`.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

/// Parses a size: `1048576`, `512K`, `100M`, `1G`, `2GiB` (binary multiples).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{t}' is not a size; write e.g. 1073741824, 512M or 2G"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("'{t}' has an unknown unit; use K, M, G or T")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{t}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn admission_reserves_space_and_slots() {
        let dir = tempfile::tempdir().unwrap();
        let gate = Gate::new(Limits {
            max_package_bytes: 100,
            min_free_bytes: 0,
            max_store_bytes: Some(150),
            max_uploads: 2,
            upload_idle: Duration::from_secs(1),
        });
        assert_eq!(
            gate.admit(Some(101), 0, dir.path())
                .unwrap_err()
                .status
                .as_u16(),
            413
        );
        let a = gate.admit(Some(100), 0, dir.path()).expect("fits");
        assert_eq!(
            gate.admit(Some(60), 0, dir.path())
                .unwrap_err()
                .status
                .as_u16(),
            507
        );
        let b = gate.admit(Some(50), 0, dir.path()).expect("fits");
        assert_eq!(gate.uploads_in_progress(), 2);
        assert_eq!(
            gate.admit(Some(1), 0, dir.path())
                .unwrap_err()
                .status
                .as_u16(),
            503
        );
        drop((a, b));
        assert!(gate.admit(Some(100), 0, dir.path()).is_ok());
    }
}
