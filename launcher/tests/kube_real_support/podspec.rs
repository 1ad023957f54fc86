//! What a kubelet gives a container, made on this machine: the pod's volumes as folders
//! (emptyDir, ConfigMap, Secret, the projected ServiceAccount volume with a token from the
//! real TokenRequest API), and the container's environment (values, fieldRefs, Secret and
//! ConfigMap keys, envFrom), with loopback stand-ins where a pod would have its own network
//! and mount namespaces:
//! - a path under a volume's mountPath becomes the volume's folder;
//! - `0.0.0.0:PORT` (listen on every address of the pod) becomes `POD_IP:PORT` (pod IPs are
//!   loopback addresses, `kwok --cidr`);
//! - `NAME.NS.svc[.cluster.local]` becomes the Service's stand-in address ([`super::proxy`]);
//! - `KUBERNETES_SERVICE_HOST/PORT` name the API server on loopback, and
//!   `T2_SERVICEACCOUNT_DIR` the folder standing in for
//!   `/var/run/secrets/kubernetes.io/serviceaccount`;
//! - `T2_WORK_AREA`, `T2_PACKAGE_PATH` and `T2_JOB_SPEC` (t2's own overrides of its fixed
//!   in-pod paths) point into the mapped volumes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::Client;

use super::proxy::Proxies;

/// Where the kubelet mounts the ServiceAccount volume.
pub const SA_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The folders of a pod's volumes.
#[derive(Debug, Clone, Default)]
pub struct PodFiles {
    /// The pod's folder.
    pub root: PathBuf,
    /// Volume name → folder.
    pub volumes: BTreeMap<String, PathBuf>,
}

fn write_file(dir: &Path, rel: &str, bytes: &[u8]) -> Result<(), String> {
    if rel.starts_with('/') || rel.split('/').any(|p| p == "..") {
        return Err(format!("volume item path {rel} escapes its volume"));
    }
    let path = dir.join(rel);
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(|e| format!("mkdir {}: {e}", p.display()))?;
    }
    std::fs::write(&path, bytes).map_err(|e| format!("write {}: {e}", path.display()))
}

/// A pod's field by its downward-API path.
pub fn field(pod: &Pod, path: &str) -> Result<String, String> {
    let status = pod.status.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let meta = &pod.metadata;
    let map_key = |m: &Option<BTreeMap<String, String>>, p: &str, prefix: &str| {
        let key = p
            .strip_prefix(prefix)
            .and_then(|k| k.strip_suffix("']"))
            .unwrap_or_default()
            .to_string();
        m.as_ref()
            .and_then(|m| m.get(&key).cloned())
            .unwrap_or_default()
    };
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "status.podIP" => status.pod_ip.unwrap_or_default(),
        "status.hostIP" => status.host_ip.unwrap_or_default(),
        "spec.nodeName" => spec.node_name.unwrap_or_default(),
        "spec.serviceAccountName" => spec.service_account_name.unwrap_or_default(),
        p if p.starts_with("metadata.labels['") => map_key(&meta.labels, p, "metadata.labels['"),
        p if p.starts_with("metadata.annotations['") => {
            map_key(&meta.annotations, p, "metadata.annotations['")
        }
        other => {
            return Err(format!(
                "fieldRef {other} is not supported by the test runtime"
            ))
        }
    })
}

/// A ServiceAccount token bound to `pod` from the real TokenRequest API.
pub async fn token_for(
    client: &Client,
    pod: &Pod,
    audience: Option<&str>,
    expiration: i64,
) -> Result<String, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let mut spec = serde_json::json!({
        "expirationSeconds": expiration.max(600),
        "boundObjectRef": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod.metadata.name,
            "uid": pod.metadata.uid,
        },
    });
    if let Some(a) = audience.filter(|a| !a.is_empty()) {
        spec["audiences"] = serde_json::json!([a]);
    }
    let body = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": spec,
    });
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    let r: serde_json::Value = api
        .create_subresource("token", &sa, &PostParams::default(), &body)
        .await
        .map_err(|e| format!("TokenRequest for ServiceAccount {ns}/{sa}: {e}"))?;
    r["status"]["token"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| format!("TokenRequest for {ns}/{sa} gave no token: {r}"))
}

/// Whether the pod gets an API token (the pod's field, else its ServiceAccount's, else yes).
fn automount(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.automount_service_account_token)
        .unwrap_or(true)
}

