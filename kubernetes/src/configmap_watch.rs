//! One watch of ConfigMaps (one by name, or all with a label selector) kept going across the
//! server's ends: resumed from the last version seen, bookmarks kept, with a growing pause
//! when the server ends watches at once with no event. What to do after `410 Gone` (read or
//! list again) is the reader's: [`root_watch`](crate::root_watch) and
//! [`jobs_watch`](crate::jobs_watch) build on it.

use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{WatchEvent, WatchParams};
use tokio::time::Instant;

use crate::client::Kube;
use crate::error::{KubeError, Op};

/// How long the server may keep one watch open (it ends it then; the watch is resumed).
const WATCH_SECONDS: u32 = 290;
/// A watch the server ends sooner than this with no event counts as ended "at once".
const QUICK_END: Duration = Duration::from_secs(1);
/// First wait after a watch ended at once; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between watches that end at once.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Which ConfigMaps are watched.
#[derive(Debug, Clone)]
pub enum Watched {
    /// The one with this name.
    Named(String),
    /// Every one matching this label selector.
    Labelled(String),
}

/// What [`ConfigMapWatch::next`] saw.
#[derive(Debug, Clone)]
pub enum Seen {
    /// A ConfigMap made or changed.
    Changed(ConfigMap),
    /// A ConfigMap deleted (its last content).
    Deleted(ConfigMap),
    /// The version watched from is too old (`410 Gone`): read again, then
    /// [`resume_from`](ConfigMapWatch::resume_from) the version read.
    Expired,
}

/// A watch of [`Watched`] ConfigMaps from a version.
pub struct ConfigMapWatch {
    kube: Kube,
    watched: Watched,
    version: String,
    events: Option<BoxStream<'static, kube::Result<WatchEvent<ConfigMap>>>>,
    opened: Instant,
    seen_since_open: bool,
    backoff: Duration,
}

impl ConfigMapWatch {
    /// A watch of `watched`, from version "" until [`resume_from`](Self::resume_from).
    pub fn new(kube: &Kube, watched: Watched) -> Self {
        Self {
            kube: kube.clone(),
            watched,
            version: String::new(),
            events: None,
            opened: Instant::now(),
            seen_since_open: false,
            backoff: FIRST_BACKOFF,
        }
    }

    /// Watches from `version` (that of a read, a list or a patch) with a new watch.
    pub fn resume_from(&mut self, version: String) {
        self.version = version;
        self.events = None;
    }

    /// Ends the open watch; the next call opens one from the last version seen.
    pub fn close(&mut self) {
        self.events = None;
    }

    /// The next change. Errors end the open watch; the next call opens one from the same
    /// version.
    pub async fn next(&mut self) -> Result<Seen, KubeError> {
        loop {
            if self.events.is_none() {
                self.open().await?;
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
                    return Ok(Seen::Changed(cm));
                }
                WatchEvent::Deleted(cm) => {
                    self.keep_version(&cm);
                    return Ok(Seen::Deleted(cm));
                }
                WatchEvent::Bookmark(b) => self.version = b.metadata.resource_version,
                WatchEvent::Error(status) if status.code == 410 => {
                    self.events = None;
                    return Ok(Seen::Expired);
                }
                WatchEvent::Error(status) => {
                    self.events = None;
                    return Err(self
                        .op("watch")
                        .error(&self.kube.server, kube::Error::Api(status)));
                }
            }
        }
    }

    async fn open(&mut self) -> Result<(), KubeError> {
        let params = WatchParams::default().timeout(WATCH_SECONDS);
        let params = match &self.watched {
            Watched::Named(name) => params.fields(&format!("metadata.name={name}")),
            Watched::Labelled(selector) => params.labels(selector),
        };
        let events = self
            .kube
            .api::<ConfigMap>()
            .watch(&params, &self.version)
            .await
            .map_err(|e| self.op("watch").error(&self.kube.server, e))?;
        self.events = Some(events.boxed());
        self.opened = Instant::now();
        self.seen_since_open = false;
        Ok(())
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
        match &self.watched {
            Watched::Named(name) => Op::named(verb, "configmaps", &self.kube.namespace, name),
            Watched::Labelled(_) => Op::collection(verb, "configmaps", &self.kube.namespace),
        }
    }
}
