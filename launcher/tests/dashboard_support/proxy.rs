//! A prefix-stripping reverse proxy, like `kubectl proxy` in front of a Service: requests to
//! `PREFIX/rest` go to the dashboard as `/rest`, responses (server-sent events too) stream
//! back, and `Authorization` is dropped on the way, as the API server's service proxy does.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// The path `kubectl proxy` serves the dashboard's Service under.
pub const KUBECTL_PROXY_PREFIX: &str =
    "/api/v1/namespaces/default/services/http:t2-dashboard:/proxy/";

type Body = BoxBody<Bytes, hyper::Error>;

/// The running proxy.
pub struct PrefixProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PrefixProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(text.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

async fn forward(upstream: &str, prefix: &str, mut req: Request<Incoming>) -> Response<Body> {
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let Some(rest) = path.strip_prefix(prefix) else {
        return plain(StatusCode::NOT_FOUND, "not under the proxy prefix");
    };
    let Ok(uri) = format!("/{rest}").parse() else {
        return plain(StatusCode::BAD_REQUEST, "bad path");
    };
    *req.uri_mut() = uri;
    req.headers_mut().remove(hyper::header::AUTHORIZATION);
    let Ok(stream) = TcpStream::connect(upstream).await else {
        return plain(StatusCode::BAD_GATEWAY, "dashboard unreachable");
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return plain(StatusCode::BAD_GATEWAY, "handshake failed");
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    match sender.send_request(req).await {
        Ok(resp) => resp.map(|b| b.boxed()),
        Err(e) => plain(StatusCode::BAD_GATEWAY, &e.to_string()),
    }
}

impl PrefixProxy {
    /// Proxies `127.0.0.1:PORT/PREFIX…` to `upstream` (`host:port`).
    pub async fn start(upstream: &str, prefix: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.to_string();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let upstream = upstream.clone();
                        async move { Ok::<_, Infallible>(forward(&upstream, prefix, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        PrefixProxy { url, task }
    }
}
