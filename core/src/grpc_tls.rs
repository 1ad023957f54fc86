//! TLS incoming connections of t2's gRPC servers (feature `grpc-tls`): the job master's and
//! the MPI agents' service. TCP connections whose TLS handshake (with the job's certificate)
//! is done, as tonic's server takes them. Handshakes run side by side in
//! [`crate::tls::accept`]; a client that does not complete one (a plaintext client, or one
//! that does not trust the job's CA) never reaches the gRPC service, so no token it sends
//! is read.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::tls::rustls::ServerConfig;
use crate::tls::tokio_rustls::server::TlsStream;
use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

/// One TLS connection of a worker or client.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    peer: SocketAddr,
}

/// What a handler can learn about a TLS connection: the peer's address.
#[derive(Debug, Clone)]
pub struct TlsConnectInfo {
    /// The peer's address.
    pub peer: SocketAddr,
}

impl tonic::transport::server::Connected for TlsConn {
    type ConnectInfo = TlsConnectInfo;
    fn connect_info(&self) -> TlsConnectInfo {
        TlsConnectInfo { peer: self.peer }
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The TLS connections made to `listener`, for `serve_with_incoming`; `what` names the
/// server in logs.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    what: &'static str,
) -> impl Stream<Item = Result<TlsConn, std::io::Error>> {
    ReceiverStream::new(crate::tls::accept(listener, config, what))
        .map(|(stream, peer)| Ok(TlsConn { stream, peer }))
}
