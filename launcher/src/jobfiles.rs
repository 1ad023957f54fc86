//! Reading a local job's own files (its merged spec, its token and, for a job with `tls: true`,
//! its certificate files) with one-line errors; the job master and agent roles, the
//! supervisor and the job commands all read them this way.

use t2_core::jobdir::JobDir;
use t2_core::spec::JobSpec;

use crate::error::LauncherError;

/// The job's merged spec (`spec.json`).
pub fn read_spec(dir: &JobDir) -> Result<JobSpec, LauncherError> {
    let text = std::fs::read_to_string(dir.spec_path()).map_err(LauncherError::io(format!(
        "cannot read {}",
        dir.spec_path().display()
    )))?;
    serde_json::from_str(&text).map_err(LauncherError::json(dir.spec_path().display().to_string()))
}

/// The job token (the `token` file, mode 0600), without surrounding whitespace.
pub fn read_token(dir: &JobDir) -> Result<String, LauncherError> {
    std::fs::read_to_string(dir.token_path())
        .map(|t| t.trim().to_string())
        .map_err(LauncherError::io(format!(
            "cannot read {}",
            dir.token_path().display()
        )))
}

/// The job master's TLS configuration of a job with `tls: true` (its `tls.crt` and `tls.key`).
pub fn server_tls(
    dir: &JobDir,
    spec: &JobSpec,
) -> Result<Option<std::sync::Arc<t2_core::tls::rustls::ServerConfig>>, LauncherError> {
    use t2_core::tls::{read_pem, server_config, ALPN_H2, CERT_FILE, KEY_FILE};
    if !spec.tls {
        return Ok(None);
    }
    let tls = |e: t2_core::tls::TlsError| LauncherError::Failed(e.to_string());
    let cert = read_pem(&dir.root().join(CERT_FILE)).map_err(tls)?;
    let key = read_pem(&dir.root().join(KEY_FILE)).map_err(tls)?;
    let what = dir.root().join(CERT_FILE).display().to_string();
    server_config(&cert, &key, &[ALPN_H2], &what)
        .map(Some)
        .map_err(tls)
}

/// How to dial the job's job master: TLS trusting the job's `ca.crt` for a job with
/// `tls: true`, else plaintext.
pub fn dialer(
    dir: &JobDir,
    spec: &JobSpec,
) -> Result<t2_worker::agent::dial::Dialer, LauncherError> {
    use t2_worker::agent::dial::Dialer;
    if !spec.tls {
        return Ok(Dialer::plain());
    }
    let path = dir.root().join(t2_core::tls::CA_FILE);
    let tls = |e: t2_core::tls::TlsError| LauncherError::Failed(e.to_string());
    let ca = t2_core::tls::read_pem(&path).map_err(tls)?;
    Dialer::tls(&ca, &path.display().to_string()).map_err(tls)
}

/// The agent service's TLS of an MPI job with `tls: true`: the job's `ca.crt`, `agent.crt`
/// and `agent.key` (`None` otherwise: only MPI jobs' agents serve commands to one another).
pub fn agent_tls(
    dir: &JobDir,
    spec: &JobSpec,
) -> Result<Option<t2_worker::agent::AgentTls>, LauncherError> {
    if !(spec.tls && spec.mpi.enabled) {
        return Ok(None);
    }
    let path = dir.root().join(t2_core::tls::CA_FILE);
    let tls = |e: t2_core::tls::TlsError| LauncherError::Failed(e.to_string());
    let ca = t2_core::tls::read_pem(&path).map_err(tls)?;
    t2_worker::agent::AgentTls::read(&ca, &path.display().to_string(), dir.root())
        .map(Some)
        .map_err(tls)
}

/// The scheme of the job master's address: `https` with TLS.
pub fn scheme(spec: &JobSpec) -> &'static str {
    if spec.tls {
        "https"
    } else {
        "http"
    }
}
