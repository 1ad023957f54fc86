//! What the user handed to `t2 submit`: a directory, a tarball, a single executable or a jar.

use std::path::{Path, PathBuf};


use super::PackageError;

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

impl PackageSource {
    /// Classifies `path`: errors name the path and say what t2 accepts.
    pub fn detect(path: &Path, jar_class: Option<&str>) -> Result<Self, PackageError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|_| PackageError::NotFound { path: shown.clone() })?;
        let path = std::path::absolute(path).map_err(|source| PackageError::Io { path: shown.clone(), source })?;
        let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
        let kind = if meta.is_dir() {
            SourceKind::Directory
        } else if !meta.is_file() {
            return Err(PackageError::Unsupported { path: shown, why: WHAT_WE_TAKE.into() });
        } else if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            SourceKind::Tarball
        } else if name.ends_with(".jar") {
            SourceKind::Jar { class: jar_class.map(str::to_string) }
        } else if meta.permissions().mode() & 0o111 != 0 {
            SourceKind::Executable
        } else {
            return Err(PackageError::Unsupported { path: shown, why: WHAT_WE_TAKE.into() });
        };
        Ok(Self { path, kind })
    }

    /// The `job.yaml` text of this source: read from a directory or tarball root, generated
    /// for an executable (`command: [./NAME]`) or a jar (`command: [java, -jar, NAME]` or
    /// `[java, -cp, NAME, CLASS]`), with `name` from the file name. `None` when a directory or
    /// tarball has no `job.yaml`.
    pub fn job_yaml(&self) -> Result<Option<String>, PackageError> {
        let file = self.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let quoted = |s: &str| serde_json::to_string(s).unwrap_or_default();
        match &self.kind {
            SourceKind::Directory => {
                let p = self.path.join(super::JOB_YAML);
                match std::fs::read_to_string(&p) {
                    Ok(text) => Ok(Some(text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(PackageError::Io { path: p.display().to_string(), source }),
                }
            }
            SourceKind::Tarball => read_job_yaml_from_tarball(&self.path),
            SourceKind::Executable => Ok(Some(format!(
                "name: {}\ncommand: [{}]\n",
                quoted(&self.default_name()),
                quoted(&format!("./{file}"))
            ))),
            SourceKind::Jar { class } => {
                let cmd = match class {
                    Some(c) => format!("[java, -cp, {}, {}]", quoted(&file), quoted(c)),
                    None => format!("[java, -jar, {}]", quoted(&file)),
                };
                Ok(Some(format!("name: {}\ncommand: {cmd}\n", quoted(&self.default_name()))))
            }
        }
    }

    /// A default job name taken from the file or directory name.
    pub fn default_name(&self) -> String {
        let name = self.path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let lower = name.to_lowercase();
        for ext in [".tar.gz", ".tgz", ".jar"] {
            if lower.ends_with(ext) {
                return name[..name.len() - ext.len()].to_string();
            }
        }
        name
    }
}

const WHAT_WE_TAKE: &str = "t2 takes a directory with job.yaml, a .tar.gz, a .jar or an executable file";

/// Largest `job.yaml` read from a tarball.
const MAX_JOB_YAML: u64 = 1 << 20;

fn read_job_yaml_from_tarball(path: &Path) -> Result<Option<String>, PackageError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let corrupt = |e: std::io::Error| PackageError::Corrupt { path: shown.clone(), why: e.to_string() };
    let file = std::fs::File::open(path).map_err(|source| PackageError::Io { path: shown.clone(), source })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        let p = entry.path().map_err(corrupt)?.to_path_buf();
        let p = p.strip_prefix(".").unwrap_or(&p);
        if p == Path::new(super::JOB_YAML) && entry.header().entry_type().is_file() {
            let mut text = String::new();
            entry.take(MAX_JOB_YAML).read_to_string(&mut text).map_err(corrupt)?;
            return Ok(Some(text));
        }
    }
    Ok(None)
}
