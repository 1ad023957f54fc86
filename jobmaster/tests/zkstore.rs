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
