//! Creating a job's objects: the root ConfigMap first, then, owned by it, everything else in
//! order. When any later step fails the root is deleted again (garbage collection removes
//! what was created under it) and the error says what failed and what, if anything, is left.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DeleteParams, PostParams};
use t2_core::spec::JobSpec;
use tracing::{info, warn};

use super::client::Kube;
use super::error::{is_status, KubeError, Op};
use super::manifests::{build_owned, root, JobInfo, Object};
use super::settings::Settings;

/// Creates the root ConfigMap; sets `info.root_uid` from the answer.
pub async fn create_root(
    kube: &Kube,
    info: &mut JobInfo,
    spec: &JobSpec,
    settings: &Settings,
) -> Result<(), KubeError> {
    let cm = root::root_config_map(info, spec, settings);
    let name = info.names().root();
    let created = kube
        .api::<ConfigMap>()
        .create(&PostParams::default(), &cm)
        .await
        .map_err(|e| {
            Op::named("create", "configmaps", &kube.namespace, &name).error(&kube.server, e)
        })?;
    info.root_uid = created.metadata.uid.ok_or_else(|| KubeError::Api {
        verb: "create".into(),
        resource: "configmaps".into(),
        namespace: kube.namespace.clone(),
        name: Some(name),
        message: "the API server returned the root ConfigMap without a uid".into(),
        code: 200,
    })?;
    Ok(())
}

/// Creates one object.
pub async fn create_object(kube: &Kube, obj: &Object) -> Result<(), KubeError> {
    let pp = PostParams::default();
    let r = match obj {
        Object::ConfigMap(o) => kube.api::<ConfigMap>().create(&pp, o).await.map(drop),
        Object::Secret(o) => kube.api::<Secret>().create(&pp, o).await.map(drop),
        Object::Service(o) => kube.api::<Service>().create(&pp, o).await.map(drop),
        Object::PersistentVolumeClaim(o) => kube
            .api::<PersistentVolumeClaim>()
            .create(&pp, o)
            .await
            .map(drop),
        Object::StatefulSet(o) => kube.api::<StatefulSet>().create(&pp, o).await.map(drop),
        Object::ServiceAccount(o) => kube.api::<ServiceAccount>().create(&pp, o).await.map(drop),
        Object::Role(o) => kube.api::<Role>().create(&pp, o).await.map(drop),
        Object::RoleBinding(o) => kube.api::<RoleBinding>().create(&pp, o).await.map(drop),
        Object::NetworkPolicy(o) => kube.api::<NetworkPolicy>().create(&pp, o).await.map(drop),
        Object::PodGroup(o) => return create_pod_group(kube, o, &pp).await,
    };
    let name = obj.name();
    r.map_err(|e| {
        Op::named("create", obj.resource(), &kube.namespace, &name).error(&kube.server, e)
    })
}

/// Creates the job's Volcano PodGroup; a cluster without Volcano's kind is named as such.
async fn create_pod_group(
    kube: &Kube,
    pg: &super::manifests::gang::PodGroup,
    pp: &PostParams,
) -> Result<(), KubeError> {
    let name = pg.metadata.name.clone().unwrap_or_default();
    let op = Op::named(
        "create",
        "podgroups.scheduling.volcano.sh",
        &kube.namespace,
        &name,
    );
    let obj: kube::api::DynamicObject =
        serde_json::to_value(pg)
            .and_then(serde_json::from_value)
            .map_err(|e| KubeError::Config(format!("PodGroup {name}: {e}")))?;
    let api: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        kube.client.clone(),
        &kube.namespace,
        &super::manifests::gang::podgroup_resource(),
    );
    match api.create(pp, &obj).await {
        Ok(_) => Ok(()),
        // The kind is not served: the API server answers 404 for the collection.
        Err(e) if is_status(&e, 404) => Err(KubeError::setting(
            "kubernetes.gang",
            format!(
                "is volcano, but the cluster at {} serves no PodGroup (scheduling.volcano.sh/v1beta1): install Volcano, or set kubernetes.gang: none",
                kube.server
            ),
        )),
        Err(e) => Err(op.error(&kube.server, e)),
    }
}

/// Creates every object of the job, root first; rolls back on failure. Returns the objects
/// created (with the root's uid in their owner references).
pub async fn create_job(
    kube: &Kube,
    info: &mut JobInfo,
    spec: &JobSpec,
    settings: &Settings,
) -> Result<Vec<Object>, KubeError> {
    create_root(kube, info, spec, settings).await?;
    info!(job_id = %info.id, namespace = %kube.namespace, "created the root ConfigMap");
    let owned = build_owned(info, spec, settings);
    for obj in &owned {
        if let Err(cause) = create_object(kube, obj).await {
            return Err(rollback(kube, &info.id, cause).await);
        }
    }
    Ok(owned)
}

/// Deletes the job's root (its objects go with it) after `cause`; returns the error to show.
pub async fn rollback(kube: &Kube, id: &str, cause: KubeError) -> KubeError {
    warn!(job_id = %id, error = %cause, "submit failed; deleting the job's root ConfigMap");
    let leftover = match delete_root(kube, id).await {
        Ok(()) => None,
        Err(e) => Some(format!(
            "could not delete it ({e}); remove it with 't2 kill {id} -n {}' or 'kubectl -n {} delete configmap {id}'",
            kube.namespace, kube.namespace
        )),
    };
    KubeError::RolledBack {
        job: id.into(),
        cause: Box::new(cause),
        leftover,
    }
}

/// Deletes root ConfigMap `id` in the background (a missing one is fine).
pub async fn delete_root(kube: &Kube, id: &str) -> Result<(), KubeError> {
    delete_root_with(kube, id, &DeleteParams::background()).await
}

/// Deletes root ConfigMap `id` in the foreground (a missing one is fine): it stays, being
/// deleted, until every object it owns with `blockOwnerDeletion` is gone — its
/// StatefulSets, and so their pods — so the root goes with the job's last pod.
pub async fn delete_root_foreground(kube: &Kube, id: &str) -> Result<(), KubeError> {
    delete_root_with(kube, id, &DeleteParams::foreground()).await
}

async fn delete_root_with(kube: &Kube, id: &str, dp: &DeleteParams) -> Result<(), KubeError> {
    match kube.api::<ConfigMap>().delete(id, dp).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => {
            Err(Op::named("delete", "configmaps", &kube.namespace, id).error(&kube.server, e))
        }
    }
}
