//! The object model of a job (DESIGN §5) as pure functions: [`build_objects`] turns a job,
//! its spec and its `kubernetes` settings into every object to create, root first. Nothing
//! here talks to a cluster; `t2 submit --dry-run -o yaml` prints [`to_yaml`] of the result.
//!
//! # Layout
//! - [`labels`]: labels, selectors, the owner reference. - [`pod`]: folders, env, quantities.
//! - [`root`]: the root ConfigMap. - [`token`]: the job token Secret.
//! - [`access`]: the job master's own ServiceAccount, Role and RoleBinding.
//! - [`services`]: the headless worker Service and the job master Service.
//! - [`workers`] / [`jobmaster`]: the StatefulSets. - [`containers`]: init, worker and job
//!   master containers. - [`volumes`]: emptyDirs, claims, Secrets as files.
//! - [`network`]: the NetworkPolicies (ingress only from the job's own pods).
//! - [`sizing`]: requests and limits, `/t2`'s size. - [`existing`]: `kubernetes.volumes`.
//! - [`gang`]: the Volcano PodGroup, the pods' scheduler, queue and priority, the user's
//!   labels and annotations (issue 18).
//! - [`placement`]: node selector, affinity, tolerations, spreading.
//! - [`yaml`]: YAML that kubectl reads back exactly.

pub mod access;
pub mod containers;
pub mod existing;
pub mod gang;
pub mod jobmaster;
pub mod labels;
pub mod network;
pub mod placement;
pub mod pod;
pub mod root;
pub mod services;
pub mod sizing;
pub mod token;
pub mod volumes;
pub mod workers;
pub mod yaml;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::Serialize;
use t2_core::spec::JobSpec;

use super::names::JobNames;
use super::settings::Settings;

/// The uid written in owner references before the root exists (`--dry-run`): empty, which
/// the API server refuses (`ownerReferences[0].uid: Required value`). So `kubectl apply` of a
/// dry run's output makes none of the owned objects; an invented uid would be accepted, name
/// no object, and garbage collection would delete every owned object at once.
pub const DRY_RUN_UID: &str = "";

/// What a dry run shows instead of the job token (and of its certificate's keys): a dry
/// run's output goes to terminals, logs and files; the real token is made at submit.
pub const DRY_RUN_SECRET: &str = "<made by t2 submit>";

/// What the objects of a job are made from, besides its spec and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// The job ID.
    pub id: String,
    /// Who submitted it (a valid label value).
    pub owner: String,
    /// The namespace.
    pub namespace: String,
    /// The job token.
    pub token: String,
    /// The package's sha256.
    pub package_sha256: String,
    /// The package's size.
    pub package_bytes: u64,
    /// The package's URL on the uploader, as pods see it; `None` for direct delivery.
    pub package_url: Option<String>,
    /// The key with which the job master renews (and at the end drops) the job's reference
    /// to its package on the uploader ([`t2_uploader::auth::ref_key`]); it goes into the
    /// token Secret. `None` for direct delivery.
    pub uploader_ref_key: Option<String>,
    /// When it was submitted (RFC 3339).
    pub submitted_at: String,
    /// The root ConfigMap's uid ([`DRY_RUN_UID`] until it exists).
    pub root_uid: String,
    /// The job's TLS certificate (a job with `tls: true`), made at submit for the names of
    /// [`JobInfo::jobmaster_names`]; it goes into the token Secret.
    pub tls: Option<t2_core::tls::JobCerts>,
}

impl JobInfo {
    /// This job as a dry run shows it: [`DRY_RUN_SECRET`] for the token and the certificate,
    /// [`DRY_RUN_UID`] in the owner references.
    pub fn with_placeholders(mut self) -> Self {
        self.token = DRY_RUN_SECRET.into();
        self.root_uid = DRY_RUN_UID.into();
        if let Some(k) = self.uploader_ref_key.as_mut() {
            *k = DRY_RUN_SECRET.into();
        }
        if let Some(tls) = self.tls.as_mut() {
            tls.ca_pem = DRY_RUN_SECRET.into();
            tls.cert_pem = DRY_RUN_SECRET.into();
            tls.key_pem = DRY_RUN_SECRET.into();
            tls.agent_cert_pem = DRY_RUN_SECRET.into();
            tls.agent_key_pem = DRY_RUN_SECRET.into();
        }
        self
    }

