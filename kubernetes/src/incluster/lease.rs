//! The job's lease on its package on the uploader (uploader delivery): the job master renews
//! it while the job runs, so the uploader's TTL sweep never removes a package that pods made
//! later (or restarted) still download, and drops it when the job ends.
//!
//! It holds only the job's reference key ([`t2_uploader::auth::ref_key`], from the job's
//! Secret), which opens this job's reference to this package and nothing else. A job master
//! that stops (its pod going away) only stops renewing: the next one takes over; a job
//! killed with `t2 kill` lets its lease lapse.

use std::time::Duration;

use t2_uploader::client::{Deleted, UploaderClient};
use tracing::{info, warn};

use super::env;
use crate::manifests::pod::env as names;

/// How long the end-of-job drop may take.
const DROP_DEADLINE: Duration = Duration::from_secs(10);

/// One job's reference to its package on one uploader.
#[derive(Debug, Clone)]
pub struct PackageLease {
    client: UploaderClient,
    sha256: String,
    job: String,
}

impl PackageLease {
    /// The lease of job `job` on package `sha256` at `package_url` (`…/packages/<sha256>`),
    /// renewed with the job's reference key `key`.
    pub fn new(package_url: &str, sha256: &str, job: &str, key: &str) -> Result<Self, String> {
        let suffix = format!("/packages/{sha256}");
        let base = package_url.strip_suffix(&suffix).ok_or_else(|| {
            format!(
                "{}={package_url} is not the URL of package {sha256}",
                names::PACKAGE_URL
            )
        })?;
        let client = UploaderClient::new(base, Some(key.to_string()))
            .map_err(|e| format!("{}: {e}", names::PACKAGE_URL))?;
        Ok(Self {
            client,
            sha256: sha256.to_string(),
            job: job.to_string(),
        })
    }

    /// The job master's lease, from its pod's environment; `None` with direct delivery (no
    /// `T2_UPLOADER_REF_KEY`).
    pub fn from_env(job: &str) -> Result<Option<Self>, String> {
        let Some(key) = std::env::var(names::UPLOADER_REF_KEY)
            .ok()
            .filter(|k| !k.trim().is_empty())
        else {
            return Ok(None);
        };
        let url = env::required(names::PACKAGE_URL)?;
        let sha256 = env::required(names::PACKAGE_SHA256)?;
        Self::new(&url, &sha256, job, key.trim()).map(Some)
    }

    /// Renews the lease until the task is aborted.
    pub fn spawn_renewal(&self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(
            self.client
                .clone()
                .keep_lease(self.sha256.clone(), self.job.clone()),
        )
    }

    /// Drops the job's reference (the uploader deletes the package when no other job uses
    /// it). Failures are logged, never fatal: the lease lapses anyway.
    pub async fn release(&self) {
        let url = self.client.package_url(&self.sha256);
        match tokio::time::timeout(
            DROP_DEADLINE,
            self.client.delete(&self.sha256, Some(&self.job)),
        )
        .await
        {
            Ok(Ok(Deleted::Removed)) => info!(%url, "the job's package deleted from the uploader"),
            Ok(Ok(Deleted::Kept(why))) => {
                info!(%url, why, "the job's package kept on the uploader")
            }
            Ok(Ok(Deleted::Missing)) => {
                info!(%url, "the job's package already gone from the uploader")
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot drop the job's reference to its package; it lapses")
            }
            Err(_) => {
                warn!(%url, "cannot drop the job's reference to its package: no answer within {DROP_DEADLINE:?}; it lapses")
            }
        }
    }
}
