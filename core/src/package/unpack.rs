//! Unpacking an untrusted package: refuses absolute paths, `..`, links that escape the
//! destination, hardlinks, device files and FIFOs, and anything over the size limits. On error
//! the destination is removed, so nothing half-unpacked is left.

use std::path::Path;

use super::PackageError;

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
pub fn unpack_package(
    package: &Path,
    dest: &Path,
    expected_sha256: Option<&str>,
    limits: &UnpackLimits,
) -> Result<UnpackReport, PackageError> {
    todo!("{package:?} {dest:?} {expected_sha256:?} {limits:?}")
}
