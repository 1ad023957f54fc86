//! The in-cluster job master's side of `t2 scale`: a task that watches the job's root
//! ConfigMap for scale requests ([`scale_request`](crate::scale_request)), carries
//! each out through the job master's own `Scale` RPC on loopback (the one scale path: the
//! cluster scales the worker StatefulSet, then the workers are told) and writes the answer —
//! the new number of workers, or the job master's reason — back into the root with the
//! request's ID. The root is followed by [`RootWatch`]; after a failure it is re-listed after
//! a bounded backoff. The task ends when the root is deleted (the job master also stops it when the job
//! ends).

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::ScaleParams;
use tonic::transport::Endpoint;
use tracing::{info, warn};

use crate::client::Kube;
use crate::manifests::root::keys;
use crate::root_watch::{Read, RootChange, RootWatch};
use crate::scale_request::{unanswered, ScaleAnswer, ScaleRequest};

/// First wait after a failed watch or list; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the `Scale` RPC may take (under `t2 scale`'s 60 s).
const RPC_DEADLINE: Duration = Duration::from_secs(45);
/// How long connecting to the job master on loopback may take.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// Carries out the scale requests of one job.
pub struct Scaler {
    kube: Kube,
    id: String,
    endpoint: String,
    token: String,
    /// How the job master is dialled (TLS for a job with `tls: true`).
    dialer: t2_worker::agent::dial::Dialer,
    /// The answer to the latest request carried out, kept until it is written (a failed
    /// write is retried with it, never by scaling again).
    last: Option<ScaleAnswer>,
}

impl Scaler {
    /// The scaler of job `id`, whose job master serves gRPC at `endpoint` (e.g.
    /// `http://127.0.0.1:7710`) and takes `token`.
    pub fn new(kube: Kube, id: &str, endpoint: &str, token: &str) -> Self {
        Self {
            kube,
            id: id.into(),
            endpoint: endpoint.into(),
            token: token.into(),
            dialer: t2_worker::agent::dial::Dialer::plain(),
            last: None,
        }
    }

    /// Dials the job master with `dialer` (a job with TLS).
    pub fn with_dialer(mut self, dialer: t2_worker::agent::dial::Dialer) -> Self {
        self.dialer = dialer;
        self
    }

    /// Runs until the job's root is deleted.
    pub async fn run(mut self) {
        let mut watch = RootWatch::new(&self.kube, &self.id, Read::List);
        let mut backoff = FIRST_BACKOFF;
        loop {
            let handled = match watch.next().await {
                Ok(RootChange::Gone(_)) => {
                    info!(job_id = %self.id, "the job's root is gone; no more scale requests");
                    return;
                }
                Ok(RootChange::Now(root)) => self.handle(&root).await,
                Err(e) => Err(e.to_string()),
            };
            match handled {
                Ok(()) => backoff = FIRST_BACKOFF,
                Err(e) => {
                    warn!(job_id = %self.id, error = %e, retry_in = ?backoff, "watching for scale requests failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    watch.restart();
                }
            }
        }
    }

    /// Carries out the unanswered request in `root`, if any, and writes the answer.
    async fn handle(&mut self, root: &ConfigMap) -> Result<(), String> {
        let Some(request) = root.data.as_ref().and_then(unanswered) else {
            return Ok(());
        };
        let answer = match self.last.clone().filter(|a| a.id == request.id) {
            Some(a) => a,
            None => {
                let a = self.carry_out(&request).await;
                self.last = Some(a.clone());
                a
            }
        };
        let body = serde_json::json!({"data": {keys::SCALE_ANSWER: answer.to_json()}});
        self.kube
            .api::<ConfigMap>()
            .patch(&self.id, &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|e| {
                format!(
                    "cannot write the answer to scale request {}: {e}",
                    request.id
                )
            })?;
        Ok(())
    }

    /// Asks the job master for `request.workers` workers.
    async fn carry_out(&self, request: &ScaleRequest) -> ScaleAnswer {
        info!(job_id = %self.id, request = %request.id, workers = request.workers, "scale requested");
        match self.call_scale(request.workers).await {
            Ok(workers) => {
                info!(job_id = %self.id, request = %request.id, workers, "scaled");
                ScaleAnswer::done(&request.id, workers)
            }
            Err(why) => {
                warn!(job_id = %self.id, request = %request.id, workers = request.workers, reason = %why, "scale refused");
                ScaleAnswer::failed(&request.id, why)
            }
        }
    }

    async fn call_scale(&self, workers: u32) -> Result<u32, String> {
        let endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| format!("bad job master address {}: {e}", self.endpoint))?
            .connect_timeout(CONNECT_DEADLINE)
            .timeout(RPC_DEADLINE);
        let channel = self
            .dialer
            .channel(endpoint)
            .await
            .map_err(|e| format!("cannot reach the job master at {}: {e}", self.endpoint))?;
        let reply = JobMasterClient::new(channel)
            .scale(ScaleParams {
                token: self.token.clone(),
                num_workers: workers,
            })
            .await
            .map_err(|s| match s.message() {
                "" => format!("the job master answered {:?}", s.code()),
                m => m.to_string(),
            })?;
        Ok(reply.into_inner().num_workers)
    }
}
