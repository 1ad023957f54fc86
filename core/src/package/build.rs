//! Writing a package: a deterministic tar.gz (sorted entries, zeroed times and owners) and its
//! sha256, so the same job directory always yields the same package ID.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{PackageError, PackageSource, SourceKind, JOB_YAML};

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

/// A writer that hashes and counts what passes through, and refuses to grow past a limit.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
    limit: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.limit {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "package over the size limit"));
        }
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Builds the package for `source` into `out` (a file path). A directory is archived (only
/// `include` paths when non-empty; symlinks stored as links); a tarball is copied as it is
/// (checking it unpacks safely is the unpacker's job); an executable or jar is archived
/// with a generated `job.yaml` (`job_yaml` text, which the caller has already validated).
/// Fails with [`PackageError::TooLarge`] over `max_bytes`; no partial output is left.
pub fn build_package(
    source: &PackageSource,
    job_yaml: &str,
    include: &[String],
    out: &Path,
    max_bytes: u64,
) -> Result<BuiltPackage, PackageError> {
    let tmp = out.with_extension("partial");
    let result = write_package(source, job_yaml, include, &tmp, max_bytes);
    match result {
        Ok((sha256, size)) => {
            std::fs::rename(&tmp, out).map_err(|source| io_err(out, source))?;
            Ok(BuiltPackage { path: out.to_path_buf(), sha256, size })
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn io_err(path: &Path, source: io::Error) -> PackageError {
    PackageError::Io { path: path.display().to_string(), source }
}

fn write_package(
    source: &PackageSource,
    job_yaml: &str,
    include: &[String],
    tmp: &Path,
    max_bytes: u64,
) -> Result<(String, u64), PackageError> {
    let file = File::create(tmp).map_err(|e| io_err(tmp, e))?;
    let mut w = HashingWriter { inner: BufWriter::new(file), hasher: Sha256::new(), written: 0, limit: max_bytes };
    let too_large = |e: io::Error, src: &Path| {
        if e.kind() == io::ErrorKind::FileTooLarge {
            PackageError::TooLarge { what: "the package".into(), size: max_bytes + 1, limit: max_bytes }
        } else {
            io_err(src, e)
        }
    };
    if source.kind == SourceKind::Tarball {
        let size = std::fs::metadata(&source.path).map_err(|e| io_err(&source.path, e))?.len();
        if size > max_bytes {
            return Err(PackageError::TooLarge { what: source.path.display().to_string(), size, limit: max_bytes });
        }
        let mut f = File::open(&source.path).map_err(|e| io_err(&source.path, e))?;
        io::copy(&mut f, &mut w).map_err(|e| too_large(e, &source.path))?;
    } else {
        let gz = flate2::write::GzEncoder::new(&mut w, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        tar.follow_symlinks(false);
        append_bytes(&mut tar, JOB_YAML, job_yaml.as_bytes(), 0o644).map_err(|e| too_large(e, tmp))?;
        let entries = collect(source, include)?;
        for (rel, full) in entries {
            append_path(&mut tar, &rel, &full).map_err(|e| too_large(e, &full))?;
        }
        let gz = tar.into_inner().map_err(|e| too_large(e, tmp))?;
        gz.finish().map_err(|e| too_large(e, tmp))?;
    }
    w.flush().map_err(|e| too_large(e, tmp))?;
    let HashingWriter { hasher, written, .. } = w;
    Ok((hex::encode(hasher.finalize()), written))
}

/// The files of the package as (path in archive, path on disk), sorted.
fn collect(source: &PackageSource, include: &[String]) -> Result<Vec<(String, PathBuf)>, PackageError> {
    let mut out = Vec::new();
    match source.kind {
        SourceKind::Directory => {
            let roots: Vec<PathBuf> = if include.is_empty() {
                vec![source.path.clone()]
            } else {
                include.iter().map(|p| source.path.join(p)).collect()
            };
            for root in roots {
                if std::fs::symlink_metadata(&root).is_err() {
                    return Err(PackageError::NotFound { path: root.display().to_string() });
                }
                walk(&source.path, &root, &mut out)?;
            }
        }
        _ => {
            let name = source.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            out.push((name, source.path.clone()));
        }
    }
    out.retain(|(rel, _)| rel != JOB_YAML);
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(base: &Path, path: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), PackageError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_err(path, e))?;
    let rel = path.strip_prefix(base).unwrap_or(path).to_string_lossy().to_string();
    if meta.is_dir() {
        if !rel.is_empty() {
            out.push((rel, path.to_path_buf()));
        }
        let mut children: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| io_err(path, e))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(|e| io_err(path, e))?;
        children.sort();
        for c in children {
            walk(base, &c, out)?;
        }
    } else if meta.is_file() || meta.file_type().is_symlink() {
        out.push((rel, path.to_path_buf()));
    }
    // Sockets, FIFOs and devices are skipped: they are not job content.
    Ok(())
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, rel: &str, data: &[u8], mode: u32) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, mode, data.len() as u64);
    tar.append_data(&mut h, rel, data)
}

fn append_path<W: Write>(tar: &mut tar::Builder<W>, rel: &str, full: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(full)?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(full)?;
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        tar.append_link(&mut h, rel, target)
    } else if meta.is_dir() {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        tar.append_data(&mut h, format!("{rel}/"), io::empty())
    } else {
        let mode = if meta.permissions().mode() & 0o111 != 0 { 0o755 } else { 0o644 };
        let mut h = header(tar::EntryType::Regular, mode, meta.len());
        let f = File::open(full)?;
        tar.append_data(&mut h, rel, f.take(meta.len()))
    }
}

/// Lowercase hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, PackageError> {
    let mut f = File::open(path).map_err(|e| io_err(path, e))?;
    let mut hasher = Sha256::new();
    io::copy(&mut f, &mut hasher).map_err(|e| io_err(path, e))?;
    Ok(hex::encode(hasher.finalize()))
}
