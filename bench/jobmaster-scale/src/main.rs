//! Load generator of `bench/jobmaster-scale/run`.
//!
//! - `jobmaster-scale t2 --t2 PATH --workers N [--hold SECS]`: starts a real `t2 jobmaster`
//!   process and drives N simulated worker agents against it over N real gRPC streams (one
//!   connection each, token, registration, heartbeats at the job's default interval, as
//!   agents do): join → worker list → 3 barriers → a hold → completion.
//! - `jobmaster-scale zk --zk HOST:PORT --workers N`: the peer, Twister2's ZooKeeper way:
//!   N ZooKeeper sessions, each creates an ephemeral znode and waits until N exist (join),
//!   then the same for 3 barriers.
//!
//! Each prints one JSON object on stdout (the run script turns them into the table).

mod proc;
mod t2;
mod wire;
mod zk;

use std::time::Duration;

use anyhow::{bail, Context};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let workers: u32 = arg(&args, "--workers")
        .context("--workers N is required")?
        .parse()
        .context("--workers must be a number")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = match args.first().map(String::as_str) {
        Some("t2") => {
            let t2 = arg(&args, "--t2").context("--t2 PATH (the t2 binary) is required")?;
            let hold = arg(&args, "--hold").map_or(Ok(60), |h| h.parse())?;
            rt.block_on(t2::run(&t2, workers, Duration::from_secs(hold)))?
        }
        Some("zk") => {
            let addr = arg(&args, "--zk").context("--zk HOST:PORT is required")?;
            rt.block_on(zk::run(&addr, workers))?
        }
        _ => bail!(
            "usage: jobmaster-scale t2|zk --workers N [--t2 PATH --hold SECS | --zk HOST:PORT]"
        ),
    };
    println!("{report}");
    // Thousands of streams and sessions: do not wait for each to close politely.
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

/// Waits until `count()` reaches `n`, up to `deadline`; polls every millisecond.
pub async fn wait_for(
    what: &str,
    n: usize,
    deadline: Duration,
    count: impl Fn() -> usize,
    failed: impl Fn() -> Option<String>,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    loop {
        if let Some(why) = failed() {
            bail!("{what}: {why}");
        }
        let c = count();
        if c >= n {
            return Ok(());
        }
        if start.elapsed() > deadline {
            bail!("{what}: only {c} of {n} within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
