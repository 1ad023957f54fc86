//! The dashboard for end-to-end tests: the real `t2 dash` on loopback, and a small blocking
//! HTTP/1.1 client with a deadline on every exchange.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::t2;

/// The token the tests' dashboards use.
pub const TOKEN: &str = "test-dashboard-token";

/// A running `t2 dash`.
pub struct Dash {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its database.
    pub db: PathBuf,
}

impl Dash {
    /// Starts `t2 dash --listen LISTEN --db DB --token TOKEN` and waits for its address.
    pub fn start(home: &Path, db: &Path, listen: &str) -> Self {
        Self::start_with(home, db, listen, &[])
    }

    /// [`Dash::start`] with more arguments (`--tls-cert FILE --tls-key FILE`).
    pub fn start_with(home: &Path, db: &Path, listen: &str, more: &[&str]) -> Self {
        let mut cmd = t2(home);
        cmd.args(["dash", "--listen", listen, "--token", TOKEN, "--db"])
            .arg(db)
            .args(more)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn t2 dash");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "t2 dash did not start: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        let url = line
            .strip_prefix("T2_DASHBOARD_ADDR=")
            .unwrap_or_else(|| panic!("unexpected first line of t2 dash: {line}"))
            .to_string();
        Dash {
            child: Some(child),
            url,
            db: db.to_path_buf(),
        }
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILLs it and waits until it is gone.
    pub fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs it and waits (bounded) for it to exit; returns whether it exited cleanly.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let pid = nix::unistd::Pid::from_raw(c.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// `GET PATH` as JSON, asserting 200.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let (status, body) = request("GET", &format!("{}{path}", self.url), &[], b"");
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// The job `id` as the dashboard shows it, without `now_ms`, or `None` while unknown.
    pub fn job(&self, id: &str) -> Option<serde_json::Value> {
        let (status, body) = request("GET", &format!("{}/api/jobs/{id}", self.url), &[], b"");
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200, "GET /api/jobs/{id}: {body}");
        let mut v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        v.as_object_mut().map(|o| o.remove("now_ms"));
        Some(v)
    }

    /// Polls job `id` until `pred` holds; panics with the last answer after `deadline`.
    pub fn wait_job(
        &self,
        id: &str,
        deadline: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let last = self.job(id);
            if let Some(v) = &last {
                if pred(v) {
                    return v.clone();
                }
            }
            assert!(
                start.elapsed() < deadline,
                "the dashboard did not show the awaited state of job {id} within {deadline:?}; last: {last:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dash {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// One `GET` of `url` (`https://127.0.0.1:PORT/...`) over TLS trusting only `ca_pem`, with
/// a deadline; returns the status and body.
pub fn https_get(url: &str, ca_pem: &str) -> (u16, String) {
    use t2_core::tls::rustls::{ClientConnection, StreamOwned};
    let rest = url.strip_prefix("https://").expect("https URL");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let config = t2_core::tls::client_config(ca_pem, &[t2_core::tls::ALPN_HTTP1], "test CA")
        .expect("client config");
    let name = t2_core::tls::server_name(host).expect("server name");
    let conn = ClientConnection::new(config, name).expect("TLS client");
    let tcp = TcpStream::connect(authority).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .expect("send over TLS");
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // A server that closes without close_notify; what came is the whole answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("reading the answer of {url}: {e}"),
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in the answer of {url}: {head}"));
    (status, body.to_string())
}

/// The workers of a job answer whose state is `state`.
pub fn workers_in(job: &serde_json::Value, state: &str) -> usize {
    job["workers"]
        .as_array()
        .map(|w| w.iter().filter(|w| w["state"] == state).count())
        .unwrap_or(0)
}

/// The event kinds of a job answer, with their worker IDs.
pub fn event_kinds(job: &serde_json::Value) -> Vec<(String, Option<u64>)> {
    job["events"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| {
                    (
                        e["kind"].as_str().unwrap_or_default().to_string(),
                        e["worker_id"].as_u64(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One HTTP/1.1 exchange (`Connection: close`) with `url`; returns the status and body.
/// The body is written from another thread, so an early answer (413) is still read.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream = TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    let mut writer = stream.try_clone().expect("clone");
    let body = body.to_vec();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&body);
    });
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let _ = sender.join();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer from {url}: {text:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A loopback port nothing listens on now (for a dashboard started later).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Like [`request`] for a GET, but `None` when nothing answers (for waiting on a server).
pub fn try_request(method: &str, url: &str) -> Option<(u16, String)> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next()?;
    TcpStream::connect(authority).ok()?;
    Some(request(method, url, &[], b""))
}
