//! HTTPS for `dashboard`: a listener whose connections have done their TLS handshake (with the
//! certificate of `--tls-cert`/`--tls-key`), for `axum::serve`. Handshakes run side by side
//! (`t2_core::tls::accept`); a client that fails one is logged and never reaches a handler.

use std::net::SocketAddr;
use std::sync::Arc;

use t2_core::tls::rustls::ServerConfig;
use t2_core::tls::tokio_rustls::server::TlsStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Connections of a TLS listener, handshake done.
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: std::io::Result<SocketAddr>,
}

impl TlsListener {
    /// TLS over `listener` with `config`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> Self {
        let local = listener.local_addr();
        Self {
            accepted: t2_core::tls::accept(listener, config, "dashboard"),
            local,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(conn) => conn,
            // The accept loop ends only with this receiver; nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}
