//! The t2 side: a real `t2 jobmaster` process and N simulated worker agents, each with its own
//! connection and gRPC stream, speaking exactly the agents' protocol.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use t2_core::jobdir::JobDir;
use t2_proto::{
    master_to_worker::Body as M, table, worker_to_master::Body as W, BarrierParams, BarrierResult,
    BarrierType, Heartbeat, JobState, RegisterParams, StateChangeParams, WorkerInfo, WorkerState,
    WorkerToMaster, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, watch};

use crate::wire::{self, Received};
use crate::{proc, wait_for};

const TOKEN: &str = "bench-token";
/// Long enough for 10 000 streams on a loaded 2-core machine; a bound, not an expectation.
const PHASE_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Default)]
struct Shared {
    registered: AtomicUsize,
    listed: AtomicUsize,
    barriers: [AtomicUsize; 3],
    ended: AtomicUsize,
    failed_events: AtomicUsize,
    error: Mutex<Option<String>>,
    /// The worker list every stream must receive, byte for byte: the table of the workers
    /// as they register, in ID order, encoded as t2 encodes it and checked in full when the
    /// round starts (decoding 10 000 lists of 10 000 in one process would measure this load
    /// generator, not the job master).
    expected_list: bytes::Bytes,
    /// The heartbeat interval the job master gave in its first `Registered` answer, in
    /// milliseconds (0 until then), as agents take it from theirs.
    interval_ms: AtomicU64,
    /// Registered workers' outgoing queues, in [`PHASES`] groups by worker ID.
    beaters: Mutex<Vec<Vec<mpsc::Sender<WorkerToMaster>>>>,
}

/// Heartbeat groups: every interval each worker sends one heartbeat, group by group spread
/// over the interval (agents are not in step), from one timer for all rather than 10 000.
const PHASES: usize = 10;

