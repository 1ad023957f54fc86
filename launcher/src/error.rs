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
    /// The Kubernetes cluster failed or refused (boxed: the error is large).
    #[error(transparent)]
    Kubernetes(Box<t2_kubernetes::KubeError>),
    /// The package uploader (server or client) failed.
    #[error(transparent)]
    Uploader(#[from] t2_uploader::error::UploaderError),
    /// ZooKeeper could not be reached or used.
    #[error(transparent)]
    ZooKeeper(#[from] t2_core::zk::ZkError),
    /// Bad command-line usage.
    #[error("{0}")]
    Usage(String),
    /// Something t2 could not do, said in one line, with no underlying error to keep.
    #[error("{0}")]
    Failed(String),
    /// JSON that could not be read or written.
    #[error("{what}: {source}")]
    Json {
        /// What was being read or written.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
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

impl From<t2_kubernetes::KubeError> for LauncherError {
    fn from(e: t2_kubernetes::KubeError) -> Self {
        Self::Kubernetes(Box::new(e))
    }
}

impl LauncherError {
    /// A JSON error with context.
    pub fn json(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Self {
        let what = what.into();
        move |source| Self::Json { what, source }
    }

    /// An I/O error with context.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}
