//! Waiting for a job to start, with reasons: watch its pods (list, then watch from the
//! list's resourceVersion), hand each pod whose init container waits for the package to the
//! [`Deliverer`] (direct delivery, several at once), report progress on every change, and fail
//! fast with the pod's own reason on an image pull failure, a crash loop past the job's
//! `max_restarts`, a bad container configuration, a failed init container, or a pod
//! unschedulable past `start_timeout`. A pod the cluster disrupts (evicted, preempted:
//! [`crate::disruption`]) is neither a failure nor the job's end: the wait goes on for the
//! pod the StatefulSet makes again.
//!
//! A gang job (`kubernetes.gang`, issue 18) whose pods are held is queued, not failing: the
//! wait says `queued in QUEUE (why)`, the reason read from its PodGroup or Workload, and goes
//! on up to `kubernetes.queue_timeout` (instead of `start_timeout`), then fails naming the
//! queue and the last reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, WatchEvent, WatchParams};
use tokio::sync::{mpsc, Semaphore};

use super::client::Kube;
use super::deliver::Deliverer;
use super::error::{KubeError, Op};
use super::manifests::labels::job_selector;
use super::podstate::{progress, summarize, CrashRules, PodSummary, Progress};
use super::settings::{Gang, Settings};

/// What to wait for.
#[derive(Clone)]
pub struct StartWait {
    /// The job.
    pub job_id: String,
    /// Worker pods the job has.
    pub worker_pods: usize,
    /// How long a pod may stay unschedulable.
    pub unschedulable_deadline: Duration,
    /// How long the whole start may take.
    pub deadline: Duration,
    /// How crash loops are judged (the job's `max_restarts`).
    pub crash: CrashRules,
    /// Direct delivery (`None`: pods fetch the package themselves).
    pub deliverer: Option<Arc<dyn Deliverer>>,
    /// Pods receiving the package at once.
    pub parallel: usize,
    /// A gang job's queue (`None`: pods are scheduled one by one).
    pub queue: Option<QueueWait>,
}

/// How a gang job waits in its queue (issue 18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueWait {
    /// Volcano or Kueue.
    pub gang: Gang,
    /// The queue's name, for messages.
    pub queue: String,
    /// How long the job may stay queued (`kubernetes.queue_timeout`).
    pub timeout: Duration,
}

impl QueueWait {
    /// The queue of a job with `settings` (`None` without gang scheduling).
    pub fn of(settings: &Settings) -> Option<Self> {
        (settings.gang != Gang::None).then(|| Self {
            gang: settings.gang,
            queue: super::gang::queue_name(settings),
            timeout: settings.queue_timeout,
        })
    }

    /// Where a person sees why the job is held.
    fn describe(&self, id: &str) -> String {
        match self.gang {
            Gang::Kueue => "'kubectl describe workloads'".into(),
            _ => format!("'kubectl describe podgroup {id}'"),
        }
    }
}

/// How the start ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Every pod runs.
    Running(Progress),
    /// Pods went away before all ran (the job ended, or was killed).
    PodsGone,
}

/// Seconds a single watch request may stay open.
const WATCH_SECONDS: u32 = 290;

/// Waits until every pod of the job runs; `report` is called on every change of progress.
pub async fn wait_started(
    kube: &Kube,
    w: &StartWait,
    report: &mut (dyn FnMut(&Progress) + Send),
) -> Result<Started, KubeError> {
    let id = w.job_id.clone();
    let mut queued = move |line: &str| tracing::info!(job_id = %id, "{line}");
    wait_started_with(kube, w, report, &mut queued).await
}

