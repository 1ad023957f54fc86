//! Value checks of the `kubernetes` settings (the keys themselves are checked when read):
//! names, label keys and values, paths, sizes, and the pod-spec fragments (`affinity`,
//! `tolerations`), which must read as Kubernetes types without losing any field.

use k8s_openapi::api::core::v1::{Affinity, Toleration};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use t2_core::spec::JobSpec;

use super::error::KubeError;
use super::settings::{Pack, Settings, Spread};

/// Folders of `/t2` that t2 itself uses inside pods.
const RESERVED: &[&str] = &["/t2", "/t2/package", "/t2/work", "/t2/run", "/etc/t2"];

/// Checks every value of `s` (for the job `spec`).
pub fn check(s: &Settings, spec: &JobSpec) -> Result<(), KubeError> {
    let bad = |k: &str, m: String| Err(KubeError::setting(format!("kubernetes.{k}"), m));
    if !(s.jobmaster.cpu > 0.0 && s.jobmaster.cpu <= 1024.0) {
        return bad(
            "jobmaster.cpu",
            format!("must be between 0 and 1024 cores, got {}", s.jobmaster.cpu),
        );
    }
    if s.jobmaster.memory_mb < 32 {
        return bad(
            "jobmaster.memory_mb",
            format!("must be at least 32, got {}", s.jobmaster.memory_mb),
        );
    }
    if s.port == 0 {
        return bad("port", "must be 1-65535, got 0".into());
    }
    if !s.mpi_ssh_secret.is_empty() {
        if !spec.mpi.enabled {
            return bad(
                "mpi_ssh_secret",
                "is for MPI jobs only; set `mpi: true` too, or remove it".into(),
            );
        }
        if !is_subdomain(&s.mpi_ssh_secret) {
            return bad("mpi_ssh_secret", name_message(&s.mpi_ssh_secret));
        }
    }
    if spec.mpi.enabled && spec.workers_per_pod != 1 {
        return Err(KubeError::setting(
            "workers_per_pod",
            format!(
                "must be 1 for an MPI job (every worker is a host of its own for mpirun, and a pod has one address), got {}",
                spec.workers_per_pod
            ),
        ));
    }
    if !s.service_account.is_empty() && !is_subdomain(&s.service_account) {
        return bad("service_account", name_message(&s.service_account));
    }
    for p in &s.image_pull_secrets {
        if !is_subdomain(p) {
            return bad("image_pull_secrets", name_message(p));
        }
    }
    if let Some(st) = &s.storage {
        if st.size_mb == 0 {
            return bad("storage.size_mb", "must be at least 1 (MiB)".into());
        }
        if let Some(c) = &st.class {
            if !is_subdomain(c) {
                return bad("storage.class", name_message(c));
            }
        }
        check_mount("storage.mount", &st.mount)?;
    }
    for (i, sec) in s.secrets.iter().enumerate() {
        let at = format!("secrets[{i}]");
        if !is_subdomain(&sec.name) {
            return bad(&format!("{at}.name"), name_message(&sec.name));
        }
        match (&sec.mount, sec.env) {
            (None, false) => {
                return bad(
                    &at,
                    format!(
                        "say how to give Secret '{}' to workers: env: true, or mount: /some/folder",
                        sec.name
                    ),
                )
            }
            (Some(m), _) => check_mount(&format!("{at}.mount"), m)?,
            _ => {}
        }
    }
    for (k, v) in &s.node_selector {
        if !is_label_key(k) {
            return bad(
                "node_selector",
                format!("'{}' is not a valid label key", k.escape_default()),
            );
        }
        if !is_label_value(v) {
            return bad("node_selector", format!("'{}' is not a valid label value (at most 63 of letters, digits, '-', '_', '.')", v.escape_default()));
        }
    }
    for (key, label) in [
        ("rack_label", &s.rack_label),
        ("datacenter_label", &s.datacenter_label),
    ] {
        if !is_label_key(label) {
            return bad(
                key,
                format!("'{}' is not a valid label key", label.escape_default()),
            );
        }
    }
    if s.pack != Pack::None && s.spread != Spread::None {
        return bad(
            "pack",
            "cannot be used with kubernetes.spread: packing workers together and spreading them apart contradict each other; keep one".into(),
        );
    }
    if let Some(a) = &s.affinity {
        exact::<Affinity>(a).map_err(|m| KubeError::setting("kubernetes.affinity", m))?;
    }
    for (i, t) in s.tolerations.iter().enumerate() {
        exact::<Toleration>(t)
            .map_err(|m| KubeError::setting(format!("kubernetes.tolerations[{i}]"), m))?;
    }
    if !(1..=256).contains(&s.parallel_uploads) {
        return bad(
            "parallel_uploads",
            format!("must be 1-256, got {}", s.parallel_uploads),
        );
    }
    for (key, d) in [
        ("package_timeout", s.package_timeout),
        ("start_timeout", s.start_timeout),
    ] {
        let max = t2_core::duration::MAX_WAIT;
        if d.is_zero() || d > max {
            return bad(
                key,
                format!(
                    "must be from 1ms to {}, got {}",
                    t2_core::duration::format_duration(max),
                    t2_core::duration::format_duration(d)
                ),
            );
        }
    }
    // Issue 18 (k18b): the finished job's stay, and the health port.
    let max = t2_core::duration::MAX_WAIT;
    if s.ttl_after_finished > max {
        return bad(
            "ttl_after_finished",
            format!(
                "must be from 0s (remove the job at once) to {}, got {}",
                t2_core::duration::format_duration(max),
                t2_core::duration::format_duration(s.ttl_after_finished)
            ),
        );
    }
    if s.health_port == 0 || s.health_port == s.port {
        return bad(
            "health_port",
            format!(
                "must be 1-65535 and differ from kubernetes.port ({}), got {}",
                s.port, s.health_port
            ),
        );
    }
    if parse_selector(&s.uploader_selector).is_none() {
        return bad(
            "uploader_selector",
            format!(
                "'{}' is not a label selector such as app.kubernetes.io/name=t2-uploader",
                s.uploader_selector.escape_default()
            ),
        );
    }
    if !spec.workers.is_multiple_of(spec.workers_per_pod) {
        return Err(KubeError::setting("workers_per_pod", "must divide workers"));
    }
    // Issue 18 (res18): existing volumes, host paths and every mount path.
    super::claims::check_volumes(s, spec)?;
    // Without ZooKeeper the job master keeps every worker's record in the root ConfigMap.
    if !spec.fault_tolerant {
        let spec_bytes = serde_json::to_string_pretty(spec).map_or(0, |j| j.len());
        super::record::check_fits(spec.workers, spec_bytes)
            .map_err(|m| KubeError::setting("workers", m))?;
    }
    Ok(())
}

