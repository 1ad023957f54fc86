//! Watching one job's root ConfigMap: read it, then follow its changes from that version,
//! resuming when the server ends a watch, re-reading after `410 Gone`, keeping bookmarks and
//! stopping when the root is deleted. `t2 submit` (following the job), `t2 scale` (waiting for
//! the answer) and the in-cluster job master (waiting for scale requests) all use it.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;

use crate::client::Kube;
use crate::configmap_watch::{ConfigMapWatch, Seen, Watched};
use crate::error::{is_status, KubeError, Op};

/// How the root is (re-)read before watching from its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A list with a field selector on its name: the version returned is the list's.
    List,
    /// A GET by name: the version is the object's.
    Get,
}

/// What [`RootWatch::next`] saw.
#[derive(Debug, Clone)]
pub enum RootChange {
    /// The root as it is now: first read, re-read, or changed.
    Now(ConfigMap),
    /// The root is gone: deleted while watched (its last content, when the server sent it),
    /// or not there when read.
    Gone(Option<ConfigMap>),
}

/// A watch of the root ConfigMap of job `id`.
pub struct RootWatch {
    kube: Kube,
    id: String,
    read: Read,
    /// Read the root before watching (at the start, after `410 Gone`, after a restart).
    needs_read: bool,
    watch: ConfigMapWatch,
}

impl RootWatch {
    /// A watch that starts by reading the root the way `read` says.
    pub fn new(kube: &Kube, id: &str, read: Read) -> Self {
        Self {
            kube: kube.clone(),
            id: id.to_string(),
            read,
            needs_read: true,
            watch: ConfigMapWatch::new(kube, Watched::Named(id.to_string())),
        }
    }

    /// Starts watching from `version` (e.g. that of a patch just made) instead of reading first.
    pub fn from_version(mut self, version: String) -> Self {
        self.needs_read = false;
        self.watch.resume_from(version);
        self
    }

    /// Forgets the version and the open watch: the next call reads the root again (after an
    /// error, before retrying).
    pub fn restart(&mut self) {
        self.needs_read = true;
        self.watch.close();
    }

    /// The next state of the root. A watch the server ends is resumed from the last version
    /// seen (after a growing pause when the server ends watches at once with no event); after
    /// `410 Gone` the root is read again. Errors leave the watch to be reopened by the next
    /// call (from the same version; [`restart`](Self::restart) to re-read).
    pub async fn next(&mut self) -> Result<RootChange, KubeError> {
        loop {
            if self.needs_read {
                self.watch.close();
                return match self.read_root().await? {
                    Some((root, version)) => {
                        self.needs_read = false;
                        self.watch.resume_from(version);
                        Ok(RootChange::Now(root))
                    }
                    None => Ok(RootChange::Gone(None)),
                };
            }
            match self.watch.next().await? {
                Seen::Changed(root) => return Ok(RootChange::Now(root)),
                Seen::Deleted(root) => {
                    self.watch.close();
                    return Ok(RootChange::Gone(Some(root)));
                }
                Seen::Expired => self.restart(),
            }
        }
    }

    /// The root and the version to watch from, or `None` when there is no root.
    async fn read_root(&mut self) -> Result<Option<(ConfigMap, String)>, KubeError> {
        let api = self.kube.api::<ConfigMap>();
        match self.read {
            Read::List => {
                let field = format!("metadata.name={}", self.id);
                let list = api
                    .list(&ListParams::default().fields(&field))
                    .await
                    .map_err(|e| self.op("list").error(&self.kube.server, e))?;
                let version = list.metadata.resource_version.unwrap_or_default();
                Ok(list.items.into_iter().next().map(|root| (root, version)))
            }
            Read::Get => match api.get(&self.id).await {
                Ok(root) => {
                    let version = root.metadata.resource_version.clone().unwrap_or_default();
                    Ok(Some((root, version)))
                }
                Err(e) if is_status(&e, 404) => Ok(None),
                Err(e) => Err(self.op("get").error(&self.kube.server, e)),
            },
        }
    }

    fn op<'a>(&'a self, verb: &'a str) -> Op<'a> {
        Op::named(verb, "configmaps", &self.kube.namespace, &self.id)
    }
}
