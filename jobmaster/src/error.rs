//! Errors of the job master.

use thiserror::Error;

/// Errors that stop the job master.
#[derive(Debug, Error)]
pub enum JobMasterError {
    /// The gRPC server failed.
    #[error("job master server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The state store failed.
    #[error("job state store failed: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The master task ended without a job outcome.
    #[error("job master stopped before the job ended")]
    Stopped,
}
