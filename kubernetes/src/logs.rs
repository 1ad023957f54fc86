//! `t2 logs JOB [--worker I | --jobmaster] [-f] [--tail N] [--since D] [--timestamps]` on
//! Kubernetes: the pod log API of each worker container, every line prefixed `[worker-I]`
//! unless one worker is asked for (worker I is container I mod workers_per_pod of pod
//! I / workers_per_pod), lines of several
//! workers merged in time order (the API server's timestamps). With `-f` the logs of all
//! workers are followed at once until their pods go away (the job ended): a stream ends when
//! its container ends, and is also closed once its pod is gone from the API server, for a
//! node whose log server keeps a stream open after that (KWOK's does, and a lost node's).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::io::AsyncBufReadExt;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::LogParams;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::client::Kube;
use super::error::{KubeError, Op};
use super::jobs::{get_root, job_pods};
use super::manifests::containers::worker_container_name;
use super::manifests::labels::{ROLE, ROLE_JOBMASTER, ROLE_WORKER};
use super::manifests::pod::JM_CONTAINER;
use super::manifests::root::keys;

/// How often `-f` checks that the followed pods are still there.
const POD_CHECK: Duration = Duration::from_secs(2);
/// How long a stream is still read after its pod is gone (its last lines in flight).
const AFTER_GONE: Duration = Duration::from_secs(2);
/// Longest `-f` follows (a week).
const FOLLOW_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// One worker's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogTarget {
    /// Worker ID.
    pub worker: u32,
    /// Its pod.
    pub pod: String,
    /// Its pod's UID (a pod made again under the same name is another pod).
    pub uid: String,
    /// Its container.
    pub container: String,
    /// What its lines are prefixed with (`[worker-I]`; none for the job master).
    pub prefix: Option<String>,
}

/// Which part of the logs to print, as `kubectl logs` flags say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogView {
    /// Keep printing until the pods go.
    pub follow: bool,
    /// Only the last N lines (of each container; merged, the last N of all).
    pub tail: Option<usize>,
    /// Only lines of the last this many seconds.
    pub since_seconds: Option<i64>,
    /// Start each line with its time (the API server's RFC 3339 timestamp).
    pub timestamps: bool,
}

/// The job master's log of job `id`.
pub async fn jobmaster_target(kube: &Kube, id: &str) -> Result<Vec<LogTarget>, KubeError> {
    let pods = job_pods(kube, id).await?;
    let jm = pods.iter().find(|p| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ROLE))
            .is_some_and(|r| r == ROLE_JOBMASTER)
    });
    match jm {
        Some(p) => Ok(vec![LogTarget {
            worker: 0,
            pod: p.metadata.name.clone().unwrap_or_default(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            container: JM_CONTAINER.into(),
            prefix: None,
        }]),
        None => Err(KubeError::Config(format!(
            "job {id} has no job master pod; see 't2 status {id}'"
        ))),
    }
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
                uid: p.metadata.uid.clone().unwrap_or_default(),
                container: worker_container_name(k),
                prefix: Some(format!("[worker-{}]", ordinal * wpp + k)),
            });
        }
    }
    out.sort_by_key(|t| t.worker);
    if let Some(w) = worker {
        // One worker's log is printed as it is, as locally.
        out.retain(|t| t.worker == w);
        for t in &mut out {
            t.prefix = None;
        }
        if out.is_empty() {
            return Err(KubeError::Config(format!(
                "job {id} has no running pod for worker {w} (pod {id}-{}); see 't2 status {id}'",
                w / wpp
            )));
        }
    }
    Ok(out)
}

fn params(t: &LogTarget, view: &LogView, timestamps: bool) -> LogParams {
    LogParams {
        container: Some(t.container.clone()),
        follow: view.follow,
        tail_lines: view.tail.map(|n| n as i64),
        since_seconds: view.since_seconds,
        timestamps,
        ..LogParams::default()
    }
}

