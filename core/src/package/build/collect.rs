//! Choosing what goes into a package built from a directory: a sorted map of relative paths
//! to items, never following symlinks, with `job.yaml` always the given text.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::super::paths::check_symlink_target;
use super::super::{PackageError, JOB_YAML};
use crate::text::one_line;

/// One thing to archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Item {
    /// A directory.
    Dir,
    /// A regular file read from `from`.
    File {
        /// Where it is on disk.
        from: PathBuf,
        /// Any executable bit set.
        exec: bool,
        /// Its size when listed.
        size: u64,
    },
    /// A symlink, stored as a link.
    Symlink {
        /// Its target, verbatim.
        target: PathBuf,
    },
    /// The job spec, from text.
    JobYaml,
}

/// Items by relative path; `BTreeMap` keeps them sorted, which makes archives deterministic.
pub(super) type Items = BTreeMap<PathBuf, Item>;

/// Files identified by device and inode number.
pub(super) type FileIds = Vec<(u64, u64)>;

/// What to package from directory `root`: everything, or only `include` (plus the parents of
/// included paths), skipping the files `skip` (the output being written, should it be inside)
/// and `job.yaml` (replaced).
pub(super) fn from_dir(
    root: &Path,
    include: &[String],
    skip: &FileIds,
) -> Result<Items, PackageError> {
    let mut c = Collector {
        root,
        skip,
        items: Items::new(),
    };
    if include.is_empty() {
        c.walk(Path::new(""))?;
    } else {
        for p in include {
            c.include(p)?;
        }
    }
    c.items.retain(|p, _| !p.starts_with(JOB_YAML));
    c.items.insert(PathBuf::from(JOB_YAML), Item::JobYaml);
    Ok(c.items)
}

/// What to package for a single file: the file at the root, and `job.yaml`.
pub(super) fn single_file(file: &Path) -> Result<Items, PackageError> {
    let shown = one_line(&file.display().to_string());
    let meta = std::fs::metadata(file).map_err(|source| PackageError::Io {
        path: shown.clone(),
        source,
    })?;
    let name = file.file_name().map(PathBuf::from).unwrap_or_default();
    if name.as_os_str().is_empty() || name == Path::new(JOB_YAML) {
        return Err(PackageError::Unsupported {
            path: shown,
            why: format!("a single-file job cannot be called '{JOB_YAML}'"),
        });
    }
    let mut items = Items::new();
    items.insert(
        name,
        Item::File {
            from: file.to_path_buf(),
            exec: meta.permissions().mode() & 0o111 != 0,
            size: meta.len(),
        },
    );
    items.insert(PathBuf::from(JOB_YAML), Item::JobYaml);
    Ok(items)
}

struct Collector<'a> {
    root: &'a Path,
    skip: &'a FileIds,
    items: Items,
}

impl Collector<'_> {
    fn io(&self, rel: &Path) -> impl FnOnce(std::io::Error) -> PackageError {
        let path = one_line(&self.root.join(rel).display().to_string());
        move |source| PackageError::Io { path, source }
    }

    fn unsupported(&self, why: String) -> PackageError {
        PackageError::Unsupported {
            path: one_line(&self.root.display().to_string()),
            why,
        }
    }

    /// Adds `rel` (already known to exist) and, for a directory, everything below it.
    fn add(&mut self, rel: &Path) -> Result<(), PackageError> {
        let abs = self.root.join(rel);
        let meta = std::fs::symlink_metadata(&abs).map_err(self.io(rel))?;
        if self.skip.contains(&(meta.dev(), meta.ino())) {
            return Ok(());
        }
        let ft = meta.file_type();
        if ft.is_dir() {
            self.items.insert(rel.to_path_buf(), Item::Dir);
            self.walk(rel)?;
        } else if ft.is_file() {
            let exec = meta.permissions().mode() & 0o111 != 0;
            let item = Item::File {
                from: abs,
                exec,
                size: meta.len(),
            };
            self.items.insert(rel.to_path_buf(), item);
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&abs).map_err(self.io(rel))?;
            let depth = rel.components().count().saturating_sub(1);
            if let Err(why) = check_symlink_target(depth, target.as_os_str().as_bytes()) {
                return Err(self.unsupported(format!(
                    "'{}' {why}; workers would refuse it, so remove it or list only what the job needs under `include:`",
                    one_line(&rel.display().to_string())
                )));
            }
            self.items
                .insert(rel.to_path_buf(), Item::Symlink { target });
        } else {
            tracing::warn!(path = %abs.display(), "not packaged: not a file, directory or symlink");
        }
        Ok(())
    }

    /// Adds the content of directory `rel`.
    fn walk(&mut self, rel: &Path) -> Result<(), PackageError> {
        let dir = self.root.join(rel);
        for entry in std::fs::read_dir(&dir).map_err(self.io(rel))? {
            let entry = entry.map_err(self.io(rel))?;
            self.add(&rel.join(entry.file_name()))?;
        }
        Ok(())
    }

    /// Adds one `include` path, its parent directories, and (for a directory) its content.
    fn include(&mut self, p: &str) -> Result<(), PackageError> {
        let rel = Path::new(p);
        let inside = rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if p.is_empty() || !inside {
            return Err(self.unsupported(format!(
                "include lists '{}', which is not a path inside the job directory",
                one_line(p)
            )));
        }
        let rel: PathBuf = rel
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        if rel.as_os_str().is_empty() {
            return self.walk(Path::new(""));
        }
        let mut parent = PathBuf::new();
        let parts: Vec<_> = rel.components().collect();
        for part in &parts[..parts.len() - 1] {
            parent.push(part);
            match std::fs::symlink_metadata(self.root.join(&parent)) {
                Ok(m) if m.file_type().is_dir() => {
                    self.items.insert(parent.clone(), Item::Dir);
                }
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.unsupported(format!(
                        "include lists '{}', which goes through the symlink '{}'; include the link's target instead",
                        one_line(p),
                        one_line(&parent.display().to_string())
                    )))
                }
                _ => return Err(self.missing(p)),
            }
        }
        match std::fs::symlink_metadata(self.root.join(&rel)) {
            Ok(_) => self.add(&rel),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.missing(p)),
            Err(e) => Err(self.io(&rel)(e)),
        }
    }

    fn missing(&self, p: &str) -> PackageError {
        self.unsupported(format!(
            "include lists '{}', which does not exist",
            one_line(p)
        ))
    }
}
