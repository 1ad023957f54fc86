//! A small HTTP/1.1 client for the package uploader: one connection per request, plain HTTP,
//! and every step (connect, response head, each body chunk) under a deadline.

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

/// A checked `http://host:port[/prefix]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    authority: String,
    prefix: String,
}

impl BaseUrl {
    /// Parses `text`; only plain `http://` is supported.
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: Uri = text
            .parse()
            .map_err(|e| format!("'{text}' is not a URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "'{text}': https is not supported; the uploader speaks plain HTTP (put a TLS proxy in front of it)"
                ))
            }
            _ => return Err(format!("'{text}' is not an http:// URL")),
        }
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
            None => format!("{}:80", auth.host()),
        };
        if uri.query().is_some() {
            return Err(format!("'{text}' must not have a query"));
        }
        let prefix = uri.path().trim_end_matches('/').to_string();
        Ok(Self { authority, prefix })
    }

    /// The full URL of `path` (which starts with `/`) below this base.
    pub fn join(&self, path: &str) -> String {
        format!("http://{}{}{}", self.authority, self.prefix, path)
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
    let addr = match authority.port_u16() {
        Some(_) => authority.as_str().to_string(),
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
        assert!(BaseUrl::parse("https://x").unwrap_err().contains("https"));
        assert!(BaseUrl::parse("ftp://x").is_err());
        assert!(BaseUrl::parse("http://u:p@x").is_err());
        assert!(BaseUrl::parse("not a url").is_err());
    }
}
