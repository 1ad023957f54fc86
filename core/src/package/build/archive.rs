//! Writing chosen items as a deterministic tar.gz: sorted entries, zero times and owners,
//! empty user and group names, modes 0755/0644, symlinks as links.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use tar::{EntryType, Header};

use super::super::PackageError;
use super::collect::{Item, Items};
use super::pargz::ParGzEncoder;
use crate::text::one_line;

/// Archives `items` (in their sorted order) into `out` as gzip'd tar; returns `out`.
pub(super) fn write<W: Write>(items: &Items, job_yaml: &str, out: W) -> Result<W, PackageError> {
    let mut b = tar::Builder::new(ParGzEncoder::new(out, Compression::default()));
    for (rel, item) in items {
        append(&mut b, rel, item, job_yaml)?;
    }
    let gz = b.into_inner().map_err(archive_error("the archive end"))?;
    gz.finish().map_err(archive_error("the archive end"))
}

fn archive_error(what: &str) -> impl FnOnce(io::Error) -> PackageError {
    let path = one_line(what);
    move |source| PackageError::Io { path, source }
}

/// A header with everything that could vary between machines zeroed.
fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append<W: Write>(
    b: &mut tar::Builder<W>,
    rel: &Path,
    item: &Item,
    job_yaml: &str,
) -> Result<(), PackageError> {
    let shown = rel.display().to_string();
    match item {
        Item::Dir => {
            let mut h = header(EntryType::Directory, 0o755, 0);
            let mut name = rel.as_os_str().to_os_string();
            name.push("/");
            b.append_data(&mut h, PathBuf::from(name), io::empty())
                .map_err(archive_error(&shown))
        }
        Item::File { from, exec, size } => {
            let mode = if *exec { 0o755 } else { 0o644 };
            let mut h = header(EntryType::Regular, mode, *size);
            let file = File::open(from).map_err(archive_error(&from.display().to_string()))?;
            let reader = Exact {
                inner: file.take(*size),
                left: *size,
            };
            b.append_data(&mut h, rel, reader)
                .map_err(archive_error(&from.display().to_string()))
        }
        Item::Symlink { target } => {
            let mut h = header(EntryType::Symlink, 0o777, 0);
            b.append_link(&mut h, rel, target)
                .map_err(archive_error(&shown))
        }
        Item::JobYaml => {
            let mut h = header(EntryType::Regular, 0o644, job_yaml.len() as u64);
            b.append_data(&mut h, rel, job_yaml.as_bytes())
                .map_err(archive_error(&shown))
        }
    }
}

/// Yields exactly the size listed in the header, or fails if the file shrank meanwhile
/// (a short entry would corrupt the archive).
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being packaged",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
