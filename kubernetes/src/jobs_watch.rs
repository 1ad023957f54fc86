//! `t2 list --watch` on Kubernetes: every job's root ConfigMap in the namespace, listed, then
//! watched from the list's version (as `kubectl get -w` does), so that every recorded state
//! is seen — also a job's last one, which its job master writes just before it deletes the
//! root. A watch the server ends is resumed from the last version seen (bookmarks kept);
//! after `410 Gone` the jobs are listed again.

use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, WatchEvent, WatchParams};
use tokio::time::Instant;

use crate::client::Kube;
use crate::error::{KubeError, Op};
use crate::jobs::{job_row, JobRow};
use crate::manifests::labels::{APP, APP_VALUE, COMPONENT};

/// How long the server may keep one watch open (it ends it then; the watch is resumed).
const WATCH_SECONDS: u32 = 290;
/// A watch the server ends sooner than this with no event counts as ended "at once".
const QUICK_END: Duration = Duration::from_secs(1);
/// First wait after a watch ended at once (or failed); doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between watches that end at once.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What [`JobsWatch::next`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobsChange {
    /// Every job now, newest first (the first call, and again after `410 Gone`).
    Listed(Vec<JobRow>),
    /// A job made or changed.
    Changed(JobRow),
    /// A job's root deleted (its last content).
    Deleted(JobRow),
}

/// A watch of every job's root in the namespace.
pub struct JobsWatch {
    kube: Kube,
    needs_list: bool,
    version: String,
    events: Option<BoxStream<'static, kube::Result<WatchEvent<ConfigMap>>>>,
    opened: Instant,
    seen_since_open: bool,
    backoff: Duration,
}

fn selector() -> String {
    format!("{APP}={APP_VALUE},{COMPONENT}=job")
}

impl JobsWatch {
    /// A watch that starts by listing the jobs.
    pub fn new(kube: &Kube) -> Self {
        Self {
            kube: kube.clone(),
            needs_list: true,
            version: String::new(),
            events: None,
            opened: Instant::now(),
            seen_since_open: false,
            backoff: FIRST_BACKOFF,
        }
    }

    /// The next change. Errors leave the watch to be reopened by the next call, from the
    /// same version.
    pub async fn next(&mut self) -> Result<JobsChange, KubeError> {
        loop {
            if self.needs_list {
                self.events = None;
                let list = self
                    .kube
                    .api::<ConfigMap>()
                    .list(&ListParams::default().labels(&selector()))
                    .await
                    .map_err(|e| self.op("list").error(&self.kube.server, e))?;
                self.version = list.metadata.resource_version.clone().unwrap_or_default();
                self.needs_list = false;
                let mut rows: Vec<JobRow> = list.items.iter().map(job_row).collect();
                rows.sort_by(|a, b| b.submitted_at.cmp(&a.submitted_at).then(a.id.cmp(&b.id)));
                return Ok(JobsChange::Listed(rows));
            }
            if self.events.is_none() {
                let params = WatchParams::default()
                    .labels(&selector())
                    .timeout(WATCH_SECONDS);
                let events = self
                    .kube
                    .api::<ConfigMap>()
                    .watch(&params, &self.version)
                    .await
                    .map_err(|e| self.op("watch").error(&self.kube.server, e))?;
                self.events = Some(events.boxed());
                self.opened = Instant::now();
                self.seen_since_open = false;
            }
            let Some(events) = self.events.as_mut() else {
                continue;
            };
            let event = match events.next().await {
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    self.events = None;
                    return Err(self.op("watch").error(&self.kube.server, e));
                }
                None => {
                    self.events = None;
                    self.pause_if_ended_at_once().await;
                    continue;
                }
            };
            self.seen_since_open = true;
            self.backoff = FIRST_BACKOFF;
            match event {
                WatchEvent::Added(cm) | WatchEvent::Modified(cm) => {
                    self.keep_version(&cm);
                    return Ok(JobsChange::Changed(job_row(&cm)));
                }
                WatchEvent::Deleted(cm) => {
                    self.keep_version(&cm);
                    return Ok(JobsChange::Deleted(job_row(&cm)));
                }
                WatchEvent::Bookmark(b) => self.version = b.metadata.resource_version,
                WatchEvent::Error(status) if status.code == 410 => self.needs_list = true,
                WatchEvent::Error(status) => {
                    self.events = None;
                    return Err(self
                        .op("watch")
                        .error(&self.kube.server, kube::Error::Api(status)));
                }
            }
        }
    }

    fn keep_version(&mut self, cm: &ConfigMap) {
        if let Some(v) = &cm.metadata.resource_version {
            self.version = v.clone();
        }
    }

    /// Not in a tight loop against a server that ends every watch at once.
    async fn pause_if_ended_at_once(&mut self) {
        if self.seen_since_open || self.opened.elapsed() >= QUICK_END {
            self.backoff = FIRST_BACKOFF;
            return;
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn op<'a>(&'a self, verb: &'a str) -> Op<'a> {
        Op::collection(verb, "configmaps", &self.kube.namespace)
    }
}
