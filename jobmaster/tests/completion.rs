//! A worker's COMPLETED is acknowledged only once the job's store holds it: an agent exits on
//! the acknowledgement, so a successor job master restored from a store that missed it would
//! wait for that worker forever (the chaos test found this when a job master was SIGKILLed
//! while its ZooKeeper write was held up by a ZooKeeper restart).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use t2_jobmaster::store::{JobStateStore, MemoryStore, StoreError};
use t2_jobmaster::JobMasterConfig;
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::{
    master_to_worker::Body as M, worker_to_master::Body as W, JobState, MasterToWorker,
    StateChangeParams, WorkerInfo, WorkerState, WorkerToMaster, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_stream::StreamExt;

use common::register;

/// A memory store whose write of a COMPLETED worker waits until the test opens its gate, as a
/// ZooKeeper write waits while ZooKeeper restarts.
#[derive(Default)]
struct GatedStore {
    inner: MemoryStore,
    gate: Notify,
    completed_stored: AtomicBool,
}

#[async_trait::async_trait]
impl JobStateStore for GatedStore {
    async fn put_job_state(&self, state: JobState, reason: &str) -> Result<(), StoreError> {
        self.inner.put_job_state(state, reason).await
    }
    async fn put_worker(&self, info: &WorkerInfo) -> Result<(), StoreError> {
        if info.state() == WorkerState::Completed {
            self.gate.notified().await;
            self.inner.put_worker(info).await?;
            self.completed_stored.store(true, Ordering::SeqCst);
            return Ok(());
        }
        self.inner.put_worker(info).await
    }
    async fn workers(&self) -> Result<Vec<WorkerInfo>, StoreError> {
        self.inner.workers().await
    }
    async fn job_state(&self) -> Result<Option<(JobState, String)>, StoreError> {
        self.inner.job_state().await
    }
}

async fn next(stream: &mut tonic::Streaming<MasterToWorker>) -> Option<M> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("a message within 10 s")
        .and_then(|m| m.ok())
        .and_then(|m| m.body)
}

#[tokio::test]
async fn a_completed_worker_is_acknowledged_only_after_its_state_is_stored() {
    let store = Arc::new(GatedStore::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let cfg = JobMasterConfig::new("job-c", "t", 1);
    let jm = tokio::spawn(t2_jobmaster::server::run_with_store(
        listener,
        cfg,
        store.clone(),
        std::future::pending(),
    ));
    let mut client = JobMasterClient::connect(addr).await.unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tx.send(register("job-c", "t", PROTOCOL_VERSION, 0))
        .unwrap();
    let mut stream = client
        .attach(UnboundedReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(next(&mut stream).await, Some(M::Registered(_))));
    tx.send(WorkerToMaster {
        body: Some(W::StateChange(StateChangeParams {
            state: WorkerState::Completed as i32,
            exit_code: 0,
            reason: String::new(),
        })),
    })
    .unwrap();
    // The store's write is held: whatever arrives meanwhile must not be the acknowledgement.
    let opener = {
        let store = store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            store.gate.notify_one();
        })
    };
    loop {
        match next(&mut stream).await {
            Some(M::StateAck(ack)) => {
                assert_eq!(ack.state, WorkerState::Completed as i32);
                assert!(
                    store.completed_stored.load(Ordering::SeqCst),
                    "COMPLETED was acknowledged before the store held it"
                );
                break;
            }
            Some(_) => continue,
            None => panic!("the stream ended without acknowledging COMPLETED"),
        }
    }
    opener.await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), jm)
        .await
        .expect("the job master must end")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.state, JobState::JobCompleted, "{}", outcome.reason);
}
