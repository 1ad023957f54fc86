//! `t2 list --watch` on Kubernetes: every job's root ConfigMap in the namespace, listed, then
//! watched from the list's version (as `kubectl get -w` does), so that every recorded state
//! is seen — also a job's last one, which its job master writes just before it deletes the
//! root. A watch the server ends is resumed from the last version seen (bookmarks kept);
//! after `410 Gone` the jobs are listed again.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ListParams;

use crate::client::Kube;
use crate::configmap_watch::{ConfigMapWatch, Seen, Watched};
use crate::error::{KubeError, Op};
use crate::jobs::{job_row, JobRow};
use crate::manifests::labels::{APP, APP_VALUE, COMPONENT};

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
    watch: ConfigMapWatch,
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
            watch: ConfigMapWatch::new(kube, Watched::Labelled(selector())),
        }
    }

    /// The next change. Errors leave the watch to be reopened by the next call, from the
    /// same version.
    pub async fn next(&mut self) -> Result<JobsChange, KubeError> {
        loop {
            if self.needs_list {
                self.watch.close();
                let list = self
                    .kube
                    .api::<ConfigMap>()
                    .list(&ListParams::default().labels(&selector()))
                    .await
                    .map_err(|e| {
                        Op::collection("list", "configmaps", &self.kube.namespace)
                            .error(&self.kube.server, e)
                    })?;
                self.watch
                    .resume_from(list.metadata.resource_version.clone().unwrap_or_default());
                self.needs_list = false;
                let mut rows: Vec<JobRow> = list.items.iter().map(job_row).collect();
                rows.sort_by(|a, b| b.submitted_at.cmp(&a.submitted_at).then(a.id.cmp(&b.id)));
                return Ok(JobsChange::Listed(rows));
            }
            match self.watch.next().await? {
                Seen::Changed(cm) => return Ok(JobsChange::Changed(job_row(&cm))),
                Seen::Deleted(cm) => return Ok(JobsChange::Deleted(job_row(&cm))),
                Seen::Expired => self.needs_list = true,
            }
        }
    }
}
