//! A fake Kubernetes API server on loopback for direct delivery: it lists and watches one
//! job's pods and answers `pods/{pod}/exec` over a real WebSocket around a real process
//! (the `t2` binary built by cargo; [`super::exec_session`]). A pod becomes running once a
//! `t2 pod receive` in it succeeded, as its init container would then finish.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};
use t2_kubernetes::manifests::labels::job_selector;
use t2_kubernetes::Kube;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use super::mock::NS;
use super::pods;

/// What the exec session of a pod does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs the command and passes stdin through.
    Run,
    /// Runs the command, and drops the connection as soon as the answer is out, without
    /// waiting for the client to read it (what a hasty server may do).
    RunThenDrop,
    /// Runs the command but closes its stdin after this many bytes.
    TruncateAfter(usize),
    /// Never answers the upgrade request.
    HangBeforeUpgrade,
    /// Completes the upgrade, takes stdin, never answers.
    HangAfterUpgrade,
}

/// The WebSocket subprotocol the server picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `v5.channel.k8s.io`: stdin can be half-closed (Kubernetes 1.30+).
    V5,
    /// `v4.channel.k8s.io`: closing stdin closes the whole session.
    V4,
}

impl Protocol {
    /// Its name in `Sec-WebSocket-Protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V5 => "v5.channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
        }
    }
}

/// One worker pod of the fake cluster.
#[derive(Debug, Clone)]
pub struct FakePod {
    /// Its name.
    pub name: String,
    /// Its package path (`T2_PACKAGE_PATH` of the processes run in it).
    pub dest: PathBuf,
    /// What its exec sessions do.
    pub behaviour: Behaviour,
}

/// One exec request, as the server decoded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCall {
    /// The pod.
    pub pod: String,
    /// The `container` parameter.
    pub container: Option<String>,
    /// The `command` parameters, in order.
    pub command: Vec<String>,
    /// `stdin`, `stdout`, `stderr` were `true`.
    pub streams: (bool, bool, bool),
    /// The offered subprotocols.
    pub protocols: String,
}

/// Shared state of the server and its sessions.
pub struct Shared {
    /// The job.
    pub job: String,
    /// Worker pods by name.
    pub pods: BTreeMap<String, FakePod>,
    /// The subprotocol picked.
    pub protocol: Protocol,
    /// The `t2` binary run for the command's `t2`.
    pub exe: PathBuf,
    /// Exec requests seen, in order.
    pub execs: Mutex<Vec<ExecCall>>,
    /// Requests the server did not expect.
    pub unexpected: Mutex<Vec<String>>,
    /// Exec sessions open now, and the most ever open at once.
    pub active: AtomicUsize,
    /// See `active`.
    pub max_active: AtomicUsize,
    /// With a gate, a session whose process ended sends its status only after taking a
    /// permit (see [`FakeApi::release`]).
    pub gate: Option<Semaphore>,
    watch: Mutex<Watch>,
}

#[derive(Default)]
struct Watch {
    running: BTreeSet<String>,
    rv: u64,
    watchers: Vec<mpsc::UnboundedSender<Bytes>>,
}

impl Shared {
    /// A session started.
    pub fn begin(&self) {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
    }

    /// A session ended.
    pub fn end(&self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }

    /// The pod received its package: it runs now; tell the watchers.
    pub fn mark_running(&self, pod: &str) {
        let mut w = self.watch.lock().unwrap();
        w.running.insert(pod.into());
        w.rv += 1;
        let event = self.event(pod, w.rv);
        w.watchers.retain(|tx| tx.send(event.clone()).is_ok());
    }

    fn pod_json(&self, name: &str, running: bool, rv: u64) -> Value {
        let status = if running {
            pods::running()
        } else {
            pods::init_running()
        };
        pods::pod(&self.job, name, "worker", &rv.to_string(), status)
    }

    fn event(&self, pod: &str, rv: u64) -> Bytes {
        let ev = json!({"type": "MODIFIED", "object": self.pod_json(pod, true, rv)});
        Bytes::from(ev.to_string() + "\n")
    }

