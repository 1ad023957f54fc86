//! `t2 gc`: sweep what finished or broken jobs left in the namespace, by label. A job is swept
//! when its root ConfigMap records a final state (its job master died before deleting it) and
//! the time it was to be kept for (`jobmaster.remove-after`, `kubernetes.ttl_after_finished`)
//! has passed or was never recorded, is
//! gone while objects of the job remain (e.g. created by hand, or an owner reference was
//! stripped), or when its job master never started: no job master pod, nothing recorded by
//! one, and the root older than the submit's own start deadline (`start_timeout` +
//! `package_timeout`), so the submit that made it gave up or died. Roots are deleted (garbage
//! collection does the rest); orphans one by one.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::DeleteParams;

use super::client::Kube;
use super::error::{is_status, KubeError, Op};
use super::follow::is_final;
use super::inventory::{list_objects, Found};
use super::manifests::labels::{
    all_jobs_selector, job_selector, APP, APP_VALUE, COMPONENT, ROLE, ROLE_JOBMASTER,
};
use super::manifests::root::keys;
use super::record;
use super::settings::{read_settings, Settings};

/// What `t2 gc` did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sweep {
    /// Jobs swept, with why.
    pub jobs: Vec<(String, String)>,
    /// Objects deleted (roots, and orphans of jobs without one).
    pub deleted: Vec<Found>,
}

/// Deletes one object in the background; a missing one is fine.
pub async fn delete_found(kube: &Kube, f: &Found) -> Result<(), KubeError> {
    let dp = DeleteParams::background();
    let r = match f.kind {
        "StatefulSet" => kube
            .api::<StatefulSet>()
            .delete(&f.name, &dp)
            .await
            .map(drop),
        "Pod" => kube.api::<Pod>().delete(&f.name, &dp).await.map(drop),
        "Service" => kube.api::<Service>().delete(&f.name, &dp).await.map(drop),
        "Secret" => kube.api::<Secret>().delete(&f.name, &dp).await.map(drop),
        "NetworkPolicy" => kube
            .api::<k8s_openapi::api::networking::v1::NetworkPolicy>()
            .delete(&f.name, &dp)
            .await
            .map(drop),
        "PersistentVolumeClaim" => kube
            .api::<PersistentVolumeClaim>()
            .delete(&f.name, &dp)
            .await
            .map(drop),
        _ => kube.api::<ConfigMap>().delete(&f.name, &dp).await.map(drop),
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => {
            Err(Op::named("delete", f.resource, &kube.namespace, &f.name).error(&kube.server, e))
        }
    }
}

/// Sweeps the namespace; with `dry` nothing is deleted.
pub async fn gc(kube: &Kube, dry: bool) -> Result<Sweep, KubeError> {
    let selector = format!("{APP}={APP_VALUE},{COMPONENT}=job");
    let root_list = kube
        .api::<ConfigMap>()
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            Op::collection("list", "configmaps", &kube.namespace).error(&kube.server, e)
        })?;
    let root_objects: BTreeMap<String, ConfigMap> = root_list
        .items
        .into_iter()
        .filter_map(|cm| Some((cm.metadata.name.clone()?, cm)))
        .collect();
    let roots: BTreeMap<String, String> = root_objects
        .iter()
        .map(|(id, cm)| {
            (
                id.clone(),
                record::state(&cm.data.clone().unwrap_or_default()).0,
            )
        })
        .collect();
    // Finished jobs still within their ttl_after_finished: kept for `t2 logs`.
    let kept: BTreeSet<String> = root_objects
        .iter()
        .filter(|(_, cm)| {
            super::incluster::finished::kept_until(&cm.data.clone().unwrap_or_default())
                .is_some_and(|at| !super::incluster::finished::time_left(at).is_zero())
        })
        .map(|(id, _)| id.clone())
        .collect();
    let objects = list_objects(kube, &all_jobs_selector(), false).await?;
    let jobs: BTreeSet<String> = objects
        .iter()
        .map(|f| f.job.clone())
        .filter(|j| !j.is_empty())
        .collect();
    let mut sweep = Sweep::default();
    for job in jobs {
        let why = match roots.get(&job) {
            Some(_) if kept.contains(&job) => continue,
            Some(state) if is_final(state) => format!("{state}, but its objects are still there"),
            Some(_) => match never_started(kube, &job, &root_objects[&job]).await? {
                Some(why) => why,
                None => continue,
            },
            None => "its root ConfigMap is gone".to_string(),
        };
        let targets: Vec<&Found> = objects
            .iter()
            .filter(|f| f.job == job && !f.deleting)
            .filter(|f| roots.contains_key(&job) == f.root)
            .collect();
        for f in targets {
            if !dry {
                delete_found(kube, f).await?;
            }
            sweep.deleted.push(f.clone());
        }
        sweep.jobs.push((job, why));
    }
    Ok(sweep)
}

/// Why job `id` (whose root records no final state) is broken because its job master never
/// started, or `None` while it may still start or runs.
async fn never_started(
    kube: &Kube,
    id: &str,
    root: &ConfigMap,
) -> Result<Option<String>, KubeError> {
    let data = root.data.clone().unwrap_or_default();
    if data.contains_key(keys::STATE) {
        return Ok(None);
    }
    let settings = data
        .get(keys::SPEC)
        .and_then(|s| serde_json::from_str(s).ok())
        .and_then(|spec| read_settings(&spec).ok())
        .unwrap_or_default();
    let deadline = start_deadline(&settings);
    let Some(created) = root.metadata.creation_timestamp.as_ref() else {
        return Ok(None);
    };
    let age = k8s_openapi::jiff::Timestamp::now().as_second() - created.0.as_second();
    if age < deadline.as_secs() as i64 {
        return Ok(None);
    }
    let selector = format!("{},{ROLE}={ROLE_JOBMASTER}", job_selector(id));
    let pods = kube
        .api::<Pod>()
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(|e| Op::collection("list", "pods", &kube.namespace).error(&kube.server, e))?;
    if !pods.items.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "its job master never started within {} of the submit (no job master pod; see 'kubectl describe statefulset {id}-jm')",
        t2_core::duration::format_duration(deadline)
    )))
}

/// How long a submit waits for its job to start, before the allowance for crash loops the
/// job's `max_restarts` permits, which `submit` adds (a job whose job master pod exists is
/// never swept as "never started", so gc needs no such allowance).
pub fn start_deadline(s: &Settings) -> std::time::Duration {
    // A gang job may wait in its queue that long besides (issue 18).
    let queued = if s.gang == super::settings::Gang::None {
        std::time::Duration::ZERO
    } else {
        s.queue_timeout
    };
    s.start_timeout + s.package_timeout + queued
}
