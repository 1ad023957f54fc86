//! The ZooKeeper store against a real ZooKeeper server: a scaled job's worker count outlives
//! the job master's session and goes with the job.

#[allow(dead_code)]
#[path = "../../launcher/tests/common/zk.rs"]
mod zk;

use std::time::Duration;

use t2_core::zk::Zk;
use t2_jobmaster::store::JobStateStore;
use t2_jobmaster::zkstore::ZkStore;
use t2_proto::JobState;

async fn session(server: &zk::ZkServer) -> Zk {
    Zk::connect(
        &server.address(),
        Duration::from_secs(5),
        Duration::from_secs(15),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn the_worker_count_survives_the_job_master_and_goes_with_the_job() {
    let server = zk::ZkServer::start();
    let first = ZkStore::new(session(&server).await, "/t2", "job-z", "http://127.0.0.1:1");
    assert_eq!(first.num_workers().await.unwrap(), None, "never scaled");
    first.put_job_state(JobState::Running, "").await.unwrap();
    first.put_num_workers(5).await.unwrap();
    first.put_num_workers(3).await.unwrap();
    drop(first);

    // A restarted job master, on a session of its own.
    let second = ZkStore::new(session(&server).await, "/t2", "job-z", "http://127.0.0.1:2");
    assert_eq!(second.num_workers().await.unwrap(), Some(3));
    // The count is not mistaken for a worker.
    assert!(second.workers().await.unwrap().is_empty());
    second.remove_job().await.unwrap();
    assert_eq!(second.num_workers().await.unwrap(), None);
}

/// ZooKeeper SIGKILLed while writes are in flight (their requests die with a reset
/// connection, not only "connection loss") and back within the session timeout: every write
/// still lands, so a completion recorded then is not lost to a later job master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_flight_when_zookeeper_dies_land_once_it_is_back() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed};
    use std::sync::Arc;
    use t2_proto::WorkerInfo;

    let mut server = zk::ZkServer::start();
    let zk = Zk::connect(
        &server.address(),
        Duration::from_secs(40),
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    let store = Arc::new(ZkStore::new(zk, "/t2", "job-w", "http://127.0.0.1:1"));
    store.put_job_state(JobState::Running, "").await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU32::new(0));
    const WORKERS: u32 = 512;
    const KILLS: usize = 4;
    // Rewrites WORKERS workers, round after round, as fast as ZooKeeper takes them; each round's
    // records carry its number.
    let writer = {
        let (store, stop, rounds) = (store.clone(), stop.clone(), rounds.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut round = 0;
            while !stop.load(Relaxed) {
                round += 1;
                let infos: Vec<WorkerInfo> = (0..WORKERS)
                    .map(|id| WorkerInfo {
                        worker_id: id,
                        restart_count: round,
                        ..Default::default()
                    })
                    .collect();
                if let Err(e) = store.put_workers(&infos).await {
                    failures.push(format!("round {round}: {e}"));
                }
                rounds.store(round, Relaxed);
            }
            (round, failures)
        })
    };
    let wait_rounds = |n: u32| {
        let rounds = rounds.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while rounds.load(Relaxed) < n {
                assert!(std::time::Instant::now() < deadline, "no progress");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_rounds(3).await;
    for _ in 0..KILLS {
        server = tokio::task::spawn_blocking(move || {
            server.stop();
            std::thread::sleep(Duration::from_millis(300));
            server.restart();
            server
        })
        .await
        .unwrap();
        let after = rounds.load(Relaxed);
        wait_rounds(after + 3).await;
    }
    stop.store(true, Relaxed);
    let (last, failures) = writer.await.unwrap();
    assert!(failures.is_empty(), "writes failed: {failures:?}");
    let workers = store.workers().await.unwrap();
    assert_eq!(workers.len(), WORKERS as usize);
    assert!(
        workers.iter().all(|w| w.restart_count == last),
        "{workers:?}"
    );
    store.remove_job().await.unwrap();
    drop(server);
}