    fn jobmaster(&self) -> Value {
        let name = format!("{}-jm-0", self.job);
        pods::pod(&self.job, &name, "jobmaster", "1", pods::running())
    }
}

/// The server; dropping it stops it.
pub struct FakeApi {
    /// Its address.
    pub addr: SocketAddr,
    /// What it saw.
    pub shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeApi {
    /// Serves job `job` with `pods` on a loopback port.
    pub async fn start(job: &str, pods: Vec<FakePod>, protocol: Protocol, gated: bool) -> Self {
        let shared = Arc::new(Shared {
            job: job.into(),
            pods: pods.into_iter().map(|p| (p.name.clone(), p)).collect(),
            protocol,
            exe: PathBuf::from(env!("CARGO_BIN_EXE_t2")),
            execs: Mutex::default(),
            unexpected: Mutex::default(),
            active: AtomicUsize::new(0),
            max_active: AtomicUsize::new(0),
            gate: gated.then(|| Semaphore::new(0)),
            watch: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    /// A client of this server (plain HTTP, namespace [`NS`]).
    pub fn kube(&self) -> Kube {
        let url = format!("http://{}", self.addr);
        let mut config = kube::Config::new(url.parse().unwrap());
        config.default_namespace = NS.into();
        let client = kube::Client::try_from(config).unwrap();
        Kube::new(client, NS, &url)
    }

    /// The exec requests seen so far.
    pub fn execs(&self) -> Vec<ExecCall> {
        self.shared.execs.lock().unwrap().clone()
    }

    /// The requests it did not expect.
    pub fn unexpected(&self) -> Vec<String> {
        self.shared.unexpected.lock().unwrap().clone()
    }

    /// Exec sessions open now.
    pub fn active(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// The most exec sessions ever open at once.
    pub fn max_active(&self) -> usize {
        self.shared.max_active.load(Ordering::SeqCst)
    }

    /// Lets `n` more gated sessions send their status.
    pub fn release(&self, n: usize) {
        if let Some(g) = &self.shared.gate {
            g.add_permits(n);
        }
    }
}

/// `name=value` pairs of a query, decoded (`+` and `%XX`).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                    match u8::from_str_radix(hex, 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn status(code: u16, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "code": code});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn handle(State(st): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = query_pairs(req.uri().query().unwrap_or(""));
    let param = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let pods_path = format!("/api/v1/namespaces/{NS}/pods");
    if path == pods_path && req.method() == http::Method::GET {
        if param("labelSelector") != Some(job_selector(&st.job)) {
            st.unexpected.lock().unwrap().push(req.uri().to_string());
            return status(400, "unexpected label selector");
        }
        return if param("watch").as_deref() == Some("true") {
            watch(&st)
        } else {
            list(&st)
        };
    }
    let exec_pod = path
        .strip_prefix(&format!("{pods_path}/"))
        .and_then(|r| r.strip_suffix("/exec"))
        .map(str::to_string);
    match exec_pod {
        Some(pod) if st.pods.contains_key(&pod) => {
            super::exec_session::accept(st.clone(), pod, &query, req).await
        }
        _ => {
            st.unexpected
                .lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri()));
            status(404, "not found")
        }
    }
}

fn list(st: &Shared) -> Response {
    let w = st.watch.lock().unwrap();
    let mut items: Vec<Value> = st
        .pods
        .keys()
        .map(|name| st.pod_json(name, w.running.contains(name), 1))
        .collect();
    items.push(st.jobmaster());
    let body = super::mock::list("Pod", &w.rv.max(1).to_string(), items);
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// A watch that stays open; it first repeats the pods already running, so that a watch
/// started after a delivery finished does not miss it.
fn watch(st: &Shared) -> Response {
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    {
        let mut w = st.watch.lock().unwrap();
        for pod in &w.running {
            let _ = tx.send(st.event(pod, w.rv));
        }
        w.watchers.push(tx);
    }
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}