/// Makes the pod's volumes under `root`.
pub async fn prepare(client: &Client, pod: &Pod, root: &Path) -> Result<PodFiles, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let mut files = PodFiles {
        root: root.to_path_buf(),
        volumes: BTreeMap::new(),
    };
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    for v in spec.volumes.unwrap_or_default() {
        let dir = root.join("volumes").join(&v.name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        if v.empty_dir.is_some() {
            // A folder is all an emptyDir is.
        } else if let Some(cm) = &v.config_map {
            let got = cms
                .get(&cm.name)
                .await
                .map_err(|e| format!("ConfigMap {} of volume {}: {e}", cm.name, v.name))?;
            let data = got.data.unwrap_or_default();
            match &cm.items {
                Some(items) => {
                    for it in items {
                        let value = data.get(&it.key).ok_or_else(|| {
                            format!("ConfigMap {} has no key {}", cm.name, it.key)
                        })?;
                        write_file(&dir, &it.path, value.as_bytes())?;
                    }
                }
                None => {
                    for (k, value) in &data {
                        write_file(&dir, k, value.as_bytes())?;
                    }
                }
            }
        } else if let Some(sv) = &v.secret {
            let name = sv.secret_name.clone().unwrap_or_default();
            let got = secrets
                .get(&name)
                .await
                .map_err(|e| format!("Secret {name} of volume {}: {e}", v.name))?;
            let mut data: BTreeMap<String, Vec<u8>> = got
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, b)| (k, b.0))
                .collect();
            for (k, s) in got.string_data.unwrap_or_default() {
                data.insert(k, s.into_bytes());
            }
            for (k, value) in &data {
                write_file(&dir, k, value)?;
            }
        } else if let Some(p) = &v.projected {
            for src in p.sources.clone().unwrap_or_default() {
                if let Some(t) = &src.service_account_token {
                    let token = token_for(
                        client,
                        pod,
                        t.audience.as_deref(),
                        t.expiration_seconds.unwrap_or(3607),
                    )
                    .await?;
                    write_file(&dir, &t.path, token.as_bytes())?;
                }
                if let Some(cm) = &src.config_map {
                    let got = cms
                        .get(&cm.name)
                        .await
                        .map_err(|e| format!("ConfigMap {} of volume {}: {e}", cm.name, v.name))?;
                    let data = got.data.unwrap_or_default();
                    for it in cm.items.clone().unwrap_or_default() {
                        let value = data.get(&it.key).ok_or_else(|| {
                            format!("ConfigMap {} has no key {} (yet)", cm.name, it.key)
                        })?;
                        write_file(&dir, &it.path, value.as_bytes())?;
                    }
                }
                if let Some(d) = &src.downward_api {
                    for it in d.items.clone().unwrap_or_default() {
                        if let Some(f) = &it.field_ref {
                            write_file(&dir, &it.path, field(pod, &f.field_path)?.as_bytes())?;
                        }
                    }
                }
            }
        } else if let Some(pvc) = &v.persistent_volume_claim {
            // A claim outlives its pods: one folder per claim in the namespace.
            let claim = root
                .parent()
                .map(|p| p.join("claims").join(&pvc.claim_name))
                .unwrap_or_else(|| dir.clone());
            std::fs::create_dir_all(&claim)
                .map_err(|e| format!("mkdir {}: {e}", claim.display()))?;
            let _ = std::fs::remove_dir(&dir);
            files.volumes.insert(v.name.clone(), claim);
            continue;
        } else {
            return Err(format!(
                "volume {} is of a kind the test runtime does not make",
                v.name
            ));
        }
        files.volumes.insert(v.name.clone(), dir);
    }
    Ok(files)
}

/// Container `c`'s mounts: mountPath → folder, longest first.
pub fn mounts(c: &Container, files: &PodFiles) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = c
        .volume_mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            let base = files.volumes.get(&m.name)?.clone();
            let dir = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(s) => base.join(s),
                None => base,
            };
            Some((m.mount_path.trim_end_matches('/').to_string(), dir))
        })
        .collect();
    out.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    out
}

/// Where `path` (as the container sees it) is on this machine, if under a mount.
pub fn map_path(mounts: &[(String, PathBuf)], path: &str) -> Option<PathBuf> {
    mounts.iter().find_map(|(mp, dir)| {
        if path == mp {
            Some(dir.clone())
        } else {
            path.strip_prefix(&format!("{mp}/"))
                .map(|rest| dir.join(rest))
        }
    })
}

