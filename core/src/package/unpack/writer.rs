//! Writing a package's entries one by one, each checked first: where it goes (never through a
//! symlink, never outside the destination), what it is (files, directories and in-package
//! links only), and how much it adds (counted as written, not taken from headers).

use std::ffi::OsStr;
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::read::GzDecoder;
use tar::EntryType;

use super::guard::{Budget, Guarded, HEADER_BUDGET};
use super::{UnpackLimits, UnpackReport};
use crate::package::paths::{check_symlink_target, entry_components};
use crate::package::PackageError;
use crate::text::one_line;

/// Unpacks into one destination, keeping the running totals.
pub(super) struct Writer<'a> {
    root: &'a Path,
    package: &'a str,
    limits: &'a UnpackLimits,
    /// What has been written so far.
    pub(super) report: UnpackReport,
    total: u64,
    entries: u64,
    buf: Vec<u8>,
}

/// Components of an entry name.
type Parts = Vec<Vec<u8>>;

fn lossy(bytes: &[u8]) -> String {
    one_line(&String::from_utf8_lossy(bytes))
}

impl<'a> Writer<'a> {
    /// A writer into `root` (an existing, empty, canonical directory) for package `package`.
    pub(super) fn new(root: &'a Path, package: &'a str, limits: &'a UnpackLimits) -> Self {
        Self {
            root,
            package,
            limits,
            report: UnpackReport::default(),
            total: 0,
            entries: 0,
            buf: vec![0; 64 * 1024],
        }
    }

