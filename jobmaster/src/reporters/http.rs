//! The reporter's one keep-alive HTTP/1.1 connection to the dashboard (opened again when it
//! breaks), every exchange under a deadline. A kill asked for on the dashboard comes back in
//! the answer on this connection, so the dashboard never needs to reach the job master.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Largest answer read.
const MAX_ANSWER: usize = 64 << 10;

/// A parsed `http://host:port[/prefix]` and the connection to it.
pub(crate) struct Conn {
    authority: String,
    prefix: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection (opened on first use) to the dashboard at `url`.
    pub(crate) fn new(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("dashboard URL '{url}' is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "dashboard URL '{url}' must start with http:// (put a TLS proxy in front for https)"
            ));
        }
        let auth = uri
            .authority()
            .ok_or_else(|| format!("dashboard URL '{url}' has no host"))?;
        if auth.as_str().contains('@') {
            return Err(format!(
                "dashboard URL '{url}' must not hold credentials; use dashboard_token"
            ));
        }
        let authority = match auth.port_u16() {
            Some(_) => auth.as_str().to_string(),
            None => format!("{}:80", auth.host()),
        };
        Ok(Self {
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
            sender: None,
        })
    }

    /// POSTs `body` (JSON) to `path` with the token; returns the status and the answer.
    pub(crate) async fn post(
        &mut self,
        path: &str,
        token: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<(u16, Bytes), String> {
        match tokio::time::timeout(timeout, self.exchange(path, token, body)).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(format!("no answer within {timeout:?}"))
            }
        }
    }

    async fn exchange(
        &mut self,
        path: &str,
        token: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Bytes), String> {
        let ready = match self.sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            let stream = TcpStream::connect(&self.authority)
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", self.authority))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("HTTP handshake with {} failed: {e}", self.authority))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        let sender = self
            .sender
            .as_mut()
            .ok_or_else(|| "no connection".to_string())?;
        let req = Request::post(format!("{}{path}", self.prefix))
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER);
        let bytes = limited
            .collect()
            .await
            .map_err(|e| format!("cannot read the answer: {e}"))?
            .to_bytes();
        Ok((status, bytes))
    }
}