/// The environment of container `c` of `pod`.
pub async fn container_env(
    client: &Client,
    pod: &Pod,
    c: &Container,
    files: &PodFiles,
    proxies: &Proxies,
    api_port: u16,
    exec_path: &Path,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            format!("{}:/usr/local/bin:/usr/bin:/bin", exec_path.display()),
        ),
        ("HOME".into(), files.root.join("home").display().to_string()),
        (
            "HOSTNAME".into(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
        ("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()),
        ("KUBERNETES_SERVICE_PORT".into(), api_port.to_string()),
    ];
    let _ = std::fs::create_dir_all(files.root.join("home"));
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(n, _)| *n != k);
        env.push((k, v));
    };
    for from in c.env_from.clone().unwrap_or_default() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(s) = &from.secret_ref {
            let got = secrets
                .get(&s.name)
                .await
                .map_err(|e| format!("CreateContainerConfigError: Secret {}: {e}", s.name))?;
            for (k, v) in got.data.unwrap_or_default() {
                set(
                    &mut env,
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v.0).into_owned(),
                );
            }
        }
        if let Some(m) = &from.config_map_ref {
            let got = cms
                .get(&m.name)
                .await
                .map_err(|e| format!("CreateContainerConfigError: ConfigMap {}: {e}", m.name))?;
            for (k, v) in got.data.unwrap_or_default() {
                set(&mut env, format!("{prefix}{k}"), v);
            }
        }
    }
    for e in c.env.clone().unwrap_or_default() {
        let value = if let Some(v) = e.value {
            v
        } else if let Some(from) = e.value_from {
            if let Some(f) = from.field_ref {
                field(pod, &f.field_path)?
            } else if let Some(s) = from.secret_key_ref {
                let got = secrets.get(&s.name).await.map_err(|err| {
                    format!("CreateContainerConfigError: Secret {}: {err}", s.name)
                })?;
                let mut data: BTreeMap<String, Vec<u8>> = got
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, b)| (k, b.0))
                    .collect();
                for (k, v) in got.string_data.unwrap_or_default() {
                    data.insert(k, v.into_bytes());
                }
                let v = data.get(&s.key).ok_or_else(|| {
                    format!(
                        "CreateContainerConfigError: Secret {} has no key {}",
                        s.name, s.key
                    )
                })?;
                String::from_utf8_lossy(v).into_owned()
            } else if let Some(m) = from.config_map_key_ref {
                let got = cms.get(&m.name).await.map_err(|err| {
                    format!("CreateContainerConfigError: ConfigMap {}: {err}", m.name)
                })?;
                got.data
                    .unwrap_or_default()
                    .get(&m.key)
                    .cloned()
                    .ok_or_else(|| format!("ConfigMap {} has no key {}", m.name, m.key))?
            } else {
                return Err(format!(
                    "env {}: a source the test runtime does not know",
                    e.name
                ));
            }
        } else {
            String::new()
        };
        set(&mut env, e.name, value);
    }
    let mounts = mounts(c, files);
    // t2's own overrides of its fixed in-pod paths (launcher/src/kubernetes/incluster/env.rs).
    for (var, path) in [
        ("T2_WORK_AREA", "/t2"),
        ("T2_PACKAGE_PATH", "/t2/package/package.tar.gz"),
        ("T2_JOB_SPEC", "/etc/t2/job/spec.json"),
    ] {
        if let Some(p) = map_path(&mounts, path) {
            set(&mut env, var.into(), p.display().to_string());
        }
    }
    if automount(pod) {
        if let Some(p) = map_path(&mounts, SA_MOUNT) {
            set(
                &mut env,
                "T2_SERVICEACCOUNT_DIR".into(),
                p.display().to_string(),
            );
        }
    }
    let pod_ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .ok_or("the pod has no IP yet")?;
    // Paths already on this machine (the overrides above, HOME) are not mapped again: under
    // the temporary folder, they would otherwise match a container's `/tmp` mount.
    let host = files
        .root
        .ancestors()
        .nth(2)
        .unwrap_or(&files.root)
        .to_path_buf();
    let mut out = Vec::with_capacity(env.len());
    for (k, v) in env {
        let mut v = if v.starts_with('/') && !Path::new(&v).starts_with(&host) {
            map_path(&mounts, &v)
                .map(|p| p.display().to_string())
                .unwrap_or(v)
        } else {
            v
        };
        if let Some(port) = v.strip_prefix("0.0.0.0:") {
            v = format!("{pod_ip}:{port}");
        }
        v = proxies.rewrite(&v).await?;
        out.push((k, v));
    }
    Ok(out)
}