/// [`wait_started`]; `queued` is called with `queued in QUEUE (why)` whenever a gang job's
/// reason for waiting changes.
pub async fn wait_started_with(
    kube: &Kube,
    w: &StartWait,
    report: &mut (dyn FnMut(&Progress) + Send),
    queued: &mut (dyn FnMut(&str) + Send),
) -> Result<Started, KubeError> {
    let started = Instant::now();
    // A gang job's deadline includes its queue_timeout (`gc::start_deadline`).
    let deadline = w.deadline;
    let mut queued_since: Option<Instant> = None;
    let mut reason_at: Option<Instant> = None;
    let mut reason = String::new();
    let api = kube.api::<Pod>();
    let selector = job_selector(&w.job_id);
    let op = Op::collection("watch", "pods", &kube.namespace);
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| Op::collection("list", "pods", &kube.namespace).error(&kube.server, e))?;
    let mut rv = list.metadata.resource_version.clone().unwrap_or_default();
    let mut pods: BTreeMap<String, PodSummary> = BTreeMap::new();
    for p in &list.items {
        let s = summarize(p, &w.crash);
        pods.insert(s.name.clone(), s);
    }
    let mut unschedulable_since: BTreeMap<String, Instant> = BTreeMap::new();
    let mut delivered: BTreeSet<String> = BTreeSet::new();
    let mut in_flight: BTreeSet<String> = BTreeSet::new();
    let sem = Arc::new(Semaphore::new(w.parallel.max(1)));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, String, Result<(), String>)>();
    let mut last: Option<Progress> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut stream = None;
    loop {
        // Evaluate.
        let now = Instant::now();
        for s in pods.values() {
            if let Some(f) = &s.failure {
                return Err(KubeError::StartFailed {
                    job: w.job_id.clone(),
                    reason: f.clone(),
                });
            }
        }
        if let Some(q) = &w.queue {
            let held: Vec<String> = pods
                .values()
                .filter(|s| !s.scheduled)
                .map(|s| s.name.clone())
                .collect();
            if held.is_empty() {
                queued_since = None;
            } else {
                let since = *queued_since.get_or_insert(now);
                if reason_at.is_none_or(|at| now.duration_since(at) >= super::gang::REASON_EVERY) {
                    reason_at = Some(now);
                    let why = super::gang::queue_reason(kube, &w.job_id, q.gang, &held).await;
                    if why != reason {
                        queued(&format!("queued in {} ({why})", q.queue));
                        reason = why;
                    }
                }
                if now.duration_since(since) >= q.timeout {
                    return Err(KubeError::StartFailed {
                        job: w.job_id.clone(),
                        reason: format!(
                            "still queued in {} after {} (kubernetes.queue_timeout): {reason}; raise kubernetes.queue_timeout, or see why the queue holds it with {}",
                            q.queue,
                            t2_core::duration::format_duration(q.timeout),
                            q.describe(&w.job_id)
                        ),
                    });
                }
            }
        }
        for s in pods.values().filter(|_| w.queue.is_none()) {
            match &s.unschedulable {
                Some(why) => {
                    let since = *unschedulable_since.entry(s.name.clone()).or_insert(now);
                    if now.duration_since(since) >= w.unschedulable_deadline {
                        return Err(KubeError::StartFailed {
                            job: w.job_id.clone(),
                            reason: format!(
                                "pod {} could not be scheduled for {}: {}; lower the job's resources, or check kubernetes.node_selector/affinity/tolerations against the nodes ('kubectl describe pod {}')",
                                s.name,
                                t2_core::duration::format_duration(w.unschedulable_deadline),
                                super::error::one_line(why),
                                s.name
                            ),
                        });
                    }
                }
                None => {
                    unschedulable_since.remove(&s.name);
                }
            }
        }
        let p = progress(pods.values(), w.worker_pods);
        if last != Some(p) {
            report(&p);
            last = Some(p);
        }
        if p.running >= p.expected {
            return Ok(Started::Running(p));
        }
        if now.duration_since(started) >= deadline {
            return Err(KubeError::Timeout {
                what: format!("job {} starting ({p})", w.job_id),
                after: deadline,
            });
        }
        if let Some(d) = &w.deliverer {
            for s in pods.values() {
                let key = format!("{}/{}", s.name, s.uid);
                if s.init_running && !delivered.contains(&key) && !in_flight.contains(&key) {
                    in_flight.insert(key.clone());
                    let (d, sem, tx, pod) =
                        (d.clone(), sem.clone(), done_tx.clone(), s.name.clone());
                    tokio::spawn(async move {
                        let _permit = sem.acquire_owned().await;
                        let r = d.deliver(&pod).await;
                        let _ = tx.send((key, pod, r));
                    });
                }
            }
        }
        if stream.is_none() {
            let wp = WatchParams::default()
                .labels(&selector)
                .timeout(WATCH_SECONDS);
            stream = Some(
                api.watch(&wp, &rv)
                    .await
                    .map_err(|e| op.error(&kube.server, e))?
                    .boxed(),
            );
        }
        let Some(events) = stream.as_mut() else {
            continue;
        };
        tokio::select! {
            ev = events.next() => match ev {
                None => stream = None,
                Some(Err(e)) => return Err(op.error(&kube.server, e)),
                Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                    rv = p.metadata.resource_version.clone().unwrap_or(rv);
                    let s = summarize(&p, &w.crash);
                    pods.insert(s.name.clone(), s);
                }
                Some(Ok(WatchEvent::Deleted(p))) => {
                    rv = p.metadata.resource_version.clone().unwrap_or(rv);
                    let Some(why) = super::disruption::disrupted(&p) else {
                        return Ok(Started::PodsGone);
                    };
                    let name = p.metadata.name.clone().unwrap_or_default();
                    tracing::info!(job_id = %w.job_id, pod = %name, reason = %why, "pod disrupted; waiting for the StatefulSet to make it again");
                    pods.remove(&name);
                    unschedulable_since.remove(&name);
                }
                Some(Ok(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                Some(Ok(WatchEvent::Error(st))) if st.code == 410 => {
                    // Our resourceVersion is too old: list again.
                    let list = api
                        .list(&ListParams::default().labels(&selector))
                        .await
                        .map_err(|e| Op::collection("list", "pods", &kube.namespace).error(&kube.server, e))?;
                    rv = list.metadata.resource_version.clone().unwrap_or_default();
                    pods = list.items.iter().map(|p| { let s = summarize(p, &w.crash); (s.name.clone(), s) }).collect();
                    stream = None;
                }
                Some(Ok(WatchEvent::Error(st))) => return Err(op.error(&kube.server, kube::Error::Api(st))),
            },
            Some((key, pod, r)) = done_rx.recv() => {
                in_flight.remove(&key);
                match r {
                    Ok(()) => { delivered.insert(key); }
                    Err(why) => return Err(KubeError::Distribution { target: format!("pod {pod}"), why }),
                }
            }
            _ = tick.tick() => {}
        }
    }
}
