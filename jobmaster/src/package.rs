//! The `PackageSource` service: hands the job master's copy of the package (when it keeps one,
//! [`JobMasterConfig::package`](crate::JobMasterConfig)) to callers with the job token, and
//! takes that copy from the workers. On Kubernetes with direct delivery the submitter
//! streams the package into the worker pods only; a few workers offer their copy to the job
//! master whenever they (re)connect (`Offer`), so the job master has one — also when its pod
//! was re-made by its StatefulSet after the submit, with an empty work area — and init
//! containers of pods made later (a scale-up, a rescheduled pod) fetch it here (`Fetch`).
//! An offer is taken only when the job master has no copy and is not taking one already; it
//! is written beside the package path, checked against the job's package size and sha256,
//! and renamed into place, so a present file is the package (the caller of `Fetch` checks the
//! sha256 again on arrival).

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::Stream;
use t2_core::package::landing::{Landing, LandingError};
use t2_core::secret::constant_time_eq;
use t2_proto::package_source_server::PackageSource;
use t2_proto::{FetchPackageParams, OfferPackageChunk, OfferPackageResult, PackageChunk};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

/// Bytes per chunk (well under gRPC's default 4 MiB message limit).
pub const CHUNK: usize = 1 << 20;
/// Chunks queued per stream.
const QUEUE: usize = 4;

/// Serves the package file at `path`, if any, and takes offered copies of the `expected`
/// package (sha256, bytes) into it.
#[derive(Debug, Clone)]
pub struct PackageService {
    token: String,
    path: Option<PathBuf>,
    expected: Option<(String, u64)>,
    /// An offer is being taken.
    taking: Arc<AtomicBool>,
}

impl PackageService {
    /// A service checking `token`, serving `path` once it exists.
    pub fn new(token: &str, path: Option<PathBuf>) -> Self {
        Self {
            token: token.into(),
            path,
            expected: None,
            taking: Arc::default(),
        }
    }

    /// Takes offered copies of the package with this sha256 and size (none without).
    pub fn with_expected(mut self, expected: Option<(String, u64)>) -> Self {
        self.expected = expected.map(|(sha, bytes)| (sha.to_ascii_lowercase(), bytes));
        self
    }

    fn check_token(&self, token: &str, what: &str) -> Result<(), Status> {
        if constant_time_eq(token.as_bytes(), self.token.as_bytes()) {
            Ok(())
        } else {
            Err(Status::unauthenticated(format!(
                "a package {what} presented a wrong job token"
            )))
        }
    }
}

/// Clears the "taking an offer" flag when dropped.
struct Taking(Arc<AtomicBool>);

impl Drop for Taking {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Writes the rest of an offer (`first` already read) beside `dest`, checks its size and
/// sha256, and moves it into place.
async fn take_offer(
    first: OfferPackageChunk,
    rest: &mut Streaming<OfferPackageChunk>,
    dest: &Path,
    sha256: &str,
    bytes: u64,
) -> Result<(), Status> {
    let refused = |e: LandingError| match e {
        LandingError::Io { .. } => Status::internal(e.to_string()),
        LandingError::TooLong { bytes } => Status::invalid_argument(format!(
            "the offer is longer than the package's {bytes} bytes"
        )),
        LandingError::Short { got, bytes } => Status::invalid_argument(format!(
            "the offer ended after {got} of the package's {bytes} bytes"
        )),
        LandingError::Damaged { got, expected } => Status::invalid_argument(format!(
            "the offered copy has sha256 {got}, not the job's package {expected}"
        )),
    };
    let mut landing = Landing::open(dest, "offered", bytes, sha256)
        .await
        .map_err(refused)?;
    let mut chunk = Some(first);
    while let Some(c) = chunk {
        landing.write(&c.data).await.map_err(refused)?;
        chunk = rest.message().await?;
    }
    landing.finish().await.map_err(refused)
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
        self.check_token(&params.token, "fetch")?;
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

    async fn offer(
        &self,
        request: Request<Streaming<OfferPackageChunk>>,
    ) -> Result<Response<OfferPackageResult>, Status> {
        let mut stream = request.into_inner();
        let Some(first) = stream.message().await? else {
            return Err(Status::invalid_argument("an empty package offer"));
        };
        self.check_token(&first.token, "offer")?;
        let answer = |kept: bool, detail: &str| {
            Ok(Response::new(OfferPackageResult {
                kept,
                detail: detail.into(),
            }))
        };
        let (Some(path), Some((sha256, bytes))) = (self.path.as_ref(), self.expected.as_ref())
        else {
            return Err(Status::failed_precondition(
                "this job master keeps no copy of the package",
            ));
        };
        if !first.sha256.eq_ignore_ascii_case(sha256) || first.bytes != *bytes {
            return Err(Status::invalid_argument(format!(
                "the offer is of package {} ({} bytes), not the job's {sha256} ({bytes} bytes)",
                first.sha256, first.bytes
            )));
        }
        if tokio::fs::try_exists(path).await.unwrap_or(false) {
            return answer(false, "the job master has a copy already");
        }
        if self.taking.swap(true, Ordering::SeqCst) {
            return answer(false, "the job master is taking a copy from another worker");
        }
        let _taking = Taking(self.taking.clone());
        match take_offer(first, &mut stream, path, sha256, *bytes).await {
            Ok(()) => {
                info!(sha256 = %sha256, bytes, "kept the copy of the package a worker offered");
                answer(true, "kept")
            }
            Err(e) => {
                warn!(error = %e.message(), "a worker's offer of the package failed");
                Err(e)
            }
        }
    }
}
