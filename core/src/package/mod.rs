//! Job packages: a deterministic gzip'd tar of the job directory, identified by its sha256.
//!
//! - [`source`]: what the user handed us (directory, tarball, executable, `.jar`).
//! - [`build`]: writing the package deterministically and hashing it.
//! - [`unpack`]: unpacking an untrusted package safely (DESIGN §8).
//! - [`jar`]: a jar's `Main-Class`, read from its manifest.
//! - `landing` (feature `landing`): a package arriving in pieces, checked and moved into place.

pub mod build;
mod hashing;
pub mod jar;
#[cfg(feature = "landing")]
pub mod landing;
mod paths;
pub mod source;
pub mod unpack;

use thiserror::Error;

pub use build::{build_package, sha256_file, BuiltPackage};
pub use source::{PackageSource, SourceKind};
pub use unpack::{unpack_package, UnpackLimits, UnpackReport};

/// Name of the job spec at the package root.
pub const JOB_YAML: &str = "job.yaml";

/// Default largest package (compressed, and unpacked in total): 1 GiB.
pub const DEFAULT_MAX_PACKAGE_BYTES: u64 = 1 << 30;

/// Errors building or unpacking packages; each displays as one readable line.
#[derive(Debug, Error)]
pub enum PackageError {
    /// The path given does not exist.
    #[error("package path '{path}' does not exist")]
    NotFound {
        /// The path.
        path: String,
    },
    /// The path exists but is not something t2 can package.
    #[error("'{path}' is not a job package: {why}")]
    Unsupported {
        /// The path.
        path: String,
        /// Why not, and what t2 accepts.
        why: String,
    },
    /// An entry t2 refuses to unpack.
    #[error("package rejected: entry '{entry}' {why}")]
    UnsafeEntry {
        /// The entry's path as written in the archive.
        entry: String,
        /// What is unsafe about it.
        why: String,
    },
    /// The package or its unpacked content is over the limit.
    #[error("package too large: {what} is {size} bytes, over the limit of {limit} bytes (raise max_package_bytes)")]
    TooLarge {
        /// What was measured.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The archive is damaged (truncated gzip, bad tar header...).
    #[error("package '{path}' is corrupt: {why}")]
    Corrupt {
        /// The package file.
        path: String,
        /// The decoder's message.
        why: String,
    },
    /// The package's sha256 is not the one expected.
    #[error("package '{path}' has sha256 {actual}, expected {expected}")]
    Mismatch {
        /// The package file.
        path: String,
        /// What we expected.
        expected: String,
        /// What we found.
        actual: String,
    },
    /// The build step failed.
    #[error("build step '{command}' failed: {why}")]
    BuildFailed {
        /// The command.
        command: String,
        /// Exit status or spawn error.
        why: String,
    },
    /// Any other I/O failure, with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
