//! The job master's API access, one set per job and owned by its root: ServiceAccount
//! `<id>-jm`, Role `<id>-jm` whose rules name only this job's objects (`resourceNames`: its
//! root ConfigMap and its worker StatefulSet's scale), and RoleBinding `<id>-jm` binding the
//! Role to that ServiceAccount alone. So a job master can neither read nor change another
//! job; the Role goes with the job (garbage collection). The rules are
//! [`JOBMASTER`](crate::permissions::JOBMASTER) with the job's names filled in.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::labels::owned_meta;
use super::JobInfo;
use crate::permissions::{JobObject, JOBMASTER};
use crate::settings::Settings;

/// The component label of these objects.
const COMPONENT: &str = "jobmaster-access";

/// The ServiceAccount the job master runs as: the job's own, unless `kubernetes.service_account`
/// names one.
pub fn account_name(job: &JobInfo, s: &Settings) -> String {
    if s.service_account.is_empty() {
        job.names().jobmaster()
    } else {
        s.service_account.clone()
    }
}

/// The job's own ServiceAccount (`None` when the settings name another).
pub fn service_account(job: &JobInfo, s: &Settings) -> Option<ServiceAccount> {
    s.service_account.is_empty().then(|| ServiceAccount {
        metadata: owned_meta(job, job.names().jobmaster(), COMPONENT),
        automount_service_account_token: Some(true),
        ..ServiceAccount::default()
    })
}

/// The name a permission's object has in this job.
fn object_name(job: &JobInfo, o: JobObject) -> String {
    match o {
        JobObject::Root => job.names().root(),
        JobObject::Workers => job.names().workers(),
    }
}

/// The job master's Role: [`JOBMASTER`], each rule limited to this job's object.
pub fn role(job: &JobInfo) -> Role {
    // One rule per (group, resource, object), its verbs in the order of the table.
    let mut rules: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    for p in JOBMASTER {
        let name = p.object.map(|o| object_name(job, o)).unwrap_or_default();
        let resource = match p.subresource {
            Some(sub) => format!("{}/{sub}", p.resource),
            None => p.resource.to_string(),
        };
        rules
            .entry((p.group.to_string(), resource, name))
            .or_default()
            .push(p.verb.to_string());
    }
    Role {
        metadata: owned_meta(job, job.names().jobmaster(), COMPONENT),
        rules: Some(
            rules
                .into_iter()
                .map(|((group, resource, name), verbs)| PolicyRule {
                    api_groups: Some(vec![group]),
                    resources: Some(vec![resource]),
                    resource_names: (!name.is_empty()).then(|| vec![name]),
                    verbs,
                    ..PolicyRule::default()
                })
                .collect(),
        ),
    }
}

/// Binds [`role`] to the job master's ServiceAccount alone.
pub fn role_binding(job: &JobInfo, s: &Settings) -> RoleBinding {
    RoleBinding {
        metadata: owned_meta(job, job.names().jobmaster(), COMPONENT),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: job.names().jobmaster(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: account_name(job, s),
            namespace: Some(job.namespace.clone()),
            ..Subject::default()
        }]),
    }
}
