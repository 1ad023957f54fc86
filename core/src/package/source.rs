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
        todo!("{path:?} {jar_class:?}")
    }

    /// The `job.yaml` text of this source: read from a directory or tarball root, generated
    /// for an executable (`command: [./NAME]`) or a jar (`command: [java, -jar, NAME]` or
    /// `[java, -cp, NAME, CLASS]`), with `name` from the file name. `None` when a directory or
    /// tarball has no `job.yaml`.
    pub fn job_yaml(&self) -> Result<Option<String>, PackageError> {
        todo!()
    }

    /// A default job name taken from the file or directory name.
    pub fn default_name(&self) -> String {
        todo!()
    }
}