    /// The names of the job's objects.
    pub fn names(&self) -> JobNames {
        JobNames::new(&self.id)
    }

    /// The job master's address as workers use it (`https` with TLS).
    pub fn jobmaster_url(&self, settings: &Settings) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!(
            "{scheme}://{}:{}",
            jobmaster_dns(&self.id, &self.namespace),
            settings.port
        )
    }

    /// Every name the job master's certificate must be valid for: its Service's DNS names
    /// (short, with the namespace, `.svc`, `.svc.cluster.local`) and loopback, where the job
    /// master calls its own `Scale` RPC.
    pub fn jobmaster_names(&self) -> Vec<String> {
        let svc = self.names().jobmaster_service();
        let ns = &self.namespace;
        vec![
            svc.clone(),
            format!("{svc}.{ns}"),
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
            "localhost".into(),
            "127.0.0.1".into(),
        ]
    }
}

/// The DNS name workers dial the job master of job `id` in `namespace` by, and check its
/// certificate against: `<id>-jm.<namespace>.svc`.
pub fn jobmaster_dns(id: &str, namespace: &str) -> String {
    format!("{}.{namespace}.svc", JobNames::new(id).jobmaster_service())
}

/// One object of a job.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // a handful per job, built once
pub enum Object {
    /// The root, or another ConfigMap.
    ConfigMap(ConfigMap),
    /// The token Secret.
    Secret(Secret),
    /// A Service.
    Service(Service),
    /// A shared claim.
    PersistentVolumeClaim(PersistentVolumeClaim),
    /// A StatefulSet.
    StatefulSet(StatefulSet),
    /// The job master's ServiceAccount.
    ServiceAccount(ServiceAccount),
    /// The job master's Role.
    Role(Role),
    /// Its RoleBinding.
    RoleBinding(RoleBinding),
    /// A NetworkPolicy of the job (issue 18).
    NetworkPolicy(NetworkPolicy),
    /// The job's Volcano PodGroup (issue 18, `kubernetes.gang: volcano`).
    PodGroup(gang::PodGroup),
}

impl Object {
    /// Its kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConfigMap(_) => "ConfigMap",
            Self::Secret(_) => "Secret",
            Self::Service(_) => "Service",
            Self::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Self::StatefulSet(_) => "StatefulSet",
            Self::ServiceAccount(_) => "ServiceAccount",
            Self::Role(_) => "Role",
            Self::RoleBinding(_) => "RoleBinding",
            Self::NetworkPolicy(_) => "NetworkPolicy",
            Self::PodGroup(_) => "PodGroup",
        }
    }

    /// Its resource, `plural[.group]`, as RBAC names it.
    pub fn resource(&self) -> &'static str {
        match self {
            Self::ConfigMap(_) => "configmaps",
            Self::Secret(_) => "secrets",
            Self::Service(_) => "services",
            Self::PersistentVolumeClaim(_) => "persistentvolumeclaims",
            Self::StatefulSet(_) => "statefulsets.apps",
            Self::ServiceAccount(_) => "serviceaccounts",
            Self::Role(_) => "roles.rbac.authorization.k8s.io",
            Self::RoleBinding(_) => "rolebindings.rbac.authorization.k8s.io",
            Self::NetworkPolicy(_) => "networkpolicies.networking.k8s.io",
            Self::PodGroup(_) => "podgroups.scheduling.volcano.sh",
        }
    }

    /// Its name.
    pub fn name(&self) -> String {
        let meta = match self {
            Self::ConfigMap(o) => &o.metadata,
            Self::Secret(o) => &o.metadata,
            Self::Service(o) => &o.metadata,
            Self::PersistentVolumeClaim(o) => &o.metadata,
            Self::StatefulSet(o) => &o.metadata,
            Self::ServiceAccount(o) => &o.metadata,
            Self::Role(o) => &o.metadata,
            Self::RoleBinding(o) => &o.metadata,
            Self::NetworkPolicy(o) => &o.metadata,
            Self::PodGroup(o) => &o.metadata,
        };
        meta.name.clone().unwrap_or_default()
    }

    /// As JSON (with `apiVersion` and `kind`).
    pub fn to_json(&self) -> serde_json::Value {
        fn j<T: Serialize>(t: &T) -> serde_json::Value {
            serde_json::to_value(t).unwrap_or(serde_json::Value::Null)
        }
        match self {
            Self::ConfigMap(o) => j(o),
            Self::Secret(o) => j(o),
            Self::Service(o) => j(o),
            Self::PersistentVolumeClaim(o) => j(o),
            Self::StatefulSet(o) => j(o),
            Self::ServiceAccount(o) => j(o),
            Self::Role(o) => j(o),
            Self::RoleBinding(o) => j(o),
            Self::NetworkPolicy(o) => j(o),
            Self::PodGroup(o) => j(o),
        }
    }
}

