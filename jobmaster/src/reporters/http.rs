//! The reporter's one keep-alive HTTP/1.1 connection to the dashboard (opened again when it
//! breaks), every exchange under a deadline; over TLS for an `https://` dashboard, trusting
//! only the CA given (`dashboard_ca`), never the system's roots. A kill asked for on the
//! dashboard comes back in the answer on this connection, so the dashboard never needs to
//! reach the job master.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use t2_core::tls::rustls::pki_types::ServerName;
use t2_core::tls::rustls::ClientConfig;
use tokio::net::TcpStream;

/// Largest answer read.
const MAX_ANSWER: usize = 64 << 10;

/// How an `https://` dashboard is reached.
struct Tls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

/// A parsed `http[s]://host:port[/prefix]` and the connection to it.
pub(crate) struct Conn {
    authority: String,
    prefix: String,
    tls: Option<Tls>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection (opened on first use) to the dashboard at `url`; `ca_pem` is what an
    /// `https://` dashboard's certificate must be signed by.
    pub(crate) fn new(url: &str, ca_pem: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("dashboard URL '{url}' is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "dashboard URL '{url}' must start with http:// or https://"
                ))
            }
        };
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
            None => format!("{}:{}", auth.host(), if https { 443 } else { 80 }),
        };
        let tls = if https {
            if ca_pem.trim().is_empty() {
                return Err(format!(
                    "dashboard URL '{url}' is https, but no CA to check its certificate against was given; pass t2 submit --dashboard-ca FILE (the CA that signed the dashboard's --tls-cert)"
                ));
            }
            let config =
                t2_core::tls::client_config(ca_pem, &[t2_core::tls::ALPN_HTTP1], "dashboard_ca")
                    .map_err(|e| e.to_string())?;
            let name = t2_core::tls::server_name(auth.host()).map_err(|e| e.to_string())?;
            Some(Tls { config, name })
        } else {
            None
        };
        Ok(Self {
            authority,
            prefix: uri.path().trim_end_matches('/').to_string(),
            tls,
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

    /// An HTTP/1.1 connection over `io`, driven in the background.
    async fn handshake<T>(&self, io: T) -> Result<SendRequest<Full<Bytes>>, String>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake with {} failed: {e}", self.authority))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
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
            let sender = match &self.tls {
                None => self.handshake(stream).await?,
                Some(tls) => {
                    let server = format!("the dashboard at https://{}", self.authority);
                    let stream = t2_core::tls::connect(
                        stream,
                        tls.config.clone(),
                        tls.name.clone(),
                        &server,
                        "dashboard_ca",
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                    self.handshake(stream).await?
                }
            };
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
