//! Writing a package: a deterministic tar.gz (sorted entries, zeroed times and owners) and its
//! sha256, so the same job directory always yields the same package ID.

use std::path::{Path, PathBuf};

use super::{PackageError, PackageSource};

/// A package written to disk.
#[derive(Debug, Clone)]
pub struct BuiltPackage {
    /// Where it was written.
    pub path: PathBuf,
    /// Lowercase hex sha256 of the file (the package ID).
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Builds the package for `source` into `out` (a file path). A directory is archived (only
/// `include` paths when non-empty; symlinks stored as links); a tarball is copied as it is
/// (after checking it unpacks safely is the unpacker's job); an executable or jar is archived
/// with a generated `job.yaml` (`job_yaml` text, which the caller has already validated).
/// Fails with [`PackageError::TooLarge`] over `max_bytes`.
pub fn build_package(
    source: &PackageSource,
    job_yaml: &str,
    include: &[String],
    out: &Path,
    max_bytes: u64,
) -> Result<BuiltPackage, PackageError> {
    todo!("{source:?} {job_yaml} {include:?} {out:?} {max_bytes}")
}

/// Lowercase hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, PackageError> {
    todo!("{path:?}")
}
