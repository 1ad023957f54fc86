//! The `PackageSource` service: hands the job master's copy of the package (when it keeps one,
//! [`JobMasterConfig::package`](crate::JobMasterConfig)) to callers with the job token. On
//! Kubernetes with direct delivery the submitter streams the package into the job master's
//! pod as well, and init containers of pods made later (a scale-up, a rescheduled pod) fetch
//! it here, since nobody streams it to them. The file is put in place only once verified
//! (`t2 pod receive` renames it after checking its sha256), so a present file is the package;
//! the caller checks the sha256 again on arrival.

use std::path::PathBuf;
use std::pin::Pin;

use futures::Stream;
use t2_core::secret::constant_time_eq;
use t2_proto::package_source_server::PackageSource;
use t2_proto::{FetchPackageParams, PackageChunk};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

/// Bytes per chunk (well under gRPC's default 4 MiB message limit).
pub const CHUNK: usize = 1 << 20;
/// Chunks queued per stream.
const QUEUE: usize = 4;

/// Serves the package file at `path`, if any.
#[derive(Debug, Clone)]
pub struct PackageService {
    token: String,
    path: Option<PathBuf>,
}

impl PackageService {
    /// A service checking `token`, serving `path` once it exists.
    pub fn new(token: &str, path: Option<PathBuf>) -> Self {
        Self {
            token: token.into(),
            path,
        }
    }
}

/// The stream of chunks.
type Chunks = Pin<Box<dyn Stream<Item = Result<PackageChunk, Status>> + Send>>;

#[tonic::async_trait]
impl PackageSource for PackageService {
    type FetchStream = Chunks;

    async fn fetch(
        &self,
        request: Request<FetchPackageParams>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let params = request.into_inner();
        if !constant_time_eq(params.token.as_bytes(), self.token.as_bytes()) {
            return Err(Status::unauthenticated(
                "a package fetch presented a wrong job token",
            ));
        }
        if params.sha256.len() != 64 || !params.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Status::invalid_argument(
                "sha256 must be 64 hex digits (the package's hash)",
            ));
        }
        let Some(path) = self.path.clone() else {
            return Err(Status::not_found(
                "this job master keeps no copy of the package",
            ));
        };
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Status::not_found(
                    "the job master has no copy of the package (yet)",
                ))
            }
            Err(e) => {
                return Err(Status::internal(format!(
                    "cannot read the job master's copy of the package: {e}"
                )))
            }
        };
        info!(sha256 = %params.sha256, "handing out the package");
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            let mut file = file;
            loop {
                let mut buf = vec![0u8; CHUNK];
                let n = match file.read(&mut buf).await {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) => {
                        warn!(error = %e, "reading the package copy failed");
                        let _ = tx
                            .send(Err(Status::internal(format!(
                                "reading the job master's copy of the package failed: {e}"
                            ))))
                            .await;
                        return;
                    }
                };
                buf.truncate(n);
                if tx
                    .send(Ok(PackageChunk { data: buf.into() }))
                    .await
                    .is_err()
                {
                    return; // the caller went away
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
