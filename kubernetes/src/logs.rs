//! `t2 logs JOB [--worker I] [-f]` on Kubernetes: the pod log API of each worker container,
//! every line prefixed `[worker-I]` (worker I is container I mod workers_per_pod of pod
//! I / workers_per_pod). With `-f` the logs of all workers are followed at once until their
//! pods go away (the job ended).

use futures::io::AsyncBufReadExt;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use tokio::sync::mpsc;

use super::client::Kube;
use super::error::{KubeError, Op};
use super::jobs::{get_root, job_pods};
use super::manifests::containers::worker_container_name;
use super::manifests::labels::{ROLE, ROLE_WORKER};
use super::manifests::root::keys;

/// One worker's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// Worker ID.
    pub worker: u32,
    /// Its pod.
    pub pod: String,
    /// Its container.
    pub container: String,
}

/// The logs to read: every worker of job `id`, or only `worker`.
pub async fn log_targets(
    kube: &Kube,
    id: &str,
    worker: Option<u32>,
) -> Result<Vec<LogTarget>, KubeError> {
    let root = get_root(kube, id).await?;
    let wpp: u32 = root
        .data
        .as_ref()
        .and_then(|d| d.get(keys::WORKERS_PER_POD))
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1);
    let pods = job_pods(kube, id).await?;
    let mut out = Vec::new();
    for p in &pods {
        let is_worker = p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ROLE))
            .is_some_and(|r| r == ROLE_WORKER);
        let name = p.metadata.name.clone().unwrap_or_default();
        let Some(ordinal) = name.rsplit('-').next().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if !is_worker {
            continue;
        }
        for k in 0..wpp {
            out.push(LogTarget {
                worker: ordinal * wpp + k,
                pod: name.clone(),
                container: worker_container_name(k),
            });
        }
    }
    out.sort_by_key(|t| t.worker);
    if let Some(w) = worker {
        out.retain(|t| t.worker == w);
        if out.is_empty() {
            return Err(KubeError::Config(format!(
                "job {id} has no running pod for worker {w} (pod {id}-{}); see 't2 status {id}'",
                w / wpp
            )));
        }
    }
    Ok(out)
}

fn params(t: &LogTarget, follow: bool) -> LogParams {
    LogParams {
        container: Some(t.container.clone()),
        follow,
        ..LogParams::default()
    }
}

/// Writes the logs of `targets` to `out`, one line at a time with its prefix.
pub async fn print_logs(
    kube: &Kube,
    targets: &[LogTarget],
    follow: bool,
    out: &mut (dyn FnMut(&str) + Send),
) -> Result<(), KubeError> {
    let api = kube.api::<Pod>();
    if !follow {
        for t in targets {
            let text = api.logs(&t.pod, &params(t, false)).await.map_err(|e| {
                Op::named("get", "pods/log", &kube.namespace, &t.pod).error(&kube.server, e)
            })?;
            for line in text.lines() {
                out(&format!("[worker-{}] {line}", t.worker));
            }
        }
        return Ok(());
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<String, KubeError>>();
    for t in targets.iter().cloned() {
        let (api, tx, kube) = (api.clone(), tx.clone(), kube.clone());
        tokio::spawn(async move {
            let op = Op::named("get", "pods/log", &kube.namespace, &t.pod);
            match api.log_stream(&t.pod, &params(&t, true)).await {
                Ok(reader) => {
                    let mut lines = reader.lines();
                    while let Some(Ok(line)) = lines.next().await {
                        if tx
                            .send(Ok(format!("[worker-{}] {line}", t.worker)))
                            .is_err()
                        {
                            break;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(op.error(&kube.server, e)));
                }
            }
        });
    }
    drop(tx);
    while let Some(line) = rx.recv().await {
        out(&line?);
    }
    Ok(())
}