impl Shared {
    fn fail(&self, why: String) {
        let mut e = self.error.lock().unwrap_or_else(|e| e.into_inner());
        e.get_or_insert(why);
    }
    fn failed(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Every worker's port: one container port for all, as on Kubernetes.
fn port_of(_id: u32) -> u32 {
    20_000
}

/// Worker `id`'s pod address, as a large Kubernetes job registers it: an address of its own,
/// 16 pods a node, each node with a /24 of pod addresses.
fn host_of(id: u32) -> String {
    let node = id / 16;
    format!("10.{}.{}.{}", 64 + node / 256, node % 256, 2 + id % 16)
}

/// Worker `id`'s node address (`status.hostIP`).
fn node_of(id: u32) -> String {
    let node = id / 16;
    format!("192.168.{}.{}", node / 256, node % 256)
}

/// What simulated worker `id` registers (and so its entry in the worker list).
fn info_of(id: u32) -> WorkerInfo {
    WorkerInfo {
        worker_id: id,
        host: host_of(id),
        port: port_of(id),
        node: Some(t2_proto::NodeInfo {
            node_ip: node_of(id),
            ..Default::default()
        }),
        restart_count: 0,
        state: WorkerState::Started as i32,
        agent_port: 0,
    }
}

/// The worker list the job master must send: every worker as it registered, in its topology
/// order (workers of a node together, nodes by address, then by worker ID).
fn expected_workers(n: u32) -> Vec<WorkerInfo> {
    let mut workers: Vec<WorkerInfo> = (0..n).map(info_of).collect();
    workers.sort_by_cached_key(|w| (node_of(w.worker_id), w.worker_id));
    workers
}

/// Checks that `bytes` decode to `expected`, worker for worker.
fn check_list(bytes: &[u8], expected: &[WorkerInfo]) -> Result<(), String> {
    let workers = table::decode(bytes).map_err(|e| e.to_string())?;
    if workers.len() != expected.len() {
        return Err(format!(
            "worker list has {} workers, not {}",
            workers.len(),
            expected.len()
        ));
    }
    match workers.iter().zip(expected).position(|(w, e)| w != e) {
        Some(i) => Err(format!(
            "worker list entry {i} is {:?}, not {:?}",
            workers[i], expected[i]
        )),
        None => Ok(()),
    }
}

/// Starts `t2 jobmaster` for an N-worker job in a temporary T2_HOME; returns it and its address.
fn start_jobmaster(
    t2: &str,
    n: u32,
    home: &std::path::Path,
) -> anyhow::Result<(std::process::Child, String, std::path::PathBuf, Duration)> {
    let id = format!("jmscale-{n}");
    let dir = JobDir::new(home, &id);
    std::fs::create_dir_all(dir.logs_dir())?;
    let spec = t2_core::spec::load_job_spec(
        "local",
        None,
        None,
        &[
            "name=jmscale".to_string(),
            "command=[\"true\"]".to_string(),
            format!("workers={n}"),
        ],
    )?;
    std::fs::write(dir.spec_path(), serde_json::to_string(&spec)?)?;
    std::fs::write(dir.token_path(), TOKEN)?;
    let log_path = dir.jobmaster_log();
    let log = std::fs::File::create(&log_path)?;
    let mut child = Command::new(t2)
        .arg("jobmaster")
        .arg("--job-dir")
        .arg(dir.root())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("cannot start {t2} jobmaster"))?;
    let stdout = child.stdout.take().context("job master has no stdout")?;
    let mut line = String::new();
    let mut stdout = BufReader::new(stdout);
    stdout.read_line(&mut line)?;
    // Keep reading, as the supervisor does (the job master reports its outcome there too).
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let Some(addr) = line.trim().strip_prefix("T2_JOBMASTER_ADDR=") else {
        bail!(
            "the job master did not print its address (got '{}'); see {}",
            line.trim(),
            log_path.display()
        );
    };
    Ok((child, addr.to_string(), log_path, spec.heartbeat_interval))
}

/// Runs one N-worker round against a fresh job master; returns its figures.
pub async fn run(t2: &str, n: u32, hold: Duration) -> anyhow::Result<serde_json::Value> {
    let home = std::env::temp_dir().join(format!("t2-jmscale-{}", std::process::id()));
    let (mut jm, addr, log_path, spec_interval) = start_jobmaster(t2, n, &home)?;
    let pid = jm.id();
    let job_id = format!("jmscale-{n}");
    let expected = expected_workers(n);
    let expected_list = table::encode(&expected);
    check_list(&expected_list, &expected).map_err(|e| anyhow::anyhow!("the expected list: {e}"))?;
    let shared = Arc::new(Shared {
        beaters: Mutex::new(vec![Vec::new(); PHASES]),
        expected_list,
        ..Shared::default()
    });
    {
        // Heartbeats at the interval the job master asks for (the spec's default, 250 ms,
        // stretched for large jobs), as agents send them.
        let shared = shared.clone();
        tokio::spawn(async move {
            let interval = loop {
                match shared.interval_ms.load(Relaxed) {
                    0 => tokio::time::sleep(Duration::from_millis(5)).await,
                    ms => break Duration::from_millis(ms),
                }
            };
            if interval != spec_interval {
                eprintln!(
                    "N = {n}: the job master asks for heartbeats every {interval:?} (the spec says {spec_interval:?})"
                );
            }
            let mut tick = tokio::time::interval(interval / PHASES as u32);
            let mut seq = 0u64;
            loop {
                tick.tick().await;
                seq += 1;
                let group = (seq as usize) % PHASES;
                let beat = WorkerToMaster {
                    body: Some(W::Heartbeat(Heartbeat {
                        seq: seq / PHASES as u64,
                    })),
                };
                if let Ok(mut beaters) = shared.beaters.lock() {
                    beaters[group].retain(|tx| {
                        !matches!(
                            tx.try_send(beat.clone()),
                            Err(mpsc::error::TrySendError::Closed(_))
                        )
                    });
                }
            }
        });
    }
    let (complete_tx, complete_rx) = watch::channel(false);

    // Peak memory and CPU of the job master, sampled until it exits.
    let peak = Arc::new(Mutex::new((0.0f64, 0.0f64)));
    {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let hwm = proc::status_mib(pid, "VmHWM:");
                if hwm == 0.0 {
                    return;
                }
                let cpu = proc::cpu_seconds(pid);
                if let Ok(mut p) = peak.lock() {
                    *p = (p.0.max(hwm), p.1.max(cpu));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }

    let start = Instant::now();
    let cpu0 = proc::cpu_seconds(pid);
    for id in 0..n {
        let (addr, job_id, shared, complete) = (
            addr.clone(),
            job_id.clone(),
            shared.clone(),
            complete_rx.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = worker(id, n, &addr, &job_id, &shared, complete).await {
                shared.fail(format!("worker {id}: {e}"));
            }
        });
    }
    let sh = shared.clone();
    let failed = move || sh.failed();
    let mut marks = Vec::new();
    let me = std::process::id();
    let gen0 = proc::cpu_seconds(me);
    let mut mark = |name: &str| {
        marks.push((
            name.to_string(),
            start.elapsed().as_secs_f64(),
            proc::cpu_seconds(pid),
            proc::cpu_seconds(me),
        ));
    };
    wait_for(
        "join",
        n as usize,
        PHASE_DEADLINE,
        || shared.registered.load(Relaxed),
        &failed,
    )
    .await?;
    mark("join");
    wait_for(
        "worker list",
        n as usize,
        PHASE_DEADLINE,
        || shared.listed.load(Relaxed),
        &failed,
    )
    .await?;
    mark("list");
    for (k, counter) in shared.barriers.iter().enumerate() {
        wait_for(
            &format!("barrier {}", k + 1),
            n as usize,
            PHASE_DEADLINE,
            || counter.load(Relaxed),
            &failed,
        )
        .await?;
        mark(&format!("barrier{}", k + 1));
    }
    let rss_after_barriers = proc::status_mib(pid, "VmRSS:");
    tokio::time::sleep(hold).await;
    mark("hold");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let lost = log.lines().filter(|l| l.contains("worker lost")).count();
    let failed_in_log = log.lines().filter(|l| l.contains("worker failed")).count();
    let failed_events = shared.failed_events.load(Relaxed);
    let hwm_before_end = proc::status_mib(pid, "VmHWM:");
    let _ = complete_tx.send(true);
    wait_for(
        "completion",
        n as usize,
        PHASE_DEADLINE,
        || shared.ended.load(Relaxed),
        &failed,
    )
    .await?;
    mark("complete");
    let exit = tokio::task::spawn_blocking(move || jm.wait()).await??;
    if !exit.success() {
        let kept = std::env::temp_dir().join(format!("jobmaster-scale-{n}.log"));
        let _ = std::fs::copy(&log_path, &kept);
        eprintln!(
            "the job master exited with {exit}; its log is in {}",
            kept.display()
        );
    }
    let _ = std::fs::remove_dir_all(&home);

    let phase = |name: &str| marks.iter().position(|m| m.0 == name);
    let at = |name: &str| phase(name).map_or(0.0, |i| marks[i].1);
    let cpu_at = |name: &str| phase(name).map_or(0.0, |i| marks[i].2);
    let gen_at = |name: &str| phase(name).map_or(0.0, |i| marks[i].3);
    let (peak_rss, _) = *peak.lock().unwrap_or_else(|e| e.into_inner());
    Ok(json!({
        "system": "t2",
        "workers": n,
        "join_s": at("join"),
        "list_s": at("list") - at("join"),
        "barrier1_s": at("barrier1") - at("list"),
        "barrier2_s": at("barrier2") - at("barrier1"),
        "barrier3_s": at("barrier3") - at("barrier2"),
        "join_to_barrier3_s": at("barrier3"),
        "complete_s": at("complete") - at("hold"),
        "hold_s": hold.as_secs_f64(),
        "heartbeat_interval_ms": shared.interval_ms.load(Relaxed),
        "jm_cpu_join_to_barrier3_s": cpu_at("barrier3") - cpu0,
        // Where the time goes: CPU seconds of the job master and of this load generator
        // (they share the machine) in each phase.
        "jm_cpu_join_s": cpu_at("join") - cpu0,
        "jm_cpu_list_s": cpu_at("list") - cpu_at("join"),
        "jm_cpu_barriers_s": cpu_at("barrier3") - cpu_at("list"),
        "gen_cpu_join_s": gen_at("join") - gen0,
        "gen_cpu_list_s": gen_at("list") - gen_at("join"),
        "gen_cpu_barriers_s": gen_at("barrier3") - gen_at("list"),
        "jm_cpu_hold_s": cpu_at("hold") - cpu_at("barrier3"),
        "jm_rss_after_barriers_mib": rss_after_barriers,
        "jm_peak_rss_mib": peak_rss.max(hwm_before_end),
        "worker_lost_in_hold": lost,
        "worker_failed_in_hold": failed_in_log,
        "worker_failed_events_in_hold": failed_events,
        "jm_exit": exit.code(),
    }))
}

async fn worker(
    id: u32,
    n: u32,
    addr: &str,
    job_id: &str,
    shared: &Shared,
    mut complete: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel::<WorkerToMaster>(64);
    let send = |body: W| {
        let tx = tx.clone();
        async move {
            tx.send(WorkerToMaster { body: Some(body) })
                .await
                .map_err(|_| anyhow::anyhow!("stream closed"))
        }
    };
    send(W::Register(RegisterParams {
        job_id: job_id.into(),
        token: TOKEN.into(),
        protocol_version: PROTOCOL_VERSION,
        info: Some(info_of(id)),
        reconnect: false,
    }))
    .await?;
    let mut inbound = wire::attach(addr, rx).await?;
    let list = &shared.expected_list[..];
    let registered = match inbound.next(list).await? {
        Some(Received::Message(t2_proto::MasterToWorker {
            body: Some(M::Registered(r)),
        })) => r,
        Some(Received::Message(other)) => bail!("expected Registered, got {other:?}"),
        Some(Received::ListPiece { .. }) => bail!("expected Registered, got the worker list"),
        None => bail!("the job master closed the stream before answering the registration"),
    };
    shared.registered.fetch_add(1, Relaxed);
    let _ = shared.interval_ms.compare_exchange(
        0,
        registered.heartbeat_interval_ms.max(1),
        Relaxed,
        Relaxed,
    );
    if registered.num_workers != n {
        bail!(
            "the job master says the job has {} workers, not {n}",
            registered.num_workers
        );
    }
    if let Ok(mut beaters) = shared.beaters.lock() {
        beaters[id as usize % PHASES].push(tx.clone());
    }
    let barrier = |k: u64| {
        W::Barrier(BarrierParams {
            request_id: k,
            barrier_type: BarrierType::Default as i32,
            timeout_ms: 0,
        })
    };
    let mut passed = 0u64;
    let mut completing = false;
    let result = loop {
        tokio::select! {
            m = inbound.next(list) => {
                let body = match m {
                    Ok(Some(Received::ListPiece { piece, pieces, matched })) => {
                        if !matched {
                            break Err(anyhow::anyhow!("piece {piece} of its worker list differs from the expected list"));
                        }
                        if piece + 1 == pieces.max(1) {
                            shared.listed.fetch_add(1, Relaxed);
                            send(barrier(1)).await?;
                        }
                        continue;
                    }
                    Ok(Some(Received::Message(msg))) => msg.body,
                    Ok(None) => break Err(anyhow::anyhow!("the job master closed the stream before the job ended")),
                    Err(e) => break Err(e),
                };
                match body {
                    Some(M::Barrier(b)) => {
                        if b.result() != BarrierResult::Success || b.request_id != passed + 1 {
                            break Err(anyhow::anyhow!("barrier {} ended {:?}: {}", b.request_id, b.result(), b.reason));
                        }
                        shared.barriers[passed as usize].fetch_add(1, Relaxed);
                        passed += 1;
                        if passed < 3 {
                            send(barrier(passed + 1)).await?;
                        }
                    }
                    Some(M::WorkerFailed(_)) => {
                        shared.failed_events.fetch_add(1, Relaxed);
                    }
                    Some(M::JobEnded(e)) => {
                        break if e.state() == JobState::JobCompleted {
                            shared.ended.fetch_add(1, Relaxed);
                            Ok(())
                        } else {
                            Err(anyhow::anyhow!("the job ended {:?}: {}", e.state(), e.reason))
                        };
                    }
                    _ => {}
                }
            }
            r = complete.changed(), if !completing && passed == 3 => {
                if r.is_ok() && *complete.borrow() {
                    completing = true;
                    send(W::StateChange(StateChangeParams {
                        state: WorkerState::Completed as i32,
                        exit_code: 0,
                        reason: String::new(),
                    }))
                    .await?;
                }
            }
        }
    };
    drop(tx);
    result
}
