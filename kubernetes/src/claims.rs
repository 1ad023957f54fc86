//! Existing volumes (`kubernetes.volumes`, issue 18): PersistentVolumeClaims made outside t2
//! (a ReadOnlyMany data source, a ReadWriteMany output that outlives the job) and nodes'
//! folders (`host_path`, only with `kubernetes.allow_host_path`), mounted into every worker
//! container. t2 never makes, owns or deletes these. Checked twice: the settings when read
//! (names, paths, no two mounts at one folder), and the claims themselves at submit and at
//! `t2 scale` (each exists, and its access modes fit the job's worker pods), before anything
//! is created or changed.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde::Deserialize;
use t2_core::spec::JobSpec;

use super::checks::{check_mount, is_subdomain};
use super::client::Kube;
use super::error::{is_status, KubeError, Op};
use super::manifests::pod::{MEMORY_DIR, TMP_DIR, VOLATILE_DIR};
use super::settings::Settings;

/// One existing volume of `kubernetes.volumes`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeUse {
    /// An existing PersistentVolumeClaim in the job's namespace.
    #[serde(default)]
    pub claim: Option<String>,
    /// A folder of the node (needs `kubernetes.allow_host_path`).
    #[serde(default)]
    pub host_path: Option<String>,
    /// Where worker containers see it.
    pub mount: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// The keys of one `kubernetes.volumes` entry.
pub const VOLUME_KEYS: &[&str] = &["claim", "host_path", "mount", "read_only"];

/// The access modes of claims.
pub mod modes {
    /// One node reads and writes.
    pub const RWO: &str = "ReadWriteOnce";
    /// Many nodes read.
    pub const ROX: &str = "ReadOnlyMany";
    /// Many nodes read and write.
    pub const RWX: &str = "ReadWriteMany";
    /// One pod reads and writes.
    pub const RWOP: &str = "ReadWriteOncePod";
}

/// Checks `kubernetes.volumes` and `allow_host_path`, and that no two mounts of worker
/// containers share a folder (t2's own `/tmp`, `/t2/memory`, `/t2/volatile` included).
pub fn check_volumes(s: &Settings, spec: &JobSpec) -> Result<(), KubeError> {
    let mut taken: Vec<(String, String)> = vec![(TMP_DIR.into(), "t2 (the workers' /tmp)".into())];
    if s.memory_volume_mb > 0 {
        taken.push((MEMORY_DIR.into(), "kubernetes.memory_volume_mb".into()));
    }
    if spec.resources.disk_mb > 0 {
        taken.push((VOLATILE_DIR.into(), "resources.disk_mb".into()));
    }
    let mut claim = |key: String, path: &str| -> Result<(), KubeError> {
        let p = path.trim_end_matches('/').to_string();
        if let Some((_, by)) = taken.iter().find(|(t, _)| *t == p) {
            return Err(KubeError::setting(
                format!("kubernetes.{key}"),
                format!(
                    "'{}' is already mounted by {by}; give each volume a folder of its own",
                    path.escape_default()
                ),
            ));
        }
        taken.push((p, format!("kubernetes.{key}")));
        Ok(())
    };
    if let Some(st) = &s.storage {
        claim("storage.mount".into(), &st.mount)?;
    }
    for (i, sec) in s.secrets.iter().enumerate() {
        if let Some(m) = &sec.mount {
            claim(format!("secrets[{i}].mount"), m)?;
        }
    }
    for (i, v) in s.volumes.iter().enumerate() {
        let at = format!("volumes[{i}]");
        let bad = |k: &str, m: String| KubeError::setting(format!("kubernetes.{at}{k}"), m);
        match (&v.claim, &v.host_path) {
            (Some(c), None) => {
                if !is_subdomain(c) {
                    return Err(bad(".claim", format!("'{}' is not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most 253)", c.escape_default())));
                }
            }
            (None, Some(h)) => {
                if !s.allow_host_path {
                    return Err(bad(".host_path", "mounting a node's folder is refused unless kubernetes.allow_host_path is true (a hostPath volume reaches outside the pod, and Pod Security baseline and restricted refuse it); set it, or use a claim".into()));
                }
                let p = h.trim_end_matches('/');
                let ok = p.starts_with('/')
                    && !p.split('/').any(|c| c == "..")
                    && !h.chars().any(|c| c == ':' || c.is_control());
                if !ok {
                    return Err(bad(".host_path", format!("'{}' must be an absolute folder of the node other than /, without '..' or ':', e.g. /var/lib/t2-cache", h.escape_default())));
                }
            }
            _ => {
                return Err(bad("", "give either claim: NAME (an existing PersistentVolumeClaim) or host_path: /folder/of/the/node, and mount: /folder".into()));
            }
        }
        let key = format!("{at}.mount");
        check_mount(&key, &v.mount)?;
        claim(key, &v.mount)?;
    }
    Ok(())
}

/// Worker pods of `workers` workers, `workers_per_pod` each.
fn pods_of(workers: u32, workers_per_pod: u32) -> u32 {
    workers / workers_per_pod.max(1)
}

