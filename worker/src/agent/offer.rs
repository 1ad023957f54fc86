//! Offering this worker's copy of the package to the job master (`PackageSource.Offer`), so
//! that a job master that keeps copies for pods made later (Kubernetes, direct delivery) has
//! one — also a job master whose pod was re-made after the submit, with an empty work area.
//! The offer is made once the agent has registered and again each time it reconnects to a
//! restarted job master ([`Pushed::Reconnected`]). The job master answers from the first
//! message when it has a copy already or keeps none, so an offer it does not need costs one
//! small request; a failed offer is tried again a few times, then left (the package stays
//! with the worker, and another worker may offer it).

use std::path::PathBuf;
use std::time::Duration;

use t2_proto::package_source_client::PackageSourceClient;
use t2_proto::OfferPackageChunk;
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast;
use tonic::transport::Endpoint;
use tracing::{info, warn};

use super::link::Pushed;

/// Bytes per message (under gRPC's default 4 MiB limit).
const CHUNK: usize = 1 << 20;
/// Attempts per offer.
const ATTEMPTS: u32 = 4;
/// How long connecting may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);
/// How long one attempt may take (a 1 GiB package at 10 MB/s fits).
const ATTEMPT_DEADLINE: Duration = Duration::from_secs(300);

/// What to offer, and to whom.
#[derive(Debug, Clone)]
pub struct Offer {
    /// The job master, `http://host:port` (or `https://` with TLS).
    pub job_master: String,
    /// How to dial it (TLS for a job with `tls: true`), as the agent's own link does.
    pub dialer: super::dial::Dialer,
    /// The job token.
    pub token: String,
    /// The package file.
    pub package: PathBuf,
    /// Its sha256.
    pub sha256: String,
}

/// Offers the package now and after every reconnect, until `events` closes.
pub fn spawn(offer: Offer, mut events: broadcast::Receiver<Pushed>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            offer_with_retries(&offer).await;
            loop {
                match events.recv().await {
                    Ok(Pushed::Reconnected) => break,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    })
}

async fn offer_with_retries(offer: &Offer) {
    for attempt in 1..=ATTEMPTS {
        match tokio::time::timeout(ATTEMPT_DEADLINE, offer_once(offer)).await {
            Ok(Ok(Some(detail))) => {
                info!(%detail, "offered the package to the job master");
                return;
            }
            Ok(Ok(None)) => return, // the job master keeps no copies
            Ok(Err(e)) => {
                warn!(attempt, error = %e, "offering the package to the job master failed")
            }
            Err(_) => warn!(
                attempt,
                "offering the package to the job master took too long"
            ),
        }
        tokio::time::sleep(Duration::from_secs(u64::from(attempt) * 2)).await;
    }
}

/// One offer: `Some(the job master's answer)`, `None` when it keeps no copies.
async fn offer_once(offer: &Offer) -> Result<Option<String>, String> {
    let file = tokio::fs::File::open(&offer.package)
        .await
        .map_err(|e| format!("cannot read {}: {e}", offer.package.display()))?;
    let bytes = file
        .metadata()
        .await
        .map_err(|e| format!("cannot read {}: {e}", offer.package.display()))?
        .len();
    let endpoint = Endpoint::from_shared(offer.job_master.clone())
        .map_err(|e| format!("bad job master address {}: {e}", offer.job_master))?
        .connect_timeout(CONNECT_DEADLINE);
    let channel = offer.dialer.channel(endpoint).await.map_err(|e| {
        format!(
            "cannot reach the job master at {}: {}",
            offer.job_master,
            e.message()
        )
    })?;
    let (token, sha256) = (offer.token.clone(), offer.sha256.clone());
    // Read lazily: when the job master answers from the first message, the rest is not read.
    let chunks = futures::stream::unfold(Some((file, true)), move |state| {
        let (token, sha256) = (token.clone(), sha256.clone());
        async move {
            let (mut file, first) = state?;
            let mut buf = vec![0u8; CHUNK];
            let n = file.read(&mut buf).await.ok()?;
            if n == 0 && !first {
                return None;
            }
            buf.truncate(n);
            let chunk = OfferPackageChunk {
                token: if first { token } else { String::new() },
                sha256: if first { sha256 } else { String::new() },
                bytes: if first { bytes } else { 0 },
                data: buf.into(),
            };
            Some((chunk, Some((file, false))))
        }
    });
    match PackageSourceClient::new(channel)
        .max_encoding_message_size(CHUNK + (64 << 10))
        .offer(chunks)
        .await
    {
        Ok(r) => Ok(Some(r.into_inner().detail)),
        Err(s) if s.code() == tonic::Code::FailedPrecondition => Ok(None),
        Err(s) => Err(format!("the job master: {}", s.message())),
    }
}
