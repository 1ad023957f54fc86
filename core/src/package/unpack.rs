//! Unpacking an untrusted package: refuses absolute paths, `..`, links that escape the
//! destination, device files and FIFOs, and anything over the size limits. On error the
//! destination is removed, so nothing half-unpacked is left; nothing is written outside it.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use super::build::sha256_file;
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
    let shown = package.display().to_string();
    let size = std::fs::metadata(package)
        .map_err(|_| PackageError::NotFound { path: shown.clone() })?
        .len();
    if size > limits.max_package_bytes {
        return Err(PackageError::TooLarge { what: shown, size, limit: limits.max_package_bytes });
    }
    if let Some(expected) = expected_sha256 {
        let actual = sha256_file(package)?;
        if !actual.eq_ignore_ascii_case(expected) {
            return Err(PackageError::Mismatch { path: shown, expected: expected.into(), actual });
        }
    }
    if dest.exists() && std::fs::read_dir(dest).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(PackageError::Io {
            path: dest.display().to_string(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "destination is not empty"),
        });
    }
    std::fs::create_dir_all(dest).map_err(|source| PackageError::Io { path: dest.display().to_string(), source })?;
    let result = unpack_entries(package, dest, limits);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    result
}

fn unsafe_entry(entry: &str, why: impl Into<String>) -> PackageError {
    PackageError::UnsafeEntry { entry: entry.to_string(), why: why.into() }
}

/// A relative path inside the package, or why it is not one.
fn inside(raw: &str) -> Result<PathBuf, String> {
    let p = Path::new(raw);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => return Err("escapes the package with '..'".into()),
            Component::RootDir | Component::Prefix(_) => return Err("is an absolute path".into()),
        }
    }
    if out.as_os_str().is_empty() {
        return Err("has an empty path".into());
    }
    Ok(out)
}

/// Where a symlink at `rel` pointing to `target` lands, lexically; None when it escapes.
fn link_lands_inside(rel: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: Vec<&std::ffi::OsStr> =
        rel.parent().map(|p| p.components().filter_map(|c| match c { Component::Normal(s) => Some(s), _ => None }).collect()).unwrap_or_default();
    for c in target.components() {
        match c {
            Component::Normal(s) => depth.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// Refuses to write through a symlink: no existing ancestor of `rel` under `dest` may be one.
fn no_symlink_on_the_way(dest: &Path, rel: &Path) -> bool {
    let mut cur = dest.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        if let Ok(m) = std::fs::symlink_metadata(&cur) {
            if m.file_type().is_symlink() {
                return false;
            }
        }
    }
    true
}

fn unpack_entries(package: &Path, dest: &Path, limits: &UnpackLimits) -> Result<UnpackReport, PackageError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = package.display().to_string();
    let corrupt = |e: io::Error| PackageError::Corrupt { path: shown.clone(), why: e.to_string() };
    let file = File::open(package).map_err(|source| PackageError::Io { path: shown.clone(), source })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut report = UnpackReport::default();
    let mut entries_seen = 0u64;
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        entries_seen += 1;
        if entries_seen > limits.max_entries {
            return Err(PackageError::TooLarge { what: "the number of entries".into(), size: entries_seen, limit: limits.max_entries });
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).to_string();
        let rel = inside(&raw).map_err(|why| unsafe_entry(&raw, why))?;
        if !no_symlink_on_the_way(dest, &rel) {
            return Err(unsafe_entry(&raw, "would be written through a symlink"));
        }
        let target = dest.join(&rel);
        let io_at = |source: io::Error| PackageError::Io { path: target.display().to_string(), source };
        let kind = entry.header().entry_type();
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_at)?;
        }
        match kind {
            tar::EntryType::Directory => std::fs::create_dir_all(&target).map_err(io_at)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let exec = entry.header().mode().map(|m| m & 0o111 != 0).unwrap_or(false);
                let budget = limits.max_unpacked_bytes.saturating_sub(report.bytes);
                if std::fs::symlink_metadata(&target).is_ok() {
                    std::fs::remove_file(&target).map_err(io_at)?;
                }
                let mut out = File::create(&target).map_err(io_at)?;
                let n = io::copy(&mut (&mut entry).take(budget + 1), &mut out).map_err(corrupt)?;
                report.bytes += n;
                if n > budget {
                    return Err(PackageError::TooLarge { what: "the unpacked package".into(), size: report.bytes, limit: limits.max_unpacked_bytes });
                }
                let mode = if exec { 0o755 } else { 0o644 };
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).map_err(io_at)?;
                report.files += 1;
            }
            tar::EntryType::Symlink => {
                let link = entry.link_name().map_err(corrupt)?.ok_or_else(|| unsafe_entry(&raw, "is a symlink without a target"))?;
                if !link_lands_inside(&rel, &link) {
                    return Err(unsafe_entry(&raw, format!("is a symlink pointing outside the package (-> {})", link.display())));
                }
                std::os::unix::fs::symlink(&link, &target).map_err(io_at)?;
            }
            tar::EntryType::Link => {
                let link = entry.link_name().map_err(corrupt)?.ok_or_else(|| unsafe_entry(&raw, "is a hardlink without a target"))?;
                let link_s = link.display().to_string();
                let inner = inside(&link_s).map_err(|_| unsafe_entry(&raw, format!("is a hardlink pointing outside the package (-> {link_s})")))?;
                let source = dest.join(&inner);
                let ok = no_symlink_on_the_way(dest, &inner)
                    && std::fs::symlink_metadata(&source).map(|m| m.is_file()).unwrap_or(false);
                if !ok {
                    return Err(unsafe_entry(&raw, format!("is a hardlink to '{link_s}', which is not a file earlier in the package")));
                }
                std::fs::hard_link(&source, &target).map_err(io_at)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => return Err(unsafe_entry(&raw, "is a device file")),
            tar::EntryType::Fifo => return Err(unsafe_entry(&raw, "is a FIFO")),
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink => {}
            other => return Err(unsafe_entry(&raw, format!("has an unsupported type ({other:?})"))),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