    /// Unpacks the gzip'd tar read from `r`, then reads the stream to its end so a damaged
    /// gzip trailer is noticed too.
    pub(super) fn unpack(&mut self, r: impl Read) -> Result<(), PackageError> {
        let budget = Rc::new(Budget::default());
        budget.set(Some(HEADER_BUDGET));
        let mut archive = tar::Archive::new(Guarded::new(GzDecoder::new(r), budget.clone()));
        {
            let mut entries = archive.entries().map_err(|e| self.corrupt(&budget, &e))?;
            loop {
                budget.set(Some(HEADER_BUDGET));
                let next = entries.next();
                budget.set(None);
                let Some(entry) = next else { break };
                let mut entry = entry.map_err(|e| self.corrupt(&budget, &e))?;
                self.entry(&mut entry)?;
            }
        }
        budget.set(Some(HEADER_BUDGET));
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| {
            if budget.tripped() {
                self.corrupt_because(
                    "more than 1 MiB of data follows the end of the archive".into(),
                )
            } else {
                self.corrupt(&budget, &e)
            }
        })?;
        Ok(())
    }

    fn corrupt(&self, budget: &Budget, e: &io::Error) -> PackageError {
        if budget.tripped() {
            return self.corrupt_because(
                "an entry header is over 1 MiB (an oversized long name or extended header)".into(),
            );
        }
        self.corrupt_because(one_line(&e.to_string()))
    }

    fn corrupt_because(&self, why: String) -> PackageError {
        PackageError::Corrupt {
            path: self.package.to_string(),
            why,
        }
    }

    fn too_large(&self, size: u64) -> PackageError {
        PackageError::TooLarge {
            what: format!("the unpacked content of '{}'", self.package),
            size,
            limit: self.limits.max_unpacked_bytes,
        }
    }

    fn io(path: &Path) -> impl FnOnce(io::Error) -> PackageError {
        let path = one_line(&path.display().to_string());
        move |source| PackageError::Io { path, source }
    }

    /// Checks and writes one entry.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), PackageError> {
        self.entries += 1;
        let name = entry.path_bytes().into_owned();
        let shown = lossy(&name);
        let refuse = |why: String| PackageError::UnsafeEntry {
            entry: shown.clone(),
            why,
        };
        if self.entries > self.limits.max_entries {
            return Err(refuse(format!(
                "is entry number {}, over the limit of {} entries",
                self.entries, self.limits.max_entries
            )));
        }
        let parts: Parts = entry_components(&name)
            .map_err(|why| refuse(why.into()))?
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        match entry.header().entry_type() {
            EntryType::Regular | EntryType::Continuous => self.file(entry, &parts, &shown),
            EntryType::Directory => {
                self.dir(&parts, &shown)?;
                self.drain(entry)
            }
            EntryType::Symlink => {
                self.symlink(&parts, link.as_deref(), &shown)?;
                self.drain(entry)
            }
            EntryType::Link => {
                self.hardlink(&parts, link.as_deref(), &shown)?;
                self.drain(entry)
            }
            EntryType::XGlobalHeader | EntryType::XHeader => self.drain(entry),
            EntryType::Char | EntryType::Block => Err(refuse("is a device file".into())),
            EntryType::Fifo => Err(refuse("is a FIFO (named pipe)".into())),
            EntryType::GNUSparse => {
                Err(refuse("is a sparse file, which t2 does not unpack".into()))
            }
            other => Err(refuse(format!(
                "has entry type '{}', which t2 does not unpack",
                (other.as_byte() as char).escape_default()
            ))),
        }
    }

    fn refuse(shown: &str, why: impl Into<String>) -> PackageError {
        PackageError::UnsafeEntry {
            entry: shown.to_string(),
            why: why.into(),
        }
    }

    /// Reads data the entry should not have (counted like file data), so the parser never
    /// has to skip it within its header budget.
    fn drain<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), PackageError> {
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.corrupt_because(one_line(&e.to_string()))),
            };
            self.count(n)?;
        }
    }

    fn count(&mut self, n: usize) -> Result<(), PackageError> {
        self.total = self.total.saturating_add(n as u64);
        if self.total > self.limits.max_unpacked_bytes {
            return Err(self.too_large(self.total));
        }
        Ok(())
    }

    /// Where entry `parts` goes: its parent directories exist (created if needed) and none
    /// is a symlink or a file.
    fn place(&self, parts: &Parts, shown: &str) -> Result<PathBuf, PackageError> {
        let mut path = self.root.to_path_buf();
        let Some((last, parents)) = parts.split_last() else {
            return Err(Self::refuse(shown, "names the package root"));
        };
        for (i, part) in parents.iter().enumerate() {
            path.push(OsStr::from_bytes(part));
            let prefix = || lossy(&parts[..=i].join(&b'/'));
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Self::refuse(
                        shown,
                        format!("has a parent path through the symlink '{}'", prefix()),
                    ))
                }
                Ok(_) => {
                    return Err(Self::refuse(
                        shown,
                        format!("has a parent path through '{}', which is a file", prefix()),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => make_dir(&path)?,
                Err(e) => return Err(Self::io(&path)(e)),
            }
        }
        path.push(OsStr::from_bytes(last));
        Ok(path)
    }

    /// Removes an earlier file or link at `path` (a later entry wins); never a directory.
    fn clear(path: &Path, shown: &str) -> Result<(), PackageError> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_dir() => Err(Self::refuse(
                shown,
                "would replace a directory of the package",
            )),
            Ok(_) => std::fs::remove_file(path).map_err(Self::io(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Self::io(path)(e)),
        }
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        parts: &Parts,
        shown: &str,
    ) -> Result<(), PackageError> {
        let size = entry.size();
        if self.total.saturating_add(size) > self.limits.max_unpacked_bytes {
            return Err(self.too_large(self.total.saturating_add(size)));
        }
        let mode = entry
            .header()
            .mode()
            .map_err(|e| self.corrupt_because(one_line(&e.to_string())))?;
        let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        let path = self.place(parts, shown)?;
        Self::clear(&path, shown)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(Self::io(&path))?;
        let got = self.copy(entry, &mut file, &path)?;
        if got != size {
            return Err(self.corrupt_because(format!(
                "entry '{shown}' ends after {got} of its {size} bytes (the package is truncated)"
            )));
        }
        file.set_permissions(Permissions::from_mode(mode))
            .map_err(Self::io(&path))?;
        self.report.files += 1;
        self.report.bytes += got;
        Ok(())
    }

    /// Copies entry data into `file`, counting every byte against the limit.
    fn copy<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        file: &mut File,
        path: &Path,
    ) -> Result<u64, PackageError> {
        let mut got = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => return Ok(got),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.corrupt_because(one_line(&e.to_string()))),
            };
            self.count(n)?;
            got += n as u64;
            file.write_all(&self.buf[..n]).map_err(Self::io(path))?;
        }
    }

    fn dir(&self, parts: &Parts, shown: &str) -> Result<(), PackageError> {
        if parts.is_empty() {
            return Ok(());
        }
        let path = self.place(parts, shown)?;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_dir() => Ok(()),
            Ok(_) => Err(Self::refuse(
                shown,
                "is a directory where the package already has a file or link",
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => make_dir(&path),
            Err(e) => Err(Self::io(&path)(e)),
        }
    }

    fn symlink(
        &self,
        parts: &Parts,
        target: Option<&[u8]>,
        shown: &str,
    ) -> Result<(), PackageError> {
        let target = target.unwrap_or_default();
        check_symlink_target(parts.len().saturating_sub(1), target)
            .map_err(|why| Self::refuse(shown, why))?;
        let path = self.place(parts, shown)?;
        Self::clear(&path, shown)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &path).map_err(Self::io(&path))
    }

    fn hardlink(
        &mut self,
        parts: &Parts,
        target: Option<&[u8]>,
        shown: &str,
    ) -> Result<(), PackageError> {
        let target = target.unwrap_or_default();
        let shown_target = lossy(target);
        let outside = || {
            Self::refuse(
                shown,
                format!("is a hardlink pointing outside the package (-> {shown_target})"),
            )
        };
        let tparts = entry_components(target).map_err(|_| outside())?;
        let not_a_file = || {
            Self::refuse(
                shown,
                format!(
                    "is a hardlink to '{shown_target}', which is not a file earlier in the package"
                ),
            )
        };
        if tparts.is_empty() || tparts.iter().map(|p| p.to_vec()).eq(parts.iter().cloned()) {
            return Err(not_a_file());
        }
        // The target must be a regular file reached through real directories only.
        let mut from = self.root.to_path_buf();
        for (i, part) in tparts.iter().enumerate() {
            from.push(OsStr::from_bytes(part));
            let last = i + 1 == tparts.len();
            match std::fs::symlink_metadata(&from) {
                Ok(m) if !last && m.file_type().is_dir() => {}
                Ok(m) if last && m.file_type().is_file() => {}
                _ => return Err(not_a_file()),
            }
        }
        let path = self.place(parts, shown)?;
        Self::clear(&path, shown)?;
        std::fs::hard_link(&from, &path).map_err(Self::io(&path))?;
        self.report.files += 1;
        Ok(())
    }
}

/// Creates one directory, mode 0755 whatever the umask.
fn make_dir(path: &Path) -> Result<(), PackageError> {
    std::fs::create_dir(path).map_err(Writer::io(path))?;
    std::fs::set_permissions(path, Permissions::from_mode(0o755)).map_err(Writer::io(path))
}
