//! Unpacking an untrusted package: refuses absolute paths, `..`, links that escape the
//! destination, device files and FIFOs, and anything over the size limits. On error the
//! destination is removed, so nothing half-unpacked is left; nothing is written outside it.

mod guard;
mod writer;

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use super::hashing::sha256_reader;
use super::PackageError;
use crate::text::one_line;
use writer::Writer;

/// Limits applied while unpacking.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Largest compressed package.
    pub max_package_bytes: u64,
    /// Largest total unpacked size.
    pub max_unpacked_bytes: u64,
    /// Most entries.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        Self {
            max_package_bytes: super::DEFAULT_MAX_PACKAGE_BYTES,
            max_unpacked_bytes: 4 * super::DEFAULT_MAX_PACKAGE_BYTES,
            max_entries: 1_000_000,
        }
    }
}

/// What an unpack produced.
#[derive(Debug, Clone, Default)]
pub struct UnpackReport {
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Verifies `package` against `expected_sha256` (when given), then unpacks it into `dest`
/// (created; must not exist or be empty). Nothing is ever written outside `dest`.
///
/// Order: the compressed size is checked against `max_package_bytes`, then the sha256 (both
/// values shown on a mismatch), then each entry is checked and written by hand: absolute
/// names, `..`, parents that are symlinks, symlinks or hardlinks leading outside, device
/// files and FIFOs are refused with [`PackageError::UnsafeEntry`]; written bytes and entries
/// are counted against the limits; a damaged archive is [`PackageError::Corrupt`]. On any
/// error after `dest` was created, `dest` is removed entirely.
pub fn unpack_package(
    package: &Path,
    dest: &Path,
    expected_sha256: Option<&str>,
    limits: &UnpackLimits,
) -> Result<UnpackReport, PackageError> {
    let shown = one_line(&package.display().to_string());
    let mut file = File::open(package).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => PackageError::NotFound {
            path: shown.clone(),
        },
        _ => PackageError::Io {
            path: shown.clone(),
            source,
        },
    })?;
    let io_err = |source| PackageError::Io {
        path: shown.clone(),
        source,
    };
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(PackageError::Corrupt {
            path: shown,
            why: "it is not a regular file".into(),
        });
    }
    if meta.len() > limits.max_package_bytes {
        return Err(PackageError::TooLarge {
            what: format!("package '{shown}'"),
            size: meta.len(),
            limit: limits.max_package_bytes,
        });
    }
    if let Some(expected) = expected_sha256 {
        let (actual, _) = sha256_reader((&file).take(limits.max_package_bytes)).map_err(io_err)?;
        if !actual.eq_ignore_ascii_case(expected.trim()) {
            return Err(PackageError::Mismatch {
                path: shown,
                expected: one_line(expected.trim()),
                actual,
            });
        }
        file.rewind().map_err(io_err)?;
    }
    let root = prepare_dest(dest)?;
    let mut writer = Writer::new(&root, &shown, limits);
    match writer.unpack(file.take(limits.max_package_bytes)) {
        Ok(()) => Ok(writer.report),
        Err(e) => {
            let _ = std::fs::remove_dir_all(dest);
            Err(e)
        }
    }
}

/// Creates `dest` (or accepts an empty directory) and returns its real path.
fn prepare_dest(dest: &Path) -> Result<PathBuf, PackageError> {
    let io_err = |source| PackageError::Io {
        path: one_line(&dest.display().to_string()),
        source,
    };
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.file_type().is_dir() => {
            let empty = std::fs::read_dir(dest).map_err(io_err)?.next().is_none();
            if !empty {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "the destination is not empty",
                )));
            }
        }
        Ok(_) => {
            return Err(io_err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the destination exists and is not a directory",
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dest).map_err(io_err)?;
        }
        Err(e) => return Err(io_err(e)),
    }
    std::fs::canonicalize(dest).map_err(|e| {
        let _ = std::fs::remove_dir_all(dest);
        io_err(e)
    })
}

#[cfg(test)]
mod tests;