/// `line` with `prefix` in front.
fn prefixed(prefix: &Option<String>, line: &str) -> String {
    match prefix {
        Some(p) => format!("{p} {line}"),
        None => line.to_string(),
    }
}

/// Writes the logs of `targets` (of job `id`) to `out`, one line at a time with its prefix.
pub async fn print_logs(
    kube: &Kube,
    id: &str,
    targets: &[LogTarget],
    follow: bool,
    out: &mut (dyn FnMut(&str) + Send),
) -> Result<(), KubeError> {
    let view = LogView {
        follow,
        ..LogView::default()
    };
    print_logs_with(kube, id, targets, &view, out).await
}

/// Writes the logs of `targets` (of job `id`) to `out` as `view` says. Without `follow`, the
/// lines of several containers are merged in time order (the API server stamps them; the
/// stamp is shown only with `timestamps`).
pub async fn print_logs_with(
    kube: &Kube,
    id: &str,
    targets: &[LogTarget],
    view: &LogView,
    out: &mut (dyn FnMut(&str) + Send),
) -> Result<(), KubeError> {
    let api = kube.api::<Pod>();
    if !view.follow {
        let merge = targets.len() > 1;
        let stamped = merge || view.timestamps;
        let mut lines: Vec<(String, String)> = Vec::new();
        for t in targets {
            let text = api
                .logs(&t.pod, &params(t, view, stamped))
                .await
                .map_err(|e| {
                    Op::named("get", "pods/log", &kube.namespace, &t.pod).error(&kube.server, e)
                })?;
            for line in text.lines() {
                let (time, rest) = match line.split_once(' ') {
                    Some((time, rest)) if stamped => (time.to_string(), rest),
                    _ => (String::new(), line),
                };
                let shown = if view.timestamps {
                    format!("{time} {rest}")
                } else {
                    rest.to_string()
                };
                lines.push((time, prefixed(&t.prefix, &shown)));
            }
        }
        // RFC 3339 stamps of one server sort as text; the sort is stable.
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(n) = view.tail.filter(|_| merge) {
            let drop = lines.len().saturating_sub(n);
            lines.drain(..drop);
        }
        for (_, line) in &lines {
            out(line);
        }
        return Ok(());
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Result<String, KubeError>>();
    let mut streams = BTreeMap::new();
    for (i, t) in targets.iter().cloned().enumerate() {
        let (api, tx, kube, view) = (api.clone(), tx.clone(), kube.clone(), view.clone());
        let task = tokio::spawn(async move {
            let op = Op::named("get", "pods/log", &kube.namespace, &t.pod);
            match api
                .log_stream(&t.pod, &params(&t, &view, view.timestamps))
                .await
            {
                Ok(reader) => {
                    let mut lines = reader.lines();
                    while let Some(Ok(line)) = lines.next().await {
                        if tx.send(Ok(prefixed(&t.prefix, &line))).is_err() {
                            break;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(op.error(&kube.server, e)));
                }
            }
        });
        streams.insert(i, (task, None::<Instant>));
    }
    drop(tx);
    let deadline = Instant::now() + FOLLOW_DEADLINE;
    let mut check = tokio::time::interval(POD_CHECK);
    loop {
        tokio::select! {
            line = rx.recv() => match line {
                Some(line) => out(&line?),
                // Every stream ended.
                None => return Ok(()),
            },
            _ = check.tick() => {
                if Instant::now() >= deadline {
                    return Ok(());
                }
                let Ok(pods) = job_pods(kube, id).await else {
                    continue; // the API server is asked again at the next check
                };
                let alive: Vec<String> =
                    pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
                for (i, (task, gone_at)) in streams.iter_mut() {
                    if alive.contains(&targets[*i].uid) {
                        continue;
                    }
                    let at = *gone_at.get_or_insert_with(Instant::now);
                    if at.elapsed() >= AFTER_GONE {
                        task.abort();
                    }
                }
            }
        }
    }
}