/// Every object of the job, the root first, then the objects it owns in creation order:
/// the job master's ServiceAccount, Role and RoleBinding, token Secret, Services,
/// NetworkPolicies (before any pod exists), the PodGroup (gang: volcano), shared claim, job
/// master StatefulSet, worker StatefulSet.
pub fn build_objects(job: &JobInfo, spec: &JobSpec, settings: &Settings) -> Vec<Object> {
    let mut out = vec![Object::ConfigMap(root::root_config_map(
        job, spec, settings,
    ))];
    out.extend(build_owned(job, spec, settings));
    out
}

/// The objects the root owns, in creation order (`job.root_uid` must be the root's uid).
pub fn build_owned(job: &JobInfo, spec: &JobSpec, settings: &Settings) -> Vec<Object> {
    let mut out: Vec<Object> = access::service_account(job, settings)
        .map(Object::ServiceAccount)
        .into_iter()
        .collect();
    out.extend([
        Object::Role(access::role(job)),
        Object::RoleBinding(access::role_binding(job, settings)),
        Object::Secret(token::token_secret(job)),
        Object::Service(services::workers_service(job)),
        Object::Service(services::jobmaster_service(job, settings)),
    ]);
    out.extend(
        network::network_policies(job, settings)
            .into_iter()
            .map(Object::NetworkPolicy),
    );
    out.extend(gang::pod_group(job, spec, settings).map(Object::PodGroup));
    if let Some(claim) = volumes::shared_claim(job, settings) {
        out.push(Object::PersistentVolumeClaim(claim));
    }
    out.push(Object::StatefulSet(jobmaster::jobmaster_statefulset(
        job, spec, settings,
    )));
    out.push(Object::StatefulSet(workers::workers_statefulset(
        job, spec, settings,
    )));
    for o in &mut out {
        gang::decorate(o, job, settings);
    }
    out
}

/// The objects as one multi-document YAML stream.
pub fn to_yaml(objects: &[Object]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&yaml::to_yaml_doc(&o.to_json()));
    }
    out
}

/// The objects as a pretty JSON `List`, each object's keys in kubectl's order
/// (`apiVersion`, `kind`, `metadata` first).
pub fn to_json_list_text(objects: &[Object]) -> String {
    let list = to_json_list(objects);
    serde_json::to_string_pretty(&yaml::KubeOrdered(&list)).unwrap_or_else(|_| "{}".into())
}

/// The objects as a JSON `List`.
pub fn to_json_list(objects: &[Object]) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": objects.iter().map(Object::to_json).collect::<Vec<_>>(),
    })
}
