//! An init container's second source under direct delivery: the job master's copy of the
//! package (`PackageSource.Fetch` with the job token). Pods made after the submit — a
//! scale-up, a pod rescheduled after a node loss — get the package from there, since the
//! submitter only streams it into the pods that exist while it waits (the job master has
//! its copy from the first workers, which offer theirs: `t2_worker::agent::offer`). What arrives is
//! written beside the package path, checked against the expected size and sha256, and moved
//! into place atomically (as `t2 pod receive` does), so the two sources never leave a part.

use std::path::Path;
use std::time::Duration;

use t2_core::package::landing::{Landing, LandingError};
use t2_proto::package_source_client::PackageSourceClient;
use t2_proto::FetchPackageParams;
use tonic::transport::Endpoint;

/// How long connecting to the job master may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// Why a fetch did not give the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    /// Not there (yet): the job master is not up, or has no copy. Try again later.
    NotYet(String),
    /// Something is wrong that trying again will not fix (a wrong token, a damaged copy).
    Fatal(String),
}

/// Fetches the package from the job master at `endpoint` into `dest`, within `deadline`.
pub async fn fetch_from_jobmaster(
    dialer: &t2_worker::agent::dial::Dialer,
    endpoint: &str,
    token: &str,
    sha256: &str,
    bytes: u64,
    dest: &Path,
    deadline: Duration,
) -> Result<(), FetchFailure> {
    tokio::time::timeout(
        deadline,
        fetch_inner(dialer, endpoint, token, sha256, bytes, dest),
    )
    .await
    .unwrap_or_else(|_| {
        Err(FetchFailure::NotYet(format!(
            "fetching the package from the job master took longer than {}",
            t2_core::duration::format_duration(deadline)
        )))
    })
}

async fn fetch_inner(
    dialer: &t2_worker::agent::dial::Dialer,
    endpoint: &str,
    token: &str,
    sha256: &str,
    bytes: u64,
    dest: &Path,
) -> Result<(), FetchFailure> {
    let endpoint_cfg = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| FetchFailure::Fatal(format!("bad job master address {endpoint}: {e}")))?
        .connect_timeout(CONNECT_DEADLINE);
    let channel = dialer.channel(endpoint_cfg).await.map_err(|e| match e {
        t2_worker::agent::dial::DialError::Final(why) => FetchFailure::Fatal(why),
        t2_worker::agent::dial::DialError::NotYet(why) => {
            FetchFailure::NotYet(format!("cannot reach the job master at {endpoint}: {why}"))
        }
    })?;
    let mut client = PackageSourceClient::new(channel).max_decoding_message_size(4 << 20);
    let mut stream = client
        .fetch(FetchPackageParams {
            token: token.into(),
            sha256: sha256.into(),
        })
        .await
        .map_err(|s| match s.code() {
            tonic::Code::Unauthenticated | tonic::Code::InvalidArgument => {
                FetchFailure::Fatal(format!("the job master refused: {}", s.message()))
            }
            _ => FetchFailure::NotYet(format!("the job master: {}", s.message())),
        })?
        .into_inner();
    let failed = |e: LandingError| match e {
        LandingError::Io { .. } => FetchFailure::Fatal(e.to_string()),
        LandingError::TooLong { bytes } => FetchFailure::Fatal(format!(
            "the job master sent more than the package's {bytes} bytes"
        )),
        LandingError::Short { got, bytes } => FetchFailure::NotYet(format!(
            "the job master's stream ended after {got} of {bytes} bytes"
        )),
        LandingError::Damaged { got, expected } => FetchFailure::Fatal(format!(
            "the job master's copy of the package has sha256 {got}, expected {expected}"
        )),
    };
    let mut landing = Landing::open(dest, "fetching", bytes, sha256)
        .await
        .map_err(failed)?;
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| FetchFailure::NotYet(format!("the package stream broke: {}", s.message())))?
    {
        landing.write(&chunk.data).await.map_err(failed)?;
    }
    landing.finish().await.map_err(failed)
}
