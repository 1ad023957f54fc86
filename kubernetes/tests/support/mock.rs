//! A mock API server in the kube-rs way: `tower_test::mock::pair()` behind a `kube::Client`,
//! and a verifier task that checks each request of a scenario in order — method, path and
//! query exactly, and the body's essentials — answers it, and fails on any request the
//! scenario does not expect.

use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use kube::client::Body;
use serde_json::{json, Value};
use t2_kubernetes::Kube;
use tokio::task::JoinHandle;
use tower_test::mock;

/// The namespace of the mock cluster.
pub const NS: &str = "t2-jobs";

type BodyCheck = Box<dyn Fn(&Value, &http::HeaderMap) + Send>;
type LazyBody = Box<dyn FnOnce() -> Vec<u8> + Send>;

/// One expected request and its answer.
pub struct Step {
    method: String,
    uri: String,
    check: Option<BodyCheck>,
    status: u16,
    response: Vec<u8>,
    lazy: Option<LazyBody>,
    delay: Option<Duration>,
}

impl Step {
    /// Expects `method uri` (path and query, exactly as kube builds it).
    pub fn new(method: &str, uri: impl Into<String>) -> Self {
        Self {
            method: method.into(),
            uri: uri.into(),
            check: None,
            status: 200,
            response: b"{}".to_vec(),
            lazy: None,
            delay: None,
        }
    }

    /// Checks the request body (as JSON; `null` when empty or not JSON) and headers.
    pub fn check(mut self, f: impl Fn(&Value, &http::HeaderMap) + Send + 'static) -> Self {
        self.check = Some(Box::new(f));
        self
    }

    /// Answers with `status` and JSON `body`.
    pub fn json(mut self, status: u16, body: Value) -> Self {
        self.status = status;
        self.response = serde_json::to_vec(&body).unwrap();
        self
    }

    /// Answers with `status` and raw `body` (e.g. watch events, one JSON per line).
    pub fn raw(mut self, status: u16, body: impl Into<Vec<u8>>) -> Self {
        self.status = status;
        self.response = body.into();
        self
    }

    /// Answers with `status` and the body `f` makes when the request arrives (from what
    /// earlier steps' checks saw, e.g. a random ID the client chose).
    pub fn later(mut self, status: u16, f: impl FnOnce() -> Vec<u8> + Send + 'static) -> Self {
        self.status = status;
        self.lazy = Some(Box::new(f));
        self
    }

    /// Sends the body only after `d` (a watch that stays open; use with paused time).
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = Some(d);
        self
    }

    /// Answers with a Kubernetes `Status` failure.
    pub fn status(self, code: u16, reason: &str, message: &str) -> Self {
        self.json(
            code,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": message, "reason": reason, "code": code}),
        )
    }
}

/// The mock's response bodies: whole, or sent later.
pub type Reply = UnsyncBoxBody<Bytes, std::io::Error>;

/// What a scenario saw.
pub type Seen = Vec<(String, String)>;

/// A client of the mock cluster, and the verifier running `steps`.
pub fn mock_cluster(steps: Vec<Step>) -> (Kube, JoinHandle<Seen>) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Reply>>();
    let verifier = tokio::spawn(async move {
        let mut handle = pin!(handle);
        let mut seen = Vec::new();
        let total = steps.len();
        for (i, step) in steps.into_iter().enumerate() {
            let Some((req, send)) = handle.next_request().await else {
                panic!(
                    "step {}/{total}: the client stopped before '{} {}' (saw: {seen:#?})",
                    i + 1,
                    step.method,
                    step.uri
                );
            };
            let (method, uri) = (req.method().to_string(), req.uri().to_string());
            assert_eq!(
                (method.as_str(), uri.as_str()),
                (step.method.as_str(), step.uri.as_str()),
                "step {}/{total}: unexpected request (saw before: {seen:#?})",
                i + 1
            );
            let headers = req.headers().clone();
            let bytes = BodyExt::collect(req.into_body()).await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            if let Some(check) = &step.check {
                if body.is_null() && !bytes.is_empty() {
                    check(&json!({ "raw": String::from_utf8_lossy(&bytes) }), &headers);
                } else {
                    check(&body, &headers);
                }
            }
            seen.push((method, uri));
            let response = match step.lazy {
                Some(f) => f(),
                None => step.response,
            };
            let body = match step.delay {
                None => Full::new(Bytes::from(response))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
                Some(d) => {
                    let data = Bytes::from(response);
                    let later = futures::stream::once(async move {
                        tokio::time::sleep(d).await;
                        Ok::<_, std::io::Error>(Frame::data(data))
                    });
                    StreamBody::new(later).boxed_unsync()
                }
            };
            send.send_response(Response::builder().status(step.status).body(body).unwrap());
        }
        if let Some((req, _)) = handle.next_request().await {
            panic!(
                "unexpected request after the scenario: {} {} (saw: {seen:#?})",
                req.method(),
                req.uri()
            );
        }
        seen
    });
    let client = kube::Client::new(service, NS);
    (Kube::new(client, NS, "https://mock.api:6443"), verifier)
}

/// Runs `f` against a mock cluster with `steps`, with a deadline; returns `f`'s result after
/// checking that every step was seen and nothing more.
pub async fn run<T, F, Fut>(steps: Vec<Step>, f: F) -> T
where
    F: FnOnce(Kube) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let (kube, verifier) = mock_cluster(steps);
    let out = tokio::time::timeout(Duration::from_secs(20), f(kube))
        .await
        .expect("the operation did not finish within 20s");
    tokio::time::timeout(Duration::from_secs(20), verifier)
        .await
        .expect("the verifier did not finish (a client is still alive?)")
        .expect("scenario failed");
    out
}

/// A watch answer: one event per line.
pub fn events(items: &[(&str, Value)]) -> String {
    items
        .iter()
        .map(|(t, o)| json!({"type": t, "object": o}).to_string() + "\n")
        .collect()
}

/// A list answer of `kind` with resourceVersion `rv`.
pub fn list(kind: &str, rv: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": if kind.starts_with("StatefulSet") { "apps/v1" } else { "v1" },
           "kind": format!("{kind}List"), "metadata": {"resourceVersion": rv}, "items": items})
}

/// Echoes a created object back with a uid and resourceVersion.
pub fn created(obj: &Value, uid: &str) -> Value {
    let mut o = obj.clone();
    o["metadata"]["uid"] = json!(uid);
    o["metadata"]["resourceVersion"] = json!("1");
    o
}
