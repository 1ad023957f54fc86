//! `t2 gc`: sweep what finished or broken jobs left in the namespace, by label. A job is swept
//! when its root ConfigMap records a final state (its job master died before deleting it) or
//! is gone while objects of the job remain (e.g. created by hand, or an owner reference was
//! stripped). Roots are deleted (garbage collection does the rest); orphans one by one.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::DeleteParams;

use super::client::Kube;
use super::error::{is_status, KubeError, Op};
use super::follow::is_final;
use super::inventory::{list_objects, Found};
use super::jobs::list_jobs;
use super::manifests::labels::all_jobs_selector;

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
    let roots: BTreeMap<String, String> = list_jobs(kube)
        .await?
        .into_iter()
        .map(|r| (r.id, r.state))
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
            Some(state) if is_final(state) => format!("{state}, but its objects are still there"),
            Some(_) => continue,
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
