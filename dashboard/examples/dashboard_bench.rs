//! Dashboard benchmark (run by `bench/dashboard/run`): a real dashboard on loopback is filled
//! with 200 jobs × 64 workers of history through its report API, then
//! - ingest: worker reports per second, in reports of 64 workers (what a job master's
//!   reporter sends) and of 1 worker (one request per worker update), 8 connections;
//! - reads: the jobs page, `/api/jobs`, a job's page data (`/api/jobs/{id}`) and
//!   `/api/nodes?all=true`, each fetched 50 times: mean and worst.
//!
//! Prints one JSON object.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Request;
use hyper_util::rt::TokioIo;
use t2_jobmaster::reporters::wire::{
    now_ms, EventReport, JobReport, Report, WorkerReport, REPORT_PATH,
};

const TOKEN: &str = "bench-token";
const JOBS: usize = 200;
const WORKERS: u32 = 64;
const CONNECTIONS: usize = 8;

async fn connect(addr: &str) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

async fn call(
    s: &mut SendRequest<Full<Bytes>>,
    addr: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, usize) {
    s.ready().await.expect("ready");
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = s.send_request(req).await.expect("response");
    let status = resp.status().as_u16();
    let len = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .len();
    (status, len)
}

fn job(i: usize) -> JobReport {
    JobReport {
        job_id: format!("bench-{i:04}-abcdef"),
        name: format!("bench-{i:04}"),
        cluster: "kubernetes".into(),
        namespace: "t2".into(),
        user: "bench".into(),
        spec: [("command".to_string(), "./run.sh".to_string())].into(),
        state: if i.is_multiple_of(10) {
            "RUNNING"
        } else {
            "COMPLETED"
        }
        .into(),
        reason: String::new(),
        num_workers: WORKERS,
        started_ms: 1_700_000_000_000 + i as i64 * 60_000,
        ended_ms: (!i.is_multiple_of(10)).then_some(1_700_000_000_000 + i as i64 * 60_000 + 30_000),
    }
}

fn worker(id: u32, beat: i64) -> WorkerReport {
    WorkerReport {
        worker_id: id,
        host: format!("10.0.{}.{}", id / 16, id % 16),
        port: 9000 + id,
        node: format!("node-{}", id / 8),
        rack: format!("rack-{}", id / 32),
        datacenter: "dc-1".into(),
        state: "STARTED".into(),
        restart_count: 0,
        heartbeat_ms: beat,
        exit_code: None,
    }
}

/// Sends `per_report`-worker reports until `total` worker updates went out; updates/second.
async fn ingest(addr: &str, total: usize, per_report: u32) -> f64 {
    let reports = total / per_report as usize;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let addr = addr.to_string();
        tasks.push(tokio::spawn(async move {
            let mut s = connect(&addr).await;
            let mut r = c;
            while r < reports {
                let j = r % JOBS;
                let first = (r / JOBS) as u32 * per_report % WORKERS;
                let report = Report {
                    job: job(j),
                    workers: (0..per_report)
                        .map(|k| worker((first + k) % WORKERS, now_ms()))
                        .collect(),
                    events: Vec::new(),
                    full: false,
                };
                let body = serde_json::to_vec(&report).expect("json");
                let (status, _) = call(&mut s, &addr, "POST", REPORT_PATH, body).await;
                assert_eq!(status, 200);
                r += CONNECTIONS;
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    (reports * per_report as usize) as f64 / start.elapsed().as_secs_f64()
}

async fn timed(addr: &str, path: &str) -> serde_json::Value {
    let mut s = connect(addr).await;
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..50 {
        let t = Instant::now();
        let (status, len) = call(&mut s, addr, "GET", path, Vec::new()).await;
        times.push(t.elapsed());
        assert_eq!(status, 200, "{path}");
        bytes = len;
    }
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    let worst = times.iter().max().copied().unwrap_or_default();
    serde_json::json!({
        "path": path, "bytes": bytes,
        "mean_ms": mean.as_secs_f64() * 1e3, "max_ms": worst.as_secs_f64() * 1e3,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let config = t2_dashboard::DashboardConfig {
        db: dir.path().join("bench.db"),
        token: TOKEN.into(),
        tls: None,
    };
    tokio::spawn(t2_dashboard::run(listener, config, std::future::pending()));
    tokio::time::sleep(Duration::from_millis(200)).await;

    // History: every job whole, with a few events each.
    let fill = Instant::now();
    let mut s = connect(&addr).await;
    for i in 0..JOBS {
        let report = Report {
            job: job(i),
            workers: (0..WORKERS).map(|w| worker(w, now_ms())).collect(),
            events: (0..10)
                .map(|k| EventReport {
                    epoch: 1,
                    seq: k,
                    at_ms: now_ms(),
                    kind: "JOINED".into(),
                    worker_id: Some(k as u32),
                    message: format!("worker {k} joined"),
                })
                .collect(),
            full: true,
        };
        let (status, _) = call(
            &mut s,
            &addr,
            "POST",
            REPORT_PATH,
            serde_json::to_vec(&report).expect("json"),
        )
        .await;
        assert_eq!(status, 200);
    }
    let fill_s = fill.elapsed().as_secs_f64();

    let batched = ingest(&addr, 64_000, 64).await;
    let single = ingest(&addr, 10_000, 1).await;
    let busiest = format!("/api/jobs/{}", job(JOBS - 1).job_id);
    let reads = vec![
        timed(&addr, "/").await,
        timed(&addr, "/app.js").await,
        timed(&addr, "/api/jobs").await,
        timed(&addr, "/api/jobs?per_page=200").await,
        timed(&addr, &busiest).await,
        timed(&addr, "/api/nodes?all=true").await,
    ];
    let out = serde_json::json!({
        "jobs": JOBS, "workers_per_job": WORKERS,
        "fill_seconds": fill_s,
        "ingest_worker_updates_per_s_64_per_report": batched,
        "ingest_worker_updates_per_s_1_per_report": single,
        "reads": reads,
    });
    println!("{}", serde_json::to_string_pretty(&out).expect("json"));
}
