//! `t2 doctor kubernetes`: can this user run t2 jobs in this namespace? It checks the
//! namespace, every permission of [`SUBMITTER`] with a SelfSubjectAccessReview, the uploader,
//! and — where no uploader delivers — [`DIRECT_DELIVERY`], and prints the exact fix for each
//! problem. (Job masters need nothing set up: each job brings its own ServiceAccount and Role.)

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::PostParams;
use kube::Api;

use super::client::Kube;
use super::deliver::uploader::find_uploader;
use super::error::{is_status, KubeError, Op};
use super::permissions::{Permission, DIRECT_DELIVERY, SUBMITTER};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Fine?
    pub ok: bool,
    /// What was checked (and found).
    pub what: String,
    /// The command or change that fixes it.
    pub fix: Option<String>,
}

impl Check {
    fn ok(what: impl Into<String>) -> Self {
        Self {
            ok: true,
            what: what.into(),
            fix: None,
        }
    }

    fn fail(what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            ok: false,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Asks the API server whether the caller may do `p` in `namespace`.
pub async fn may(kube: &Kube, p: &Permission) -> Result<bool, KubeError> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(kube.namespace.clone()),
                verb: Some(p.verb.into()),
                group: Some(p.group.into()),
                resource: Some(p.resource.into()),
                subresource: p.subresource.map(String::from),
                name: p.name.map(String::from),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(kube.client.clone());
    let answer = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| {
            Op::collection(
                "create",
                "selfsubjectaccessreviews.authorization.k8s.io",
                &kube.namespace,
            )
            .error(&kube.server, e)
        })?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Runs every check; `user` names the caller in the suggested RoleBinding.
pub async fn doctor(kube: &Kube, user: &str) -> Result<Vec<Check>, KubeError> {
    let ns = kube.namespace.clone();
    let mut out = Vec::new();
    match Api::<Namespace>::all(kube.client.clone()).get(&ns).await {
        Ok(_) => out.push(Check::ok(format!("namespace '{ns}' exists"))),
        Err(e) if is_status(&e, 404) => {
            out.push(Check::fail(
                format!("namespace '{ns}' does not exist"),
                format!("kubectl create namespace {ns}"),
            ));
            return Ok(out);
        }
        Err(e) if is_status(&e, 403) => out.push(Check::ok(format!(
            "namespace '{ns}': not allowed to read it (that is fine)"
        ))),
        Err(e) => return Err(Op::named("get", "namespaces", &ns, &ns).error(&kube.server, e)),
    }
    let binding = format!(
        "kubectl -n {ns} create rolebinding t2-submitter-{user} --role=t2-submitter --user={user}  (the Role is in deploy/rbac.yaml: kubectl apply -k deploy/)"
    );
    let mut missing = Vec::new();
    for p in SUBMITTER {
        if !may(kube, p).await? {
            missing.push(p);
        }
    }
    if missing.is_empty() {
        out.push(Check::ok(format!(
            "you may do all {} things t2 needs in '{ns}'",
            SUBMITTER.len()
        )));
    } else {
        for p in &missing {
            out.push(Check::fail(
                format!(
                    "you may not {} {} in '{ns}' (needed by {})",
                    p.verb,
                    p.resource_name(),
                    p.used_by
                ),
                binding.clone(),
            ));
        }
    }
    let direct_binding = format!(
        "kubectl -n {ns} create rolebinding t2-direct-delivery-{user} --role=t2-direct-delivery --user={user}  (deploy/rbac.yaml), or deploy an uploader (deploy/uploader.yaml)"
    );
    match find_uploader(kube, "app.kubernetes.io/name=t2-uploader").await {
        Ok(None) => {
            out.push(Check::ok(
                "no uploader: packages are streamed into each pod (fine for small jobs; deploy/uploader.yaml serves many workers better)",
            ));
            for p in DIRECT_DELIVERY {
                if may(kube, p).await? {
                    out.push(Check::ok(format!("you may {} {} (direct delivery)", p.verb, p.resource_name())));
                } else {
                    out.push(Check::fail(
                        format!("you may not {} {} in '{ns}' (needed by {})", p.verb, p.resource_name(), p.used_by),
                        direct_binding.clone(),
                    ));
                }
            }
        }
        Ok(Some(up)) => match &up.token_secret {
            None => out.push(Check::ok(format!("uploader '{}' found (pass its token with --uploader-token)", up.service))),
            Some(secret) => match kube.api::<Secret>().get(secret).await {
                Ok(_) => out.push(Check::ok(format!("uploader '{}' found, its token Secret '{secret}' too", up.service))),
                Err(e) if is_status(&e, 404) => out.push(Check::fail(
                    format!("uploader '{}' found, but its token Secret '{secret}' does not exist", up.service),
                    format!("kubectl -n {ns} create secret generic {secret} --from-literal=token=\"$(openssl rand -hex 32)\""),
                )),
                Err(_) => out.push(Check::fail(
                    format!("uploader '{}' found, but its token Secret '{secret}' cannot be read", up.service),
                    binding.clone(),
                )),
            },
        },
        Err(KubeError::Forbidden { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(out)
}

/// The findings as text, fixes indented under failures.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    let mut fixes_shown = std::collections::BTreeSet::new();
    for c in checks {
        out.push_str(if c.ok { "ok    " } else { "FAIL  " });
        out.push_str(&c.what);
        out.push('\n');
        if let Some(f) = &c.fix {
            if fixes_shown.insert(f.clone()) {
                out.push_str(&format!("      fix: {f}\n"));
            } else {
                out.push_str("      fix: (same as above)\n");
            }
        }
    }
    out
}
