//! TLS of t2's own links (feature `tls`): the per-job certificate made at submit, rustls
//! configurations that trust only what they are given (never the system roots), a TLS
//! accept loop for TCP listeners, and one-line descriptions of certificate problems.
//!
//! Each job gets its own CA, made at submit and thrown away once it has signed the job
//! master's certificate, so nothing can sign another certificate the job's workers would
//! trust. Workers get the CA certificate ([`CA_FILE`]); the job master gets its
//! certificate and key ([`CERT_FILE`], [`KEY_FILE`]). The agents of an MPI job, which run
//! commands for one another (`mpirun` through `t2 worker rsh`), get a second certificate and
//! key ([`AGENT_CERT_FILE`], [`AGENT_KEY_FILE`]) for their agent service, named
//! [`AGENT_NAME`] whatever address they listen on, so the job token they present to one
//! another is encrypted too. Locally the files live in the job folder (mode 0600); on
//! Kubernetes they are keys of the job's token Secret.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use rustls;
pub use tokio_rustls;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::secret::{write_private, Existing};

/// The job's CA certificate (PEM): what workers and clients trust.
pub const CA_FILE: &str = "ca.crt";
/// The job master's certificate (PEM), signed by the job's CA.
pub const CERT_FILE: &str = "tls.crt";
/// The job master's private key (PEM, PKCS#8).
pub const KEY_FILE: &str = "tls.key";
/// The agents' certificate (PEM), signed by the job's CA, for [`AGENT_NAME`].
pub const AGENT_CERT_FILE: &str = "agent.crt";
/// The agents' private key (PEM, PKCS#8).
pub const AGENT_KEY_FILE: &str = "agent.key";
/// The name in the agents' certificate, which an agent checks another's against: agents
/// listen on pod or loopback addresses that are not known at submit.
pub const AGENT_NAME: &str = "agents.t2.invalid";

/// ALPN of gRPC (HTTP/2).
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN of HTTP/1.1 (the uploader, the dashboard).
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors making, reading or using certificates; each is one line.
#[derive(Debug, Error)]
pub enum TlsError {
    /// The certificate could not be made.
    #[error("cannot make the job's TLS certificate: {0}")]
    Mint(String),
    /// A certificate, key or name that does not do.
    #[error("{what}: {message}")]
    Bad {
        /// What was read (a file, a Secret key, a flag).
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// I/O on a certificate file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A job's TLS material, PEM-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct JobCerts {
    /// The job's CA certificate (its key is gone).
    pub ca_pem: String,
    /// The job master's certificate.
    pub cert_pem: String,
    /// The job master's private key.
    pub key_pem: String,
    /// The agents' certificate (for [`AGENT_NAME`]).
    pub agent_cert_pem: String,
    /// The agents' private key.
    pub agent_key_pem: String,
}

impl std::fmt::Debug for JobCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCerts")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .field(
                "agent_cert_pem",
                &format_args!("{} bytes", self.agent_cert_pem.len()),
            )
            .field("agent_key_pem", &"<redacted>")
            .finish()
    }
}

/// The names of a local job master: agents dial `127.0.0.1`.
pub fn local_names() -> Vec<String> {
    vec!["127.0.0.1".into(), "localhost".into(), "::1".into()]
}

/// Makes a CA for job `job_id` and, signed by it, the job master's certificate for `names`
/// (DNS names or IP addresses, each as agents dial the job master) and the agents'
/// certificate for [`AGENT_NAME`]. The CA's key is dropped here.
pub fn mint(job_id: &str, names: &[String]) -> Result<JobCerts, TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let bad = |e: rcgen::Error| TlsError::Mint(e.to_string());
    let ca_key = KeyPair::generate().map_err(bad)?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, format!("t2 job {job_id} CA"));
    let ca_cert = ca.self_signed(&ca_key).map_err(bad)?;
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |names: Vec<String>, common: String| -> Result<(String, String), TlsError> {
        let key = KeyPair::generate().map_err(bad)?;
        let mut params = CertificateParams::new(names).map_err(bad)?;
        params.distinguished_name.push(DnType::CommonName, common);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer).map_err(bad)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (cert_pem, key_pem) = leaf(names.to_vec(), format!("t2 job master of {job_id}"))?;
    let (agent_cert_pem, agent_key_pem) = leaf(
        vec![AGENT_NAME.to_string()],
        format!("t2 agents of {job_id}"),
    )?;
    Ok(JobCerts {
        ca_pem: ca_cert.pem(),
        cert_pem,
        key_pem,
        agent_cert_pem,
        agent_key_pem,
    })
}