/// Whether a claim with access modes `have` can be mounted (`read_only` or not) by `pods`
/// worker pods at once; the reason and the fix when not.
pub fn claim_fits(name: &str, have: &[String], read_only: bool, pods: u32) -> Result<(), String> {
    let has = |m: &str| have.iter().any(|h| h == m);
    let shown = if have.is_empty() {
        "no access mode".to_string()
    } else {
        have.join(", ")
    };
    let writable = has(modes::RWO) || has(modes::RWX) || has(modes::RWOP);
    if !read_only && !writable {
        return Err(format!(
            "PersistentVolumeClaim '{name}' is {shown}, which cannot be written; mount it with read_only: true"
        ));
    }
    if pods <= 1 {
        return Ok(());
    }
    if read_only && !(has(modes::ROX) || has(modes::RWX)) {
        return Err(format!(
            "PersistentVolumeClaim '{name}' is {shown} (one node or pod), but the job has {pods} worker pods; use a ReadOnlyMany or ReadWriteMany claim, or put every worker in one pod (workers_per_pod = workers)"
        ));
    }
    if !read_only && !has(modes::RWX) {
        let or_read = if has(modes::ROX) {
            ", or mount it with read_only: true"
        } else {
            ""
        };
        return Err(format!(
            "PersistentVolumeClaim '{name}' is {shown}, but {pods} worker pods would write to it; use a ReadWriteMany claim (NFS, CephFS, a cloud file share){or_read}, or put every worker in one pod (workers_per_pod = workers)"
        ));
    }
    Ok(())
}

/// The access modes of `pvc`: its bound volume's (status), else those it asks for (spec).
fn access_modes(pvc: &PersistentVolumeClaim) -> Vec<String> {
    pvc.status
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| pvc.spec.as_ref().and_then(|s| s.access_modes.clone()))
        .unwrap_or_default()
}

/// Checks every claim of `s.volumes` in the namespace for `pods` worker pods: it exists and
/// its access modes fit. The error is one line naming the claim and the fix.
pub async fn check_claims(kube: &Kube, s: &Settings, pods: u32) -> Result<(), KubeError> {
    let ns = &kube.namespace;
    for (i, v) in s.volumes.iter().enumerate() {
        let Some(name) = &v.claim else { continue };
        let at = format!("kubernetes.volumes[{i}].claim");
        let pvc = match kube.api::<PersistentVolumeClaim>().get(name).await {
            Ok(p) => p,
            Err(e) if is_status(&e, 404) => {
                return Err(KubeError::Config(format!(
                    "{at}: there is no PersistentVolumeClaim '{name}' in namespace '{ns}'; t2 mounts existing claims only (it never makes or deletes them): create it first ('kubectl -n {ns} get pvc' lists those there) or fix the name"
                )))
            }
            Err(e) => {
                return Err(Op::named("get", "persistentvolumeclaims", ns, name)
                    .error(&kube.server, e))
            }
        };
        claim_fits(name, &access_modes(&pvc), v.read_only, pods)
            .map_err(|why| KubeError::Config(format!("{at}: {why}")))?;
    }
    Ok(())
}

/// The claims of job `spec` (as its root records it), for `t2 scale` to `workers`: checked
/// as at submit when the job mounts any. A spec whose volumes do not read has none.
pub async fn check_scale(kube: &Kube, spec: &JobSpec, workers: u32) -> Result<(), KubeError> {
    let volumes: Vec<VolumeUse> = spec
        .kubernetes
        .get("volumes")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    if !volumes.iter().any(|v| v.claim.is_some()) {
        return Ok(());
    }
    let s = Settings {
        volumes,
        ..Settings::default()
    };
    check_claims(kube, &s, pods_of(workers, spec.workers_per_pod))
        .await
        .map_err(|e| match e {
            KubeError::Config(m) => {
                KubeError::Config(format!("cannot scale to {workers} workers: {m}"))
            }
            e => e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_pod_may_write_a_readwriteonce_claim_several_may_not() {
        assert!(claim_fits("c", &m(&[modes::RWO]), false, 1).is_ok());
        assert!(claim_fits("c", &m(&[modes::RWOP]), false, 1).is_ok());
        let e = claim_fits("work", &m(&[modes::RWO]), false, 3).unwrap_err();
        assert!(e.contains("'work' is ReadWriteOnce"), "{e}");
        assert!(
            e.contains("3 worker pods") && e.contains("ReadWriteMany"),
            "{e}"
        );
        assert!(!e.contains("read_only: true"), "{e}");
        let e = claim_fits("work", &m(&[modes::RWO]), true, 2).unwrap_err();
        assert!(e.contains("ReadOnlyMany or ReadWriteMany"), "{e}");
    }

    #[test]
    fn many_pods_read_readonlymany_and_write_readwritemany() {
        assert!(claim_fits("c", &m(&[modes::ROX]), true, 8).is_ok());
        assert!(claim_fits("c", &m(&[modes::RWX]), true, 8).is_ok());
        assert!(claim_fits("c", &m(&[modes::RWX]), false, 8).is_ok());
        assert!(claim_fits("c", &m(&[modes::RWO, modes::ROX]), true, 8).is_ok());
        let e = claim_fits("ref", &m(&[modes::ROX]), false, 1).unwrap_err();
        assert!(
            e.contains("cannot be written") && e.contains("read_only: true"),
            "{e}"
        );
        let e = claim_fits("ref", &m(&[modes::RWO, modes::ROX]), false, 4).unwrap_err();
        assert!(e.contains("or mount it with read_only: true"), "{e}");
        assert!(claim_fits("c", &[], true, 1).is_ok());
        assert!(claim_fits("c", &[], false, 1)
            .unwrap_err()
            .contains("no access mode"));
    }

    #[test]
    fn a_bound_claims_modes_are_its_volumes() {
        let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "spec": {"accessModes": ["ReadWriteOnce"]},
            "status": {"accessModes": ["ReadWriteMany"]},
        }))
        .unwrap();
        assert_eq!(access_modes(&pvc), m(&[modes::RWX]));
        let pending: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "spec": {"accessModes": ["ReadOnlyMany"]},
        }))
        .unwrap();
        assert_eq!(access_modes(&pending), m(&[modes::ROX]));
    }
}