/// `key=value,key=value` as pairs; `None` when malformed.
pub fn parse_selector(s: &str) -> Option<Vec<(String, String)>> {
    s.split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let (k, v) = (k.trim(), v.trim());
            (is_label_key(k) && is_label_value(v)).then(|| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// Reads `v` as a `T` and fails when anything in `v` was not understood (a misspelt field).
fn exact<T: DeserializeOwned + Serialize>(v: &Value) -> Result<(), String> {
    let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&t).map_err(|e| e.to_string())?;
    match first_unknown(v, &back, "") {
        None => Ok(()),
        Some(path) => Err(format!("'{path}' is not a field Kubernetes knows here (check its spelling against the pod spec reference)")),
    }
}

/// The first path present in `given` but not in `understood`.
fn first_unknown(given: &Value, understood: &Value, at: &str) -> Option<String> {
    match (given, understood) {
        (Value::Object(g), Value::Object(u)) => g.iter().find_map(|(k, gv)| {
            let p = if at.is_empty() {
                k.clone()
            } else {
                format!("{at}.{k}")
            };
            match u.get(k) {
                None if !gv.is_null() => Some(p),
                None => None,
                Some(uv) => first_unknown(gv, uv, &p),
            }
        }),
        (Value::Array(g), Value::Array(u)) => g
            .iter()
            .zip(u)
            .enumerate()
            .find_map(|(i, (gv, uv))| first_unknown(gv, uv, &format!("{at}[{i}]"))),
        _ => None,
    }
}

pub(crate) fn check_mount(key: &str, path: &str) -> Result<(), KubeError> {
    let p = path.trim_end_matches('/');
    let ok = p.starts_with('/')
        && !p.split('/').any(|c| c == "..")
        && !p.chars().any(|c| c == ':' || c.is_control())
        && !is_reserved(p);
    if ok {
        Ok(())
    } else {
        Err(KubeError::setting(
            format!("kubernetes.{key}"),
            format!(
                "'{}' must be an absolute folder without '..' or ':', and not /, /t2, /etc/t2 or under /t2/package, /t2/work, /t2/run (t2 uses those); e.g. /t2/persistent",
                path.escape_default()
            ),
        ))
    }
}

/// `/`, `/t2` and `/etc/t2` themselves, and anything under t2's own folders.
fn is_reserved(p: &str) -> bool {
    p.is_empty()
        || RESERVED.contains(&p)
        || RESERVED[1..]
            .iter()
            .any(|r| p.strip_prefix(r).is_some_and(|rest| rest.starts_with('/')))
}

fn name_message(n: &str) -> String {
    format!(
        "'{}' is not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most 253)",
        n.escape_default()
    )
}

/// A DNS-1123 subdomain (names of most objects).
pub fn is_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(t2_core::names::is_dns1123_label)
}

/// A label key: `[prefix/]name`.
pub fn is_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    prefix.is_none_or(is_subdomain) && !name.is_empty() && is_label_value(name)
}

/// A label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends (or empty).
pub fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Makes `raw` a valid label value (for the owner label): bad characters become `-`.
pub fn label_value(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let s = s
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    if s.is_empty() {
        "unknown".into()
    } else {
        s
    }
}