impl JobCerts {
    /// Writes the five files into `dir`, each mode 0600, never over existing ones.
    pub fn write(&self, dir: &Path) -> Result<(), TlsError> {
        for (name, text) in [
            (CA_FILE, &self.ca_pem),
            (CERT_FILE, &self.cert_pem),
            (KEY_FILE, &self.key_pem),
            (AGENT_CERT_FILE, &self.agent_cert_pem),
            (AGENT_KEY_FILE, &self.agent_key_pem),
        ] {
            let path = dir.join(name);
            write_private(&path, text, Existing::Refuse).map_err(|source| TlsError::Io {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Reads a PEM file.
pub fn read_pem(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// A server configuration presenting `cert_pem` (with any chain after it) and `key_pem`,
/// offering `alpn`. `what` names where they came from in errors.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    alpn: &[&[u8]],
    what: &str,
) -> Result<Arc<ServerConfig>, TlsError> {
    let bad = |message: String| TlsError::Bad {
        what: what.to_string(),
        message,
    };
    let certs = certificates(cert_pem).map_err(bad)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| bad(format!("no private key in PEM form ({e})")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad(format!("the certificate and key do not go together: {e}")))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client configuration trusting only the CA certificates in `ca_pem` (not the system's
/// roots), offering `alpn`. `what` names where they came from in errors.
pub fn client_config(
    ca_pem: &str,
    alpn: &[&[u8]],
    what: &str,
) -> Result<Arc<ClientConfig>, TlsError> {
    let bad = |message: String| TlsError::Bad {
        what: what.to_string(),
        message,
    };
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_pem).map_err(bad)? {
        roots
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate ({e})"))?;
    if certs.is_empty() {
        return Err("no certificate in it (expected -----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

/// The name a client checks the server's certificate against: the host of `host` (a DNS
/// name or an IP address, IPv6 with or without brackets).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| TlsError::Bad {
        what: format!("server name '{host}'"),
        message: e.to_string(),
    })
}

/// Why a TLS connection could not be made, from the client's side.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DialFailure {
    /// The server's certificate is not one this client trusts (final: do not retry).
    #[error("{0}")]
    Certificate(String),
    /// The server does not speak TLS (final: do not retry).
    #[error("{0}")]
    NotTls(String),
    /// The connection failed otherwise (it may work later).
    #[error("{0}")]
    Io(String),
}

impl DialFailure {
    /// True when trying again cannot help.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Io(_))
    }
}

/// Sorts the error of a client handshake with `server` (e.g. `the job master at ADDR`),
/// whose certificate was checked against `trusted` (e.g. `the job's CA`).
pub fn dial_failure(e: &std::io::Error, server: &str, trusted: &str) -> DialFailure {
    use rustls::{CertificateError as C, Error as E};
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) else {
        return DialFailure::Io(format!("TLS connection to {server} failed: {e}"));
    };
    let cert = |why: String| {
        DialFailure::Certificate(format!(
            "{server} presented a certificate that {why}; refusing to talk to it (TLS: {tls})"
        ))
    };
    match tls {
        E::InvalidCertificate(c) => match c {
            C::UnknownIssuer => cert(format!("is not signed by {trusted}")),
            C::BadSignature => cert(format!("has a bad signature for {trusted}")),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                cert("is not valid for the name it was dialled by".into())
            }
            C::Expired | C::ExpiredContext { .. } => cert("has expired".into()),
            C::NotValidYet | C::NotValidYetContext { .. } => cert("is not valid yet".into()),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                cert("is not for a TLS server".into())
            }
            C::BadEncoding => cert("does not parse".into()),
            _ => cert("is not acceptable".into()),
        },
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => DialFailure::NotTls(format!(
            "{server} does not speak TLS (TLS: {tls}); is TLS off on its side?"
        )),
        E::NoApplicationProtocol => DialFailure::NotTls(format!(
            "{server} speaks TLS but not the expected protocol (TLS: {tls})"
        )),
        other => DialFailure::Io(format!("TLS connection to {server} failed: {other}")),
    }
}

/// Dials `stream` (already connected) as a TLS client checking the certificate against
/// `name`; `server` and `trusted` word the error (see [`dial_failure`]).
pub async fn connect(
    stream: TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    server: &str,
    trusted: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, DialFailure> {
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, stream)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(dial_failure(&e, server, trusted)),
        Err(_) => Err(DialFailure::Io(format!(
            "{server} did not finish the TLS handshake within {HANDSHAKE_TIMEOUT:?}"
        ))),
    }
}

/// Connections a TLS listener holds after their handshake until the server takes them.
const ACCEPTED_CAPACITY: usize = 1024;

/// Accepts TCP connections on `listener` and hands each over once its TLS handshake is done
/// (handshakes run side by side, each within [`HANDSHAKE_TIMEOUT`]; a failed one is logged
/// with the peer and dropped, so a plaintext client never reaches the server). `what` names
/// the server in logs. The loop ends when the receiver is dropped.
pub fn accept(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    what: &'static str,
) -> mpsc::Receiver<(tokio_rustls::server::TlsStream<TcpStream>, SocketAddr)> {
    let (tx, rx) = mpsc::channel(ACCEPTED_CAPACITY);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = tx.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(server = what, error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let (tx, acceptor) = (tx.clone(), acceptor.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send((tls, peer)).await;
                    }
                    Ok(Err(e)) => {
                        tracing::info!(server = what, %peer, error = %e, "refused a connection: TLS handshake failed");
                    }
                    Err(_) => {
                        tracing::info!(server = what, %peer, "refused a connection: no TLS handshake within {HANDSHAKE_TIMEOUT:?}");
                    }
                }
            });
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_certificates_load_and_keys_stay_out_of_debug() {
        let certs = mint("pi-abc", &local_names()).unwrap();
        assert!(certs.ca_pem.contains("BEGIN CERTIFICATE"));
        assert!(certs.key_pem.contains("PRIVATE KEY"));
        server_config(&certs.cert_pem, &certs.key_pem, &[ALPN_H2], "test").unwrap();
        server_config(
            &certs.agent_cert_pem,
            &certs.agent_key_pem,
            &[ALPN_H2],
            "agent",
        )
        .unwrap();
        server_name(AGENT_NAME).unwrap();
        client_config(&certs.ca_pem, &[ALPN_H2], "test").unwrap();
        assert!(!format!("{certs:?}").contains("PRIVATE"));
        assert_ne!(
            certs.agent_key_pem, certs.key_pem,
            "agents get a key of their own"
        );
        let other = mint("pi-abc", &local_names()).unwrap();
        assert_ne!(other.ca_pem, certs.ca_pem, "every job gets its own CA");
    }

    #[test]
    fn bad_pem_is_one_clear_line() {
        let e = client_config("hello", &[], "ca.crt")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("ca.crt: no certificate"), "{e}");
        let certs = mint("x", &local_names()).unwrap();
        let e = server_config(&certs.cert_pem, "nope", &[], "tls.key")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no private key"), "{e}");
    }

    #[test]
    fn written_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        mint("x", &local_names())
            .unwrap()
            .write(dir.path())
            .unwrap();
        for f in [
            CA_FILE,
            CERT_FILE,
            KEY_FILE,
            AGENT_CERT_FILE,
            AGENT_KEY_FILE,
        ] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
}
