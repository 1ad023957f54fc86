//! A small HTTP/1.1 client for the package uploader: one connection per request, plain HTTP
//! or HTTPS trusting only given CA certificates ([`HttpTls`], never the system's roots), and
//! every step (connect, TLS handshake, response head, each body chunk) under a deadline.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;

/// A request body: anything that yields bytes or an I/O error.
pub type Body = BoxBody<Bytes, io::Error>;

/// An empty request body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Why an HTTP exchange failed; displays as one line naming the URL and the cause.
#[derive(Debug, Error)]
#[error("{url}: {cause}")]
pub struct HttpError {
    /// The URL.
    pub url: String,
    /// What went wrong, for people.
    pub cause: String,
}

/// The CA certificates an HTTPS client trusts (an uploader started with `--tls-cert`).
#[derive(Clone)]
pub struct HttpTls {
    config: std::sync::Arc<t2_core::tls::rustls::ClientConfig>,
    origin: String,
}

impl std::fmt::Debug for HttpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HttpTls(trusting {})", self.origin)
    }
}

impl HttpTls {
    /// Trusts the CA certificate(s) in the PEM file `path` only.
    pub fn from_ca_file(path: &std::path::Path) -> Result<Self, String> {
        let pem = t2_core::tls::read_pem(path).map_err(|e| e.to_string())?;
        Self::from_ca_pem(&pem, &path.display().to_string())
    }

    /// Trusts the CA certificate(s) in `pem` only; `origin` names them in errors.
    pub fn from_ca_pem(pem: &str, origin: &str) -> Result<Self, String> {
        let config = t2_core::tls::client_config(pem, &[t2_core::tls::ALPN_HTTP1], origin)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            config,
            origin: origin.to_string(),
        })
    }
}

/// A checked `http[s]://host:port[/prefix]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    scheme: &'static str,
    authority: String,
    prefix: String,
}

impl BaseUrl {
    /// Parses `text`, an `http://` or `https://` URL.
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: Uri = text
            .parse()
            .map_err(|e| format!("'{text}' is not a URL: {e}"))?;
        let (scheme, default_port) = match uri.scheme_str() {
            Some("http") => ("http", 80),
            Some("https") => ("https", 443),
            _ => return Err(format!("'{text}' is not an http:// or https:// URL")),
        };
        let Some(auth) = uri.authority() else {
            return Err(format!("'{text}' has no host"));
        };
        if auth.as_str().contains('@') {
            return Err(format!(
                "'{text}': credentials in the URL are not supported; pass a token instead"
            ));
        }
        let authority = match auth.port_u16() {
            Some(_) => auth.as_str().to_string(),
            None => format!("{}:{default_port}", auth.host()),
        };
        if uri.query().is_some() {
            return Err(format!("'{text}' must not have a query"));
        }
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Self {
            scheme,
            authority,
            prefix,
        })
    }

    /// The full URL of `path` (which starts with `/`) below this base.
    pub fn join(&self, path: &str) -> String {
        format!(
            "{}://{}{}{}",
            self.scheme, self.authority, self.prefix, path
        )
    }

    /// True for an `https://` URL.
    pub fn is_https(&self) -> bool {
        self.scheme == "https"
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }
}

/// Sends `req` to `url` (which must be absolute `http://`), waiting at most `timeout` for the
/// connection and the response head. The body is left to the caller (see [`next_chunk`]).
pub async fn send(
    url: &str,
    req: Request<Body>,
    timeout: Duration,
) -> Result<Response<Incoming>, HttpError> {
    send_with(None, url, req, timeout).await
}

/// What a connection is: plain TCP or TLS over it.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Io for T {}

/// [`send`] to an `http://` or (trusting `tls`) an `https://` URL.
pub async fn send_with(
    tls: Option<&HttpTls>,
    url: &str,
    mut req: Request<Body>,
    timeout: Duration,
) -> Result<Response<Incoming>, HttpError> {
    let fail = |cause: String| HttpError {
        url: url.to_string(),
        cause,
    };
    let uri: Uri = url.parse().map_err(|e| fail(format!("not a URL: {e}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| fail("the URL has no host".into()))?
        .clone();
    let https = uri.scheme_str() == Some("https");
    let tls = match (https, tls) {
        (false, _) => None,
        (true, Some(t)) => Some(t),
        (true, None) => {
            return Err(fail(
                "an https:// URL needs the CA certificate that signed the server's (e.g. --uploader-ca FILE)".into(),
            ))
        }
    };
    let addr = match authority.port_u16() {
        Some(_) => authority.as_str().to_string(),
        None if https => format!("{}:443", authority.host()),
        None => format!("{}:80", authority.host()),
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    *req.uri_mut() = path.parse().map_err(|e| fail(format!("bad path: {e}")))?;
    req.headers_mut().insert(
        hyper::header::HOST,
        authority
            .as_str()
            .parse()
            .map_err(|e| fail(format!("bad host: {e}")))?,
    );
    let exchange = async {
        let stream = TcpStream::connect(&addr)
            .await
            .map_err(|e| fail(format!("cannot connect: {}", io_cause(&e))))?;
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn Io> = match tls {
            None => Box::new(stream),
            Some(t) => {
                let name =
                    t2_core::tls::server_name(authority.host()).map_err(|e| fail(e.to_string()))?;
                let server = "the server".to_string();
                let trusted = format!("the CA of {}", t.origin);
                Box::new(
                    t2_core::tls::connect(stream, t.config.clone(), name, &server, &trusted)
                        .await
                        .map_err(|e| fail(e.to_string()))?,
                )
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(format!("HTTP handshake failed: {e}")))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender
            .send_request(req)
            .await
            .map_err(|e| fail(hyper_cause(&e)))
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(r) => r,
        Err(_) => Err(fail(format!("no response within {timeout:?}"))),
    }
}

/// The next chunk of a response body: `Ok(None)` at its end; an error when the connection
/// breaks or nothing arrives for `idle`.
pub async fn next_chunk(body: &mut Incoming, idle: Duration) -> Result<Option<Bytes>, String> {
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(format!("no data for {idle:?}")),
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(hyper_cause(&e)),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// The whole (small) body as one trimmed line, for error messages; empty when unreadable.
pub async fn body_line(body: &mut Incoming) -> String {
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = next_chunk(body, Duration::from_secs(2)).await {
        text.extend_from_slice(&chunk);
        if text.len() > 4096 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    line.trim()
        .trim_start_matches("error: ")
        .chars()
        .take(300)
        .collect()
}

/// A readable cause for a hyper error, including its source (e.g. `connection reset`).
pub fn hyper_cause(e: &hyper::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn io_cause(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            "connection refused (is the uploader running?)".to_string()
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let b = BaseUrl::parse("http://127.0.0.1:8080/").expect("ok");
        assert_eq!(b.join("/packages/x"), "http://127.0.0.1:8080/packages/x");
        let b = BaseUrl::parse("http://up.example/t2").expect("ok");
        assert_eq!(b.authority(), "up.example:80");
        assert_eq!(b.join("/healthz"), "http://up.example:80/t2/healthz");
        let b = BaseUrl::parse("https://x").expect("https parses");
        assert_eq!(b.join("/p"), "https://x:443/p");
        assert!(b.is_https());
        assert!(BaseUrl::parse("ftp://x").is_err());
        assert!(BaseUrl::parse("http://u:p@x").is_err());
        assert!(BaseUrl::parse("not a url").is_err());
    }
}
