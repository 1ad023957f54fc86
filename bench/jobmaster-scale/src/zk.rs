//! The peer: join and barriers the way Twister2's ZooKeeper mode coordinates workers, with
//! ZooKeeper's own barrier recipe. Every simulated worker has its own ZooKeeper session (as
//! every Twister2 worker does), creates an ephemeral znode under the phase's folder and waits
//! until N exist: it watches for the folder's `ready` znode, reads the folder's child count
//! (`exists`, whose stat carries `numChildren`: one number rather than N names) and, seeing N,
//! creates `ready`, which wakes everyone. Join is that over `live/`, then 3 barriers over
//! `b1/`..`b3/`.
//!
//! Sessions time out after [`SESSION_TIMEOUT`] (the server's `maxSessionTimeout` in the run
//! script allows it), and a connection counts as dead only after 2/5 of it without an answer:
//! at 10 000 sessions on two shared cores, a server busy with a barrier's burst can be silent
//! for longer than the 12 s a 30 s session allowed.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::sync::watch;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

use crate::wait_for;

const PHASE_DEADLINE: Duration = Duration::from_secs(300);
const PHASES: [&str; 4] = ["live", "b1", "b2", "b3"];

/// Every session's timeout (t2's job master, for comparison, declares a worker lost after 30 s
/// of silence at 10 000 workers).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Shared {
    sessions: AtomicUsize,
    passed: [AtomicUsize; 4],
    error: Mutex<Option<String>>,
}

/// Runs one N-worker round on the ZooKeeper at `addr`; returns its figures.
pub async fn run(addr: &str, n: u32) -> anyhow::Result<serde_json::Value> {
    let root = format!("/jmscale-{n}-{}", std::process::id());
    let admin = Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .connect(addr)
        .await
        .with_context(|| format!("cannot reach ZooKeeper at {addr}"))?;
    let dir = CreateMode::Persistent.with_acls(Acls::anyone_all());
    for p in PHASES {
        admin.mkdir(&format!("{root}/{p}"), &dir).await?;
    }
    let shared = Arc::new(Shared::default());
    let (done_tx, done_rx) = watch::channel(false);
    let start = Instant::now();
    for id in 0..n {
        let (addr, root, shared, done) = (
            addr.to_string(),
            root.clone(),
            shared.clone(),
            done_rx.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = worker(id, n, &addr, &root, &shared, done).await {
                let mut err = shared.error.lock().unwrap_or_else(|e| e.into_inner());
                err.get_or_insert(format!("worker {id}: {e}"));
            }
        });
    }
    let sh = shared.clone();
    let failed = move || sh.error.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut at = Vec::new();
    for (i, p) in PHASES.iter().enumerate() {
        let counter = &shared.passed[i];
        wait_for(
            p,
            n as usize,
            PHASE_DEADLINE,
            || counter.load(Relaxed),
            &failed,
        )
        .await?;
        at.push(start.elapsed().as_secs_f64());
    }
    let _ = done_tx.send(true);
    Ok(json!({
        "system": "zookeeper",
        "workers": n,
        "join_s": at[0],
        "barrier1_s": at[1] - at[0],
        "barrier2_s": at[2] - at[1],
        "barrier3_s": at[3] - at[2],
        "join_to_barrier3_s": at[3],
    }))
}

async fn connect(addr: &str) -> anyhow::Result<Client> {
    let mut last = String::new();
    for attempt in 0..5u32 {
        match Client::connector()
            .with_session_timeout(SESSION_TIMEOUT)
            .with_connection_timeout(SESSION_TIMEOUT * 2 / 5)
            .connect(addr)
            .await
        {
            Ok(c) => return Ok(c),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
    }
    anyhow::bail!("cannot open a ZooKeeper session: {last}")
}

/// ZooKeeper's barrier recipe: watch `ready`, join, count, and whoever sees N creates `ready`.
/// (The count used to be `getAllChildrenNumber`, which ZooKeeper answers by scanning every
/// znode of the tree: 10 000 scans of 40 000 znodes per phase, an unfair cost for the peer.)
async fn enter(c: &Client, folder: &str, name: &str, n: u32) -> anyhow::Result<()> {
    let ready = format!("{folder}-ready");
    let (stat, watcher) = c.check_and_watch_stat(&ready).await?;
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    c.create(&format!("{folder}/{name}"), b"", &ephemeral)
        .await?;
    if stat.is_some() {
        return Ok(());
    }
    let children = c.check_stat(folder).await?.map_or(0, |s| s.num_children);
    if children >= n as i32 {
        let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
        match c.create(&ready, b"", &persistent).await {
            Ok(_) | Err(ZkError::NodeExists) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    watcher.changed().await;
    Ok(())
}

async fn worker(
    id: u32,
    n: u32,
    addr: &str,
    root: &str,
    shared: &Shared,
    mut done: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let c = connect(addr).await?;
    shared.sessions.fetch_add(1, Relaxed);
    let name = format!("w{id}");
    for (i, p) in PHASES.iter().enumerate() {
        enter(&c, &format!("{root}/{p}"), &name, n).await?;
        shared.passed[i].fetch_add(1, Relaxed);
    }
    // Stay (the session keeps the ephemeral znodes) until the round is measured.
    let _ = done.wait_for(|d| *d).await;
    Ok(())
}
