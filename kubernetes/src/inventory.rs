//! Finding t2's objects in the namespace by label: every kind a job creates, listed with the
//! job each belongs to. `t2 kill` uses it to see what is left of a job, `t2 gc` to find
//! objects whose job is finished or gone. Secrets are not listed: a list returns their data,
//! and submitters may not read other jobs' tokens (the token Secret is owned by the root, so
//! garbage collection removes it with the job). NetworkPolicies are listed where the caller
//! may list them (a submitter under an older deploy/rbac.yaml may not: then they are left to
//! garbage collection, as Secrets are).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use serde::de::DeserializeOwned;

use super::client::Kube;
use super::error::{KubeError, Op};
use super::manifests::labels::{COMPONENT, JOB};

/// One object of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its kind.
    pub kind: &'static str,
    /// Its resource (for deleting and messages).
    pub resource: &'static str,
    /// Its name.
    pub name: String,
    /// The job it belongs to (`t2.io/job`).
    pub job: String,
    /// True for a job's root ConfigMap.
    pub root: bool,
    /// Being deleted already.
    pub deleting: bool,
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)?;
        if self.deleting {
            f.write_str(" (being deleted)")?;
        }
        Ok(())
    }
}

/// The kinds a job has, in the order they are listed.
pub const KINDS: &[(&str, &str)] = &[
    ("StatefulSet", "statefulsets.apps"),
    ("Pod", "pods"),
    ("Service", "services"),
    ("NetworkPolicy", "networkpolicies.networking.k8s.io"),
    ("PersistentVolumeClaim", "persistentvolumeclaims"),
    ("ConfigMap", "configmaps"),
];

async fn list_kind<K>(
    kube: &Kube,
    kind: &'static str,
    resource: &'static str,
    selector: &str,
) -> Result<Vec<Found>, KubeError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
    K: kube::ResourceExt,
{
    let list = kube
        .api::<K>()
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| Op::collection("list", resource, &kube.namespace).error(&kube.server, e))?;
    Ok(list
        .items
        .iter()
        .map(|o| found(kind, resource, o.meta()))
        .collect())
}

fn found(kind: &'static str, resource: &'static str, m: &ObjectMeta) -> Found {
    let labels = m.labels.clone().unwrap_or_default();
    Found {
        kind,
        resource,
        name: m.name.clone().unwrap_or_default(),
        job: labels.get(JOB).cloned().unwrap_or_default(),
        root: kind == "ConfigMap" && labels.get(COMPONENT).is_some_and(|c| c == "job"),
        deleting: m.deletion_timestamp.is_some(),
    }
}

/// Every object matching `selector`, kind by kind ([`KINDS`]); `with_pods` includes pods.
pub async fn list_objects(
    kube: &Kube,
    selector: &str,
    with_pods: bool,
) -> Result<Vec<Found>, KubeError> {
    let mut out = Vec::new();
    out.extend(list_kind::<StatefulSet>(kube, "StatefulSet", "statefulsets.apps", selector).await?);
    if with_pods {
        out.extend(list_kind::<Pod>(kube, "Pod", "pods", selector).await?);
    }
    out.extend(list_kind::<Service>(kube, "Service", "services", selector).await?);
    match list_kind::<NetworkPolicy>(
        kube,
        "NetworkPolicy",
        "networkpolicies.networking.k8s.io",
        selector,
    )
    .await
    {
        Ok(found) => out.extend(found),
        Err(KubeError::Forbidden { .. }) => {}
        Err(e) => return Err(e),
    }
    out.extend(
        list_kind::<PersistentVolumeClaim>(
            kube,
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            selector,
        )
        .await?,
    );
    out.extend(list_kind::<ConfigMap>(kube, "ConfigMap", "configmaps", selector).await?);
    Ok(out)
}
