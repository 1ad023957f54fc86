//! What the user handed to `t2 submit`: a directory, a tarball, a single executable or a jar.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::paths::entry_components;
use super::{PackageError, JOB_YAML};
use crate::text::one_line;

/// The kind of a package source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A job directory (normally with `job.yaml` at its root).
    Directory,
    /// An existing `.tar.gz`/`.tgz` package.
    Tarball,
    /// A single executable file, run as the command.
    Executable,
    /// A `.jar`, run as `java -jar` or `java -cp JAR CLASS`.
    Jar {
        /// Main class for `-cp` mode (`--class`).
        class: Option<String>,
    },
}

/// A classified package source.
#[derive(Debug, Clone)]
pub struct PackageSource {
    /// The path as given, made absolute.
    pub path: PathBuf,
    /// What it is.
    pub kind: SourceKind,
}

/// Largest `job.yaml` read from a source.
const MAX_JOB_YAML: u64 = 1 << 20;

/// What `t2 submit` accepts, for error messages.
const ACCEPTED: &str = "t2 accepts a directory with job.yaml, a .tar.gz, a .jar or an executable";

impl PackageSource {
    /// Classifies `path`: errors name the path and say what t2 accepts.
    pub fn detect(path: &Path, jar_class: Option<&str>) -> Result<Self, PackageError> {
        let shown = one_line(&path.display().to_string());
        let meta = std::fs::metadata(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => PackageError::NotFound {
                path: shown.clone(),
            },
            _ => PackageError::Io {
                path: shown.clone(),
                source,
            },
        })?;
        let unsupported = |why: String| PackageError::Unsupported {
            path: shown.clone(),
            why,
        };
        let abs = std::path::absolute(path).map_err(|source| PackageError::Io {
            path: shown.clone(),
            source,
        })?;
        let file_name = abs
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let kind = if meta.is_dir() {
            SourceKind::Directory
        } else if !meta.is_file() {
            return Err(unsupported(format!(
                "it is not a regular file or a directory; {ACCEPTED}"
            )));
        } else if file_name.ends_with(".tar.gz") || file_name.ends_with(".tgz") {
            SourceKind::Tarball
        } else if file_name.ends_with(".jar") {
            if let Some(class) = jar_class.filter(|c| !is_java_class_name(c)) {
                return Err(unsupported(format!(
                    "'{}' is not a Java class name (e.g. org.example.Main)",
                    one_line(class)
                )));
            }
            SourceKind::Jar {
                class: jar_class.map(str::to_string),
            }
        } else if meta.permissions().mode() & 0o111 != 0 {
            SourceKind::Executable
        } else {
            return Err(unsupported(format!(
                "{ACCEPTED}, and this is a file without the executable bit (chmod +x it if it is a program)"
            )));
        };
        if jar_class.is_some() && !matches!(kind, SourceKind::Jar { .. }) {
            return Err(unsupported("--class applies only to a .jar".into()));
        }
        Ok(Self { path: abs, kind })
    }

    /// The `job.yaml` text of this source: read from a directory or tarball root, generated
    /// for an executable (`command: [./NAME]`) or a jar (`command: [java, -jar, NAME]` or
    /// `[java, -cp, NAME, CLASS]`), with `name` from the file name. `None` when a directory or
    /// tarball has no `job.yaml`. At most 1 MiB is read.
    pub fn job_yaml(&self) -> Result<Option<String>, PackageError> {
        let file = self.file_name();
        match &self.kind {
            SourceKind::Directory => self.read_dir_job_yaml(),
            SourceKind::Tarball => self.read_tarball_job_yaml(),
            SourceKind::Executable => Ok(Some(generated(
                &self.default_name(),
                &[&format!("./{file}")],
            ))),
            SourceKind::Jar { class: None } => Ok(Some(generated(
                &self.default_name(),
                &["java", "-jar", &file],
            ))),
            SourceKind::Jar { class: Some(class) } => Ok(Some(generated(
                &self.default_name(),
                &["java", "-cp", &file, class],
            ))),
        }
    }

    /// A default job name taken from the file or directory name: the file name without
    /// `.tar.gz`, `.tgz` or `.jar` (an executable keeps its whole name: `pi.sh` → `pi.sh`,
    /// which [`crate::names::sanitize_job_name`] makes `pi-sh`).
    pub fn default_name(&self) -> String {
        let name = self.file_name();
        let lower = name.to_ascii_lowercase();
        let strip = match self.kind {
            SourceKind::Tarball => &[".tar.gz", ".tgz"][..],
            SourceKind::Jar { .. } => &[".jar"][..],
            SourceKind::Directory | SourceKind::Executable => &[][..],
        };
        strip
            .iter()
            .find(|ext| lower.ends_with(*ext) && lower.len() > ext.len())
            .map(|ext| name[..name.len() - ext.len()].to_string())
            .unwrap_or(name)
    }

    /// The last component of the path (resolving `..` and `/` when needed).
    fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .or_else(|| {
                let real = std::fs::canonicalize(&self.path).ok()?;
                real.file_name().map(|n| n.to_string_lossy().to_string())
            })
            .unwrap_or_else(|| "job".to_string())
    }

    fn read_dir_job_yaml(&self) -> Result<Option<String>, PackageError> {
        let path = self.path.join(JOB_YAML);
        let shown = one_line(&path.display().to_string());
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(PackageError::Io {
                    path: shown,
                    source,
                })
            }
        };
        let io = |source| PackageError::Io {
            path: shown.clone(),
            source,
        };
        if !file.metadata().map_err(io)?.is_file() {
            return Err(PackageError::Unsupported {
                path: one_line(&self.path.display().to_string()),
                why: "its job.yaml is not a regular file".into(),
            });
        }
        bounded_text(file, &self.path).map(Some)
    }

    fn read_tarball_job_yaml(&self) -> Result<Option<String>, PackageError> {
        let shown = one_line(&self.path.display().to_string());
        let corrupt = |e: std::io::Error| PackageError::Corrupt {
            path: shown.clone(),
            why: one_line(&e.to_string()),
        };
        let file = std::fs::File::open(&self.path).map_err(|source| PackageError::Io {
            path: shown.clone(),
            source,
        })?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        for entry in archive.entries().map_err(corrupt)? {
            let entry = entry.map_err(corrupt)?;
            let is_job_yaml = matches!(
                entry_components(&entry.path_bytes()).as_deref(),
                Ok([name]) if *name == JOB_YAML.as_bytes()
            );
            if !is_job_yaml {
                continue;
            }
            if !entry.header().entry_type().is_file() {
                return Err(PackageError::Unsupported {
                    path: shown,
                    why: "its job.yaml is not a regular file".into(),
                });
            }
            return bounded_text(entry, &self.path).map(Some);
        }
        Ok(None)
    }
}

/// Reads at most [`MAX_JOB_YAML`] bytes of UTF-8 text.
fn bounded_text(r: impl Read, source: &Path) -> Result<String, PackageError> {
    let shown = one_line(&source.display().to_string());
    let mut bytes = Vec::new();
    r.take(MAX_JOB_YAML + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PackageError::Corrupt {
            path: shown.clone(),
            why: one_line(&e.to_string()),
        })?;
    if bytes.len() as u64 > MAX_JOB_YAML {
        return Err(PackageError::Unsupported {
            path: shown,
            why: "its job.yaml is over 1 MiB".into(),
        });
    }
    String::from_utf8(bytes).map_err(|_| PackageError::Unsupported {
        path: shown,
        why: "its job.yaml is not UTF-8 text".into(),
    })
}

/// A generated `job.yaml`; strings are JSON-quoted, which YAML reads as double-quoted scalars,
/// so any file name is safe.
fn generated(name: &str, command: &[&str]) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let command: Vec<String> = command.iter().map(|c| q(c)).collect();
    format!("name: {}\ncommand: [{}]\n", q(name), command.join(", "))
}

/// True for a Java class name such as `org.example.Main`.
fn is_java_class_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_' || c == '$')
                && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
}

#[cfg(test)]
mod tests;
