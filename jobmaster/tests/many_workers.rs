//! Two thousand workers over real gRPC on loopback, one connection each: all join, every one
//! gets the same complete worker list, all pass a barrier, none is declared lost, and the job
//! completes. A hang guard bounds it; nothing here measures time.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use t2_jobmaster::JobMasterConfig;
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::{
    master_to_worker::Body as M, table, worker_to_master::Body as W, BarrierParams, BarrierResult,
    BarrierType, Heartbeat, JobState, MasterToWorker, RegisterParams, StateChangeParams,
    WorkerInfo, WorkerState, WorkerToMaster, PROTOCOL_VERSION,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const N: u32 = 2_000;
const HANG_GUARD: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Seen {
    lists: AtomicUsize,
    barriers: AtomicUsize,
    failures: AtomicUsize,
    completed: AtomicUsize,
    /// The first list, checked in full; every other must be the same bytes.
    first_list: OnceLock<Vec<u8>>,
}

async fn worker(addr: String, id: u32, seen: Arc<Seen>) -> Result<(), String> {
    let channel = loop {
        match tonic::transport::Endpoint::from_shared(addr.clone())
            .map_err(|e| e.to_string())?
            .connect()
            .await
        {
            Ok(c) => break c,
            // Thousands connecting at once may overflow the listen queue for a moment.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let mut client = JobMasterClient::new(channel);
    let (tx, rx) = mpsc::channel(64);
    let send = |body| {
        tx.try_send(WorkerToMaster { body: Some(body) })
            .map_err(|e| format!("worker {id}: cannot send: {e}"))
    };
    send(W::Register(RegisterParams {
        job_id: "many".into(),
        token: "t".into(),
        protocol_version: PROTOCOL_VERSION,
        info: Some(WorkerInfo {
            worker_id: id,
            host: "127.0.0.1".into(),
            port: 30_000 + id,
            ..Default::default()
        }),
        reconnect: false,
    }))?;
    let mut inbound = client
        .attach(ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("worker {id} refused: {}", s.message()))?
        .into_inner();
    let beats = tx.clone();
    let heartbeats = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        for seq in 1.. {
            tick.tick().await;
            let _ = beats.try_send(WorkerToMaster {
                body: Some(W::Heartbeat(Heartbeat { seq })),
            });
        }
    });
    let mut pieces = table::Assembler::default();
    let result = loop {
        let msg = match inbound.message().await {
            Ok(Some(MasterToWorker { body: Some(b) })) => b,
            Ok(_) => break Err(format!("worker {id}: stream ended before the job")),
            Err(s) => break Err(format!("worker {id}: stream broke: {}", s.message())),
        };
        match msg {
            M::AllJoined(j) => {
                let Some(list) = pieces
                    .push(j.piece, j.pieces, &j.table)
                    .map_err(|e| e.to_string())?
                else {
                    continue;
                };
                let first = seen.first_list.get_or_init(|| list.clone());
                if *first != list {
                    break Err(format!("worker {id} got a different worker list"));
                }
                seen.lists.fetch_add(1, Relaxed);
                send(W::Barrier(BarrierParams {
                    request_id: 1,
                    barrier_type: BarrierType::Default as i32,
                    timeout_ms: 0,
                }))?;
            }
            M::Barrier(b) => {
                if b.result() != BarrierResult::Success {
                    break Err(format!(
                        "worker {id}: barrier {:?}: {}",
                        b.result(),
                        b.reason
                    ));
                }
                seen.barriers.fetch_add(1, Relaxed);
                send(W::StateChange(StateChangeParams {
                    state: WorkerState::Completed as i32,
                    exit_code: 0,
                    reason: String::new(),
                }))?;
            }
            M::WorkerFailed(_) => {
                seen.failures.fetch_add(1, Relaxed);
            }
            M::JobEnded(e) => {
                if e.state() == JobState::JobCompleted {
                    seen.completed.fetch_add(1, Relaxed);
                }
                break Ok(());
            }
            _ => {}
        }
    };
    heartbeats.abort();
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_workers_join_get_one_list_pass_a_barrier_and_complete() {
    // A listen queue for everyone connecting at once, as `t2 jobmaster` has (the default
    // 1024 drops connections, which the kernel then retries seconds later).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(4096).unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let jm = tokio::spawn(t2_jobmaster::run(
        listener,
        JobMasterConfig::new("many", "t", N),
        std::future::pending(),
    ));
    let seen = Arc::new(Seen::default());
    let workers: Vec<_> = (0..N)
        .map(|id| tokio::spawn(worker(addr.clone(), id, seen.clone())))
        .collect();
    let all = async {
        let mut errors = Vec::new();
        for w in workers {
            if let Err(e) = w.await.unwrap() {
                errors.push(e);
            }
        }
        errors
    };
    let errors = tokio::time::timeout(HANG_GUARD, all)
        .await
        .expect("hang guard: 2000 workers did not finish");
    assert!(
        errors.is_empty(),
        "{} worker(s) failed, first: {}",
        errors.len(),
        errors[0]
    );
    let outcome = tokio::time::timeout(HANG_GUARD, jm)
        .await
        .expect("hang guard: the job master did not end")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.state, JobState::JobCompleted, "{}", outcome.reason);
    assert_eq!(seen.lists.load(Relaxed), N as usize);
    assert_eq!(seen.barriers.load(Relaxed), N as usize);
    assert_eq!(seen.completed.load(Relaxed), N as usize);
    assert_eq!(seen.failures.load(Relaxed), 0, "a worker was declared lost");
    let list = table::decode(seen.first_list.get().unwrap()).unwrap();
    let ids: Vec<u32> = list.iter().map(|w| w.worker_id).collect();
    assert_eq!(ids, (0..N).collect::<Vec<_>>());
    assert!(list
        .iter()
        .all(|w| w.port == 30_000 + w.worker_id && w.host == "127.0.0.1"));
}
