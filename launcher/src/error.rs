//! Errors of the `t2` command; each displays as one readable line.

use thiserror::Error;

/// What can go wrong in a `t2` command.
#[derive(Debug, Error)]
pub enum LauncherError {
    /// Bad configuration or job spec.
    #[error(transparent)]
    Spec(#[from] t2_core::spec::SpecError),
    /// Bad package.
    #[error(transparent)]
    Package(#[from] t2_core::package::PackageError),
    /// Bad name or job ID.
    #[error(transparent)]
    Name(#[from] t2_core::names::NameError),
    /// Job folder trouble.
    #[error(transparent)]
    JobDir(#[from] t2_core::jobdir::JobDirError),
    /// Worker agent failure.
    #[error(transparent)]
    Agent(#[from] t2_worker::agent::AgentError),
    /// A worker API call failed.
    #[error(transparent)]
    Worker(#[from] t2_worker::WorkerError),
    /// Job master failure.
    #[error(transparent)]
    JobMaster(#[from] t2_jobmaster::JobMasterError),
    /// Bad command-line usage.
    #[error("{0}")]
    Usage(String),
    /// Something the cluster backend could not do.
    #[error("{0}")]
    Cluster(String),
    /// I/O with context.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl LauncherError {
    /// An I/O error with context.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
