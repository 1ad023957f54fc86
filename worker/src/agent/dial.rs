//! Opening a gRPC channel to a job master (or to another agent of an MPI job): plaintext, or
//! TLS trusting only the job's CA (`t2_core::tls`), never the system's roots. The agent's
//! link, `t2`'s own status, kill and scale calls, the in-pod clients and the MPI relay all
//! dial through a [`Dialer`].
//!
//! With TLS the first connection is made here, before tonic gets it, so a certificate
//! problem is one final error naming it ([`DialError::Final`]) instead of a retried
//! "transport error"; later connections of the same channel (tonic reconnects) are dialled
//! the same way.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use t2_core::tls::rustls::pki_types::ServerName;
use t2_core::tls::rustls::ClientConfig;
use t2_core::tls::tokio_rustls::client::TlsStream;
use t2_core::tls::{DialFailure, ALPN_H2};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Why a channel could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    /// Trying again cannot help (the job master's certificate is not trusted, it does not
    /// speak TLS, the address is bad).
    #[error("{0}")]
    Final(String),
    /// Not reachable now; it may be later.
    #[error("{0}")]
    NotYet(String),
}

impl DialError {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Self::Final(m) | Self::NotYet(m) => m,
        }
    }
}

struct ClientTls {
    config: Arc<ClientConfig>,
    /// The name the certificate is checked against; the address's host when `None`.
    name: Option<String>,
    /// Words for what the certificate is checked against, in errors.
    trusted: String,
    /// What is dialled, in errors: `the job master`, `the agent`.
    server: &'static str,
}

/// How to dial job masters: plaintext (the default) or TLS.
#[derive(Clone, Default)]
pub struct Dialer {
    tls: Option<Arc<ClientTls>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tls {
            None => f.write_str("Dialer(plaintext)"),
            Some(t) => write!(f, "Dialer(TLS trusting {}, name {:?})", t.trusted, t.name),
        }
    }
}

impl Dialer {
    /// Plaintext gRPC.
    pub fn plain() -> Self {
        Self::default()
    }

    /// TLS trusting only the CA certificate(s) in `ca_pem`; `origin` says where they came
    /// from (a file, a Secret key) in errors.
    pub fn tls(ca_pem: &str, origin: &str) -> Result<Self, t2_core::tls::TlsError> {
        let config = t2_core::tls::client_config(ca_pem, &[ALPN_H2], origin)?;
        Ok(Self {
            tls: Some(Arc::new(ClientTls {
                config,
                name: None,
                trusted: format!("the job's CA ({origin})"),
                server: "the job master",
            })),
        })
    }

    /// TLS to other agents of the job (MPI's relay): trusting only the job's CA in `ca_pem`
    /// and checking the agents' certificate ([`t2_core::tls::AGENT_NAME`]), whatever
    /// address the agent listens on.
    pub fn agents(ca_pem: &str, origin: &str) -> Result<Self, t2_core::tls::TlsError> {
        let config = t2_core::tls::client_config(ca_pem, &[ALPN_H2], origin)?;
        Ok(Self {
            tls: Some(Arc::new(ClientTls {
                config,
                name: Some(t2_core::tls::AGENT_NAME.into()),
                trusted: format!("the job's CA ({origin})"),
                server: "the agent",
            })),
        })
    }

    /// Checks the job master's certificate against `name` instead of the host dialled (on
    /// Kubernetes: the job master Service's DNS name, whatever address it resolves to).
    pub fn with_server_name(self, name: &str) -> Self {
        match self.tls {
            None => self,
            Some(t) => Self {
                tls: Some(Arc::new(ClientTls {
                    config: t.config.clone(),
                    name: Some(name.to_string()),
                    trusted: t.trusted.clone(),
                    server: t.server,
                })),
            },
        }
    }

    /// True with TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A channel to `endpoint` (its connect timeout and settings apply).
    pub async fn channel(&self, endpoint: Endpoint) -> Result<Channel, DialError> {
        let Some(tls) = self.tls.clone() else {
            return endpoint
                .connect()
                .await
                .map_err(|e| DialError::NotYet(error_chain(&e)));
        };
        let uri = endpoint.uri().clone();
        let target = Target::of(&uri, &tls)?;
        let first = target
            .dial(&tls, endpoint.uri().to_string())
            .await
            .map_err(|f| match f {
                f if f.is_final() => DialError::Final(f.to_string()),
                f => DialError::NotYet(f.to_string()),
            })?;
        let connector = Connector {
            first: Arc::new(Mutex::new(Some(first))),
            target: Arc::new(target),
            tls,
        };
        endpoint
            .connect_with_connector(connector)
            .await
            .map_err(|e| DialError::NotYet(error_chain(&e)))
    }
}

/// Where a channel dials.
struct Target {
    authority: String,
    name: ServerName<'static>,
}

impl Target {
    fn of(uri: &Uri, tls: &ClientTls) -> Result<Self, DialError> {
        let host = uri.host().ok_or_else(|| {
            DialError::Final(format!("address {uri} of {} has no host", tls.server))
        })?;
        let port = uri.port_u16().unwrap_or(443);
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let name = t2_core::tls::server_name(tls.name.as_deref().unwrap_or(host))
            .map_err(|e| DialError::Final(e.to_string()))?;
        Ok(Self { authority, name })
    }

    async fn dial(
        &self,
        tls: &ClientTls,
        shown: String,
    ) -> Result<TokioIo<TlsStream<TcpStream>>, DialFailure> {
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| DialFailure::Io(format!("cannot connect to {}: {e}", self.authority)))?;
        let _ = tcp.set_nodelay(true);
        let server = format!("{} at {shown}", tls.server);
        let stream = t2_core::tls::connect(
            tcp,
            tls.config.clone(),
            self.name.clone(),
            &server,
            &tls.trusted,
        )
        .await?;
        Ok(TokioIo::new(stream))
    }
}

/// tonic's connector for a TLS channel: the first connection is the one already made.
#[derive(Clone)]
struct Connector {
    first: Arc<Mutex<Option<TokioIo<TlsStream<TcpStream>>>>>,
    target: Arc<Target>,
    tls: Arc<ClientTls>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let first = self.first.lock().ok().and_then(|mut f| f.take());
        let (target, tls) = (self.target.clone(), self.tls.clone());
        Box::pin(async move {
            match first {
                Some(io) => Ok(io),
                None => target
                    .dial(&tls, uri.to_string())
                    .await
                    .map_err(|f| -> BoxError { Box::new(f) }),
            }
        })
    }
}

/// An error and its causes on one line (tonic's own Display says only "transport error").
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
