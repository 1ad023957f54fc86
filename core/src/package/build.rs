//! Writing a package: a deterministic tar.gz (sorted entries, zeroed times and owners) and its
//! sha256, so the same job directory always yields the same package ID.

mod archive;
mod collect;
mod pargz;

use std::cell::Cell;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::hashing::{self, HashingWriter};
use super::{PackageError, PackageSource, SourceKind};
use crate::text::one_line;

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
///
/// Archives are deterministic: entries sorted by path, times and owners zeroed, modes
/// normalised to 0755/0644, so the same content always has the same sha256. The package is
/// written to a temporary file beside `out` and renamed into place; on error nothing is left.
pub fn build_package(
    source: &PackageSource,
    job_yaml: &str,
    include: &[String],
    out: &Path,
    max_bytes: u64,
) -> Result<BuiltPackage, PackageError> {
    if source.kind == SourceKind::Tarball {
        let len = std::fs::metadata(&source.path)
            .map_err(io_error(&source.path))?
            .len();
        if len > max_bytes {
            return Err(PackageError::TooLarge {
                what: format!("'{}'", one_line(&source.path.display().to_string())),
                size: len,
                limit: max_bytes,
            });
        }
    }
    let tmp = TempFile::create(out)?;
    let items = match &source.kind {
        SourceKind::Tarball => None,
        SourceKind::Directory => {
            let skip = [tmp.file.metadata().ok(), std::fs::metadata(out).ok()]
                .into_iter()
                .flatten()
                .map(|m| (m.dev(), m.ino()))
                .collect();
            Some(collect::from_dir(&source.path, include, &skip)?)
        }
        SourceKind::Executable | SourceKind::Jar { .. } => {
            Some(collect::single_file(&source.path)?)
        }
    };
    let counted = Rc::new(Cell::new(0));
    let file = tmp.file.try_clone().map_err(io_error(&tmp.path))?;
    let writer = HashingWriter::new(BufWriter::new(file), max_bytes, counted.clone());
    let written = match &items {
        None => copy_file(&source.path, writer),
        Some(items) => archive::write(items, job_yaml, writer),
    };
    let too_large = || PackageError::TooLarge {
        what: format!(
            "the package built from '{}' (so far)",
            one_line(&source.path.display().to_string())
        ),
        size: counted.get(),
        limit: max_bytes,
    };
    let writer = match written {
        Ok(w) => w,
        Err(_) if counted.get() > max_bytes => return Err(too_large()),
        Err(e) => return Err(e),
    };
    let (sha256, size, buf) = writer.finish();
    let file = buf.into_inner().map_err(|e| PackageError::Io {
        path: one_line(&tmp.path.display().to_string()),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(io_error(&tmp.path))?;
    tmp.persist(out)?;
    Ok(BuiltPackage {
        path: out.to_path_buf(),
        sha256,
        size,
    })
}

/// Lowercase hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, PackageError> {
    let file = File::open(path).map_err(io_error(path))?;
    hashing::sha256_reader(file)
        .map(|(sha, _)| sha)
        .map_err(io_error(path))
}

/// Copies an existing package byte for byte.
fn copy_file<W: Write>(
    from: &Path,
    mut to: HashingWriter<W>,
) -> Result<HashingWriter<W>, PackageError> {
    let mut file = File::open(from).map_err(io_error(from))?;
    std::io::copy(&mut file, &mut to).map_err(io_error(from))?;
    Ok(to)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError {
    let path = one_line(&path.display().to_string());
    move |source| PackageError::Io { path, source }
}

/// A file beside the final output, removed unless persisted.
struct TempFile {
    path: PathBuf,
    file: File,
    keep: bool,
}

impl TempFile {
    fn create(out: &Path) -> Result<Self, PackageError> {
        let name = out
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "package".into());
        let dir = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let path = dir.join(format!(".{name}.{:016x}.tmp", rand::random::<u64>()));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok(Self {
            path,
            file,
            keep: false,
        })
    }

    fn persist(mut self, out: &Path) -> Result<(), PackageError> {
        std::fs::rename(&self.path, out).map_err(io_error(out))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests;
