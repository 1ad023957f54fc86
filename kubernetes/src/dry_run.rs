//! `t2 submit kubernetes --dry-run=server`: every object of the job is sent to the API server
//! as a create with `dryRun=All`, root first, so that authorization, validation, quotas,
//! Pod Security and admission webhooks judge them before anything exists; nothing is stored.
//! Each object gets a [`Verdict`]. Pod Security judges pods, not the StatefulSets that make
//! them: for a StatefulSet it only answers with a warning (`would violate PodSecurity …`),
//! and the pods the StatefulSet controller then makes are refused where that level is
//! enforced; such a warning makes the StatefulSet's verdict [`Verdict::Refused`].

use http_body_util::BodyExt;
use kube::api::PostParams;
use kube::client::Body;
use t2_core::spec::JobSpec;

use super::client::Kube;
use super::error::{chain, KubeError};
use super::manifests::{build_owned, root, JobInfo, Object, DRY_RUN_UID};
use super::settings::Settings;

/// What the API server said about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It would be created.
    Accepted,
    /// It would be refused (an HTTP status, or the pods of a StatefulSet Pod Security
    /// would refuse).
    Refused {
        /// The HTTP status (200 for a StatefulSet accepted whose pods would be refused).
        code: u16,
        /// The server's reason.
        message: String,
    },
}

/// One object, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// `Kind/name`.
    pub object: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The server's warnings (`Warning` headers).
    pub warnings: Vec<String>,
}

impl Judged {
    /// True when the object would be created as it is.
    pub fn accepted(&self) -> bool {
        self.verdict == Verdict::Accepted
    }
}

/// The collection URL of `obj`'s kind in `ns`.
fn collection_path(obj: &Object, ns: &str) -> String {
    let (prefix, plural) = match obj {
        Object::ConfigMap(_) => ("/api/v1", "configmaps"),
        Object::Secret(_) => ("/api/v1", "secrets"),
        Object::Service(_) => ("/api/v1", "services"),
        Object::PersistentVolumeClaim(_) => ("/api/v1", "persistentvolumeclaims"),
        Object::ServiceAccount(_) => ("/api/v1", "serviceaccounts"),
        Object::StatefulSet(_) => ("/apis/apps/v1", "statefulsets"),
        Object::Role(_) => ("/apis/rbac.authorization.k8s.io/v1", "roles"),
        Object::RoleBinding(_) => ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
        Object::NetworkPolicy(_) => ("/apis/networking.k8s.io/v1", "networkpolicies"),
        Object::PodGroup(_) => ("/apis/scheduling.volcano.sh/v1beta1", "podgroups"),
    };
    format!("{prefix}/namespaces/{ns}/{plural}")
}

/// A `Warning` header's text: `299 - "text"` → `text`.
pub fn warning_text(header: &str) -> String {
    let rest = header.split_once(" - ").map_or(header, |(_, r)| r).trim();
    match rest.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(q) => q.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => rest.to_string(),
    }
}

/// Sends `obj` as a dry-run create; returns the verdict, the warnings and the answered
/// object (when accepted).
async fn judge(kube: &Kube, obj: &Object) -> Result<(Judged, serde_json::Value), KubeError> {
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let object = format!("{}/{}", obj.kind(), obj.name());
    let failed = |why: String| KubeError::Api {
        verb: "create (dry run)".into(),
        resource: obj.resource().into(),
        namespace: kube.namespace.clone(),
        name: Some(obj.name()),
        message: why,
        code: 0,
    };
    let body = serde_json::to_vec(&obj.to_json()).map_err(|e| failed(e.to_string()))?;
    let req = kube::core::Request::new(collection_path(obj, &kube.namespace))
        .create(&pp, body)
        .map_err(|e| failed(e.to_string()))?;
    let res = kube
        .client
        .send(req.map(Body::from))
        .await
        .map_err(|e| failed(format!("cannot reach {}: {}", kube.server, chain(&e))))?;
    let code = res.status().as_u16();
    let warnings: Vec<String> = res
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(warning_text)
        .collect();
    let bytes = res
        .into_body()
        .collect()
        .await
        .map_err(|e| failed(format!("reading the answer: {}", chain(&e))))?
        .to_bytes();
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let verdict = if (200..300).contains(&code) {
        let pod_security: Vec<&String> = warnings
            .iter()
            .filter(|w| w.contains("would violate PodSecurity"))
            .collect();
        match (obj, pod_security.first()) {
            (Object::StatefulSet(_), Some(w)) => Verdict::Refused {
                code,
                message: format!(
                    "the StatefulSet would be created, but its pods {w}; the namespace's Pod Security level refuses them where it is enforced"
                ),
            },
            _ => Verdict::Accepted,
        }
    } else {
        let message = answer
            .get("message")
            .and_then(|m| m.as_str())
            .map(String::from)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        Verdict::Refused { code, message }
    };
    Ok((
        Judged {
            object,
            verdict,
            warnings,
        },
        answer,
    ))
}

/// Judges every object of the job, root first (its dry-run answer's uid, when it has one,
/// goes into the owner references of the rest). Nothing is created.
pub async fn server_dry_run(
    kube: &Kube,
    info: &mut JobInfo,
    spec: &JobSpec,
    settings: &Settings,
) -> Result<Vec<Judged>, KubeError> {
    let root = Object::ConfigMap(root::root_config_map(info, spec, settings));
    let (judged, answer) = judge(kube, &root).await?;
    info.root_uid = answer
        .pointer("/metadata/uid")
        .and_then(|u| u.as_str())
        .filter(|u| !u.is_empty())
        .map_or_else(|| DRY_RUN_UID.to_string(), String::from);
    let mut out = vec![judged];
    for obj in build_owned(info, spec, settings) {
        out.push(judge(kube, &obj).await?.0);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::warning_text;

    #[test]
    fn warning_headers_read_as_their_text() {
        assert_eq!(
            warning_text(
                r#"299 - "would violate PodSecurity \"restricted:latest\": runAsNonRoot != true""#
            ),
            r#"would violate PodSecurity "restricted:latest": runAsNonRoot != true"#
        );
        assert_eq!(warning_text("plain"), "plain");
    }
}
