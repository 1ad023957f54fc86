//! The pod's environment, read with one clear line per missing or bad variable.

use std::path::PathBuf;
use std::time::Duration;

use t2_core::spec::JobSpec;

use crate::manifests::pod::{JOB_CONFIG_DIR, PACKAGE_PATH};
use crate::manifests::root::keys;

/// Overrides where the package is (`/t2/package/package.tar.gz`); for tests.
pub const PACKAGE_PATH_OVERRIDE: &str = "T2_PACKAGE_PATH";
/// Overrides where the job spec is (`/etc/t2/job/spec.json`); for tests.
pub const SPEC_PATH_OVERRIDE: &str = "T2_JOB_SPEC";
/// Overrides the pod's work area (`/t2`); for tests.
pub const WORK_AREA_OVERRIDE: &str = "T2_WORK_AREA";

/// A required variable.
pub fn required(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            format!(
                "{name} is not set; this command runs inside a t2 job's pod (its pod spec sets it)"
            )
        })
}

/// A required whole number.
pub fn number<T: std::str::FromStr>(name: &str) -> Result<T, String> {
    let v = required(name)?;
    v.parse()
        .map_err(|_| format!("{name}={v} is not a whole number"))
}

/// A duration (`10m`), or `default` when unset.
pub fn duration(name: &str, default: Duration) -> Result<Duration, String> {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => t2_core::duration::parse_duration(&v).map_err(|e| format!("{name}: {e}")),
    }
}

/// Where the package goes.
pub fn package_path() -> PathBuf {
    std::env::var_os(PACKAGE_PATH_OVERRIDE)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(PACKAGE_PATH))
}

/// The pod's work area.
pub fn work_area() -> PathBuf {
    std::env::var_os(WORK_AREA_OVERRIDE)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(crate::manifests::pod::T2_DIR))
}

/// The job spec the root ConfigMap provides.
pub fn job_spec() -> Result<JobSpec, String> {
    let path = std::env::var_os(SPEC_PATH_OVERRIDE)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(JOB_CONFIG_DIR).join(keys::SPEC));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the job spec {}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("the job spec {} does not parse: {e}", path.display()))
}

/// How a container of the job dials its job master: with `tls`, TLS trusting only the job's
/// CA (`T2_JOB_CA`, from the job's Secret) and checking the certificate against the job
/// master Service's name (`<id>-jm.<namespace>.svc`), whatever address that resolves to.
pub fn jobmaster_dialer(tls: bool) -> Result<t2_worker::agent::dial::Dialer, String> {
    use crate::manifests::pod::env as names;
    if !tls {
        return Ok(t2_worker::agent::dial::Dialer::plain());
    }
    let ca = required(names::JOB_CA)?;
    let name =
        crate::manifests::jobmaster_dns(&required(names::JOB_ID)?, &required(names::NAMESPACE)?);
    t2_worker::agent::dial::Dialer::tls(&ca, &format!("${} from the job's Secret", names::JOB_CA))
        .map(|d| d.with_server_name(&name))
        .map_err(|e| e.to_string())
}

/// The agent service's TLS in an MPI job with `tls: true`: the job's CA (`T2_JOB_CA`) and
/// the agents' certificate and key, mounted from the job's Secret at `T2_TLS_DIR` (default
/// `/etc/t2/tls`) in worker pods of MPI jobs only.
pub fn agent_tls(spec: &JobSpec) -> Result<Option<t2_worker::agent::AgentTls>, String> {
    use crate::manifests::pod::{env as names, TLS_DIR};
    if !(spec.tls && spec.mpi.enabled) {
        return Ok(None);
    }
    let ca = required(names::JOB_CA)?;
    let dir = PathBuf::from(std::env::var(names::TLS_DIR).unwrap_or_else(|_| TLS_DIR.into()));
    let origin = format!("${} from the job's Secret", names::JOB_CA);
    t2_worker::agent::AgentTls::read(&ca, &origin, &dir)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The in-pod job master's TLS: its certificate and key (and the CA, to call itself) from
/// `T2_TLS_DIR` (the token Secret's mount, `/etc/t2/tls`).
pub struct JobMasterTls {
    /// The server configuration.
    pub server: std::sync::Arc<t2_core::tls::rustls::ServerConfig>,
    /// A dialer trusting the job's CA, for the job master's calls to itself on loopback.
    pub loopback: t2_worker::agent::dial::Dialer,
}

/// Reads [`JobMasterTls`]; its loopback dialer checks the certificate against `name` (the
/// job master Service's, which the certificate holds whatever address the pod listens on).
pub fn jobmaster_tls(name: &str) -> Result<JobMasterTls, String> {
    use crate::manifests::pod::{env as names, TLS_DIR};
    use t2_core::tls::{read_pem, server_config, ALPN_H2, CA_FILE, CERT_FILE, KEY_FILE};
    let dir = PathBuf::from(std::env::var(names::TLS_DIR).unwrap_or_else(|_| TLS_DIR.into()));
    let read = |f: &str| read_pem(&dir.join(f)).map_err(|e| e.to_string());
    let (cert, key, ca) = (read(CERT_FILE)?, read(KEY_FILE)?, read(CA_FILE)?);
    let shown = dir.join(CERT_FILE).display().to_string();
    let server = server_config(&cert, &key, &[ALPN_H2], &shown).map_err(|e| e.to_string())?;
    let loopback =
        t2_worker::agent::dial::Dialer::tls(&ca, &dir.join(CA_FILE).display().to_string())
            .map_err(|e| e.to_string())?
            .with_server_name(name);
    Ok(JobMasterTls { server, loopback })
}

/// The ordinal of StatefulSet pod `pod` (`<name>-<ordinal>`).
pub fn ordinal(pod: &str) -> Result<u32, String> {
    pod.rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .ok_or_else(|| format!("pod name '{pod}' does not end in -<ordinal>; worker pods belong to the job's StatefulSet"))
}

/// Worker ID of container `index` of pod `ordinal` with `per_pod` workers per pod.
pub fn worker_id(ordinal: u32, per_pod: u32, index: u32) -> Result<u32, String> {
    if index >= per_pod {
        return Err(format!(
            "container index {index} is not below workers per pod {per_pod}"
        ));
    }
    ordinal
        .checked_mul(per_pod)
        .and_then(|b| b.checked_add(index))
        .ok_or_else(|| format!("worker ID of pod {ordinal}, container {index} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_ids_from_ordinals_and_containers() {
        assert_eq!(ordinal("wordcount-zz99yy88-17"), Ok(17));
        assert!(ordinal("nope").is_err());
        assert_eq!(worker_id(0, 1, 0), Ok(0));
        assert_eq!(worker_id(3, 2, 1), Ok(7));
        assert!(worker_id(1, 2, 2).is_err());
        assert!(worker_id(u32::MAX, 2, 0).is_err());
    }
}
