//! Example job: estimates pi. Each worker integrates 4/(1+x²) over its slice of [0,1]; the
//! partial sums are combined by an allreduce over the workers' own TCP connections (gather to
//! worker 0, which sends the total back), found through the worker list — not through the job
//! master. The exchange is keyed by worker ID and retried, so a worker that is killed and
//! restarted simply sends its (identical) partial sum again. A worker that has COMPLETED is gone
//! and sends nothing more: a worker restarted after worker 0 completed computes the total
//! itself, and a worker 0 restarted after others completed computes their partial sums itself
//! (each is a pure function of the worker ID, so the result is the same to the last bit).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use t2_worker::WorkerContext;

/// How long the allreduce may take before the worker gives up.
const DEADLINE: Duration = Duration::from_secs(120);

fn main() -> Result<()> {
    let ctx = WorkerContext::from_env()?;
    let intervals = ctx.config()["intervals"].as_u64().unwrap_or(50_000_000);
    let delay = Duration::from_millis(ctx.config()["delay_ms"].as_u64().unwrap_or(0));
    let (id, n) = (ctx.worker_id(), ctx.num_workers());
    // Fault events arrive on their own connection; show them as they come.
    if let Ok(events) = ctx.events() {
        std::thread::spawn(move || {
            for ev in events {
                println!("event: {}", serde_json::to_string(&ev).unwrap_or_default());
            }
        });
    }
    let workers = ctx.all_workers()?;
    println!(
        "worker {id}/{n} (restart {}) sees {} workers",
        ctx.restart_count(),
        workers.len()
    );

    let partial = integrate(intervals, id as u64, n as u64);
    std::thread::sleep(delay);
    let total = if id == 0 {
        gather(&ctx, partial)?
    } else {
        contribute(&ctx, partial)?
    };
    let err = (total - std::f64::consts::PI).abs();
    if id == 0 {
        println!("pi ~= {total:.15} (error {err:.2e}) from {n} workers, {intervals} intervals");
    } else {
        println!("worker {id} got the total {total:.15}");
    }
    if err > 1e-6 {
        bail!("pi estimate {total} is off by {err}");
    }
    Ok(())
}

/// Midpoint rule over this worker's share of `intervals`.
fn integrate(intervals: u64, id: u64, n: u64) -> f64 {
    let h = 1.0 / intervals as f64;
    let (lo, hi) = (intervals * id / n, intervals * (id + 1) / n);
    (lo..hi)
        .map(|i| {
            let x = h * (i as f64 + 0.5);
            4.0 / (1.0 + x * x)
        })
        .sum::<f64>()
        * h
}

/// Worker 0: collect every partial sum (latest per worker wins), answer everyone with the total.
fn gather(ctx: &WorkerContext, own: f64) -> Result<f64> {
    let listener = TcpListener::bind((ctx.host(), ctx.port()))
        .with_context(|| format!("worker 0 cannot listen on {}:{}", ctx.host(), ctx.port()))?;
    listener.set_nonblocking(true)?;
    let mut partials = BTreeMap::from([(0u32, own)]);
    let mut peers: BTreeMap<u32, TcpStream> = BTreeMap::new();
    let started = Instant::now();
    let n = ctx.num_workers();
    let intervals = ctx.config()["intervals"].as_u64().unwrap_or(50_000_000);
    let mut checked: Option<Instant> = None;
    while partials.len() < n as usize {
        // Workers that completed while this one was restarting will not send again.
        if checked.is_none_or(|t| t.elapsed() >= Duration::from_millis(250)) {
            checked = Some(Instant::now());
            for w in ctx.joined_workers()? {
                if w.state == "COMPLETED" && !partials.contains_key(&w.id) {
                    partials.insert(w.id, integrate(intervals, w.id as u64, n as u64));
                }
            }
        }
        if started.elapsed() > DEADLINE {
            bail!(
                "allreduce: only {} of {} partial sums arrived within {DEADLINE:?}",
                partials.len(),
                ctx.num_workers()
            );
        }
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                stream.set_read_timeout(Some(Duration::from_secs(10)))?;
                let mut line = String::new();
                BufReader::new(stream.try_clone()?).read_line(&mut line)?;
                let mut parts = line.split_whitespace();
                let (Some(w), Some(v)) = (parts.next(), parts.next()) else {
                    continue;
                };
                let (w, v): (u32, f64) = (w.parse()?, v.parse()?);
                partials.insert(w, v);
                peers.insert(w, stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => return Err(e.into()),
        }
    }
    let total: f64 = partials.values().sum();
    for (_, mut peer) in peers {
        // A peer that died after sending is restarted and asks again; ignore it here.
        let _ = writeln!(peer, "{total:e}");
    }
    Ok(total)
}

/// Other workers: send the partial sum to worker 0 and wait for the total; retry on failure,
/// re-reading worker 0's address (it changes if worker 0 was restarted).
fn contribute(ctx: &WorkerContext, partial: f64) -> Result<f64> {
    let started = Instant::now();
    let mut last_error = String::new();
    while started.elapsed() < DEADLINE {
        let root = ctx.joined_workers()?.into_iter().find(|w| w.id == 0);
        match root {
            // Worker 0 is done and gone (this worker was restarted after it had the total).
            Some(root) if root.state == "COMPLETED" => return Ok(total_alone(ctx)),
            Some(root) => match exchange(&root.host, root.port, ctx.worker_id(), partial) {
                Ok(total) => return Ok(total),
                Err(e) => last_error = e.to_string(),
            },
            None => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("allreduce: no total from worker 0 within {DEADLINE:?}: {last_error}")
}

/// The total as worker 0 computes it: every worker's partial sum, added in worker order.
fn total_alone(ctx: &WorkerContext) -> f64 {
    let intervals = ctx.config()["intervals"].as_u64().unwrap_or(50_000_000);
    let n = ctx.num_workers() as u64;
    (0..n).map(|w| integrate(intervals, w, n)).sum()
}

fn exchange(host: &str, port: u32, id: u32, partial: f64) -> Result<f64> {
    let mut stream = TcpStream::connect((host, port as u16))?;
    stream.set_read_timeout(Some(DEADLINE))?;
    writeln!(stream, "{id} {partial:e}")?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim().parse()?)
}
