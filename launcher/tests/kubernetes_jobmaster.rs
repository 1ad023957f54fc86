//! The in-cluster job master's pieces against the API contract: its state store (the root
//! ConfigMap — worker records batched into one patch, read back by a restarted job master so
//! restart counts survive it) and its cluster (scale through the scale subresource; end the
//! job by recording the final state and deleting the root). Also the exec request of direct
//! delivery, refused.

#[path = "kubernetes_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::mock::{run, Step, NS};
use t2_jobmaster::cluster::JobCluster;
use t2_jobmaster::store::JobStateStore;
use t2_launcher::kubernetes::deliver::direct::ExecDeliverer;
use t2_launcher::kubernetes::deliver::Deliverer;
use t2_launcher::kubernetes::incluster::cluster::KubeJobCluster;
use t2_launcher::kubernetes::incluster::store::ConfigMapStore;
use t2_proto::{JobState, NodeInfo, WorkerInfo, WorkerState};

const ID: &str = "pi-abcd1234";

fn root_path() -> String {
    format!("/api/v1/namespaces/{NS}/configmaps/{ID}")
}

fn worker(id: u32, restarts: u32, state: WorkerState) -> WorkerInfo {
    let mut w = WorkerInfo {
        worker_id: id,
        host: format!("10.0.0.{id}"),
        port: 4000,
        node: Some(NodeInfo {
            node_ip: "192.168.1.1".into(),
            ..NodeInfo::default()
        }),
        restart_count: restarts,
        state: 0,
    };
    w.set_state(state);
    w
}

#[tokio::test(start_paused = true)]
async fn worker_records_are_batched_and_restart_counts_survive_a_job_master_restart() {
    let steps = vec![
        // Two registrations, one patch.
        Step::new("PATCH", format!("{}?", root_path()))
            .check(|b, _| {
                let data = b["data"].as_object().unwrap();
                assert_eq!(data.len(), 2, "{data:?}");
                let w1: serde_json::Value = serde_json::from_str(data["worker.1"].as_str().unwrap()).unwrap();
                assert_eq!(w1, json!({"id": 1, "state": "RESTARTED", "restart_count": 2, "host": "10.0.0.1", "port": 4000, "node": "192.168.1.1"}));
            })
            .json(200, json!({"metadata": {"name": ID}})),
        // The job state goes at once.
        Step::new("PATCH", format!("{}?", root_path()))
            .check(|b, _| assert_eq!(b, &json!({"data": {"jobmaster.state": "RUNNING", "jobmaster.reason": ""}})))
            .json(200, json!({"metadata": {"name": ID}})),
        // A restarted job master reads it all back.
        Step::new("GET", root_path()).json(
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ID}, "data": {
                "jobmaster.state": "RUNNING", "jobmaster.reason": "",
                "worker.0": "{\"id\":0,\"state\":\"STARTED\",\"restart_count\":0,\"host\":\"10.0.0.0\",\"port\":4000,\"node\":\"n\"}",
                "worker.1": "{\"id\":1,\"state\":\"RESTARTED\",\"restart_count\":2,\"host\":\"10.0.0.1\",\"port\":4000,\"node\":\"n\"}",
                "spec.json": "{}"}}),
        ),
        Step::new("GET", root_path()).json(
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ID}, "data": {"jobmaster.state": "RUNNING"}}),
        ),
    ];
    let (workers, state) = run(steps, |kube| async move {
        let store = ConfigMapStore::new(kube.clone(), ID);
        store
            .put_worker(&worker(0, 0, WorkerState::Started))
            .await
            .unwrap();
        store
            .put_worker(&worker(1, 2, WorkerState::Restarted))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        store.put_job_state(JobState::Running, "").await.unwrap();
        drop(store);
        let restarted = ConfigMapStore::new(kube, ID);
        let w = restarted.workers().await.unwrap();
        let s = restarted.job_state().await.unwrap();
        (w, s)
    })
    .await;
    assert_eq!(
        workers
            .iter()
            .map(|w| (w.worker_id, w.restart_count, w.state()))
            .collect::<Vec<_>>(),
        vec![(0, 0, WorkerState::Started), (1, 2, WorkerState::Restarted)]
    );
    assert_eq!(state, Some((JobState::Running, String::new())));
}

#[tokio::test]
async fn a_fresh_job_has_no_recorded_state() {
    let steps = vec![Step::new("GET", root_path()).json(200, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ID}, "data": {"workers": "4"}}))];
    let s = run(steps, |kube| async move {
        ConfigMapStore::new(kube, ID).job_state().await.unwrap()
    })
    .await;
    assert_eq!(s, None, "a new job master must not think it was restarted");
}

#[tokio::test]
async fn the_job_master_ends_its_job_by_deleting_the_root_and_scales_through_the_subresource() {
    let steps = vec![
        Step::new("PATCH", format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{ID}/scale?"))
            .check(|b, _| assert_eq!(b, &json!({"spec": {"replicas": 3}})))
            .json(200, json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": ID}, "spec": {"replicas": 3}})),
        Step::new("PATCH", format!("{}?", root_path()))
            .check(|b, _| assert_eq!(b, &json!({"data": {"workers": "6"}})))
            .json(200, json!({"metadata": {"name": ID}})),
        Step::new("PATCH", format!("{}?", root_path()))
            .check(|b, _| assert_eq!(b, &json!({"data": {"jobmaster.state": "COMPLETED", "jobmaster.reason": "all 6 workers completed"}})))
            .json(200, json!({"metadata": {"name": ID}})),
        Step::new("DELETE", format!("{}?", root_path()))
            .check(|b, _| assert_eq!(b["propagationPolicy"], "Background"))
            .json(200, json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})),
    ];
    run(steps, |kube| async move {
        let cluster = KubeJobCluster::new(kube, ID, 2);
        assert_eq!(
            cluster.scale_workers(5).await.unwrap_err().to_string(),
            "5 workers do not fill whole pods of 2 workers; use a multiple of 2"
        );
        cluster.scale_workers(6).await.unwrap();
        cluster
            .end_job(JobState::JobCompleted, "all 6 workers completed")
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn direct_delivery_execs_into_the_init_container_and_names_a_refusal() {
    let pkg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pkg.path(), b"12345").unwrap();
    let exec = format!(
        "/api/v1/namespaces/{NS}/pods/{ID}-0/exec?&stdin=true&stdout=true&stderr=true&container=t2-init&command=t2&command=pod&command=receive&command=--bytes&command=5&command=--sha256&command=abc"
    );
    let steps = (0..3)
        .map(|_| {
            Step::new("GET", exec.clone())
                .check(|_, h| assert_eq!(h["upgrade"], "websocket"))
                .status(
                    403,
                    "Forbidden",
                    "pods \"x\" is forbidden: cannot create resource \"pods/exec\"",
                )
        })
        .collect();
    let e = run(steps, |kube| async move {
        let bar = Arc::new(indicatif::ProgressBar::hidden());
        ExecDeliverer::new(kube, pkg.path().to_path_buf(), "abc", 5, bar)
            .deliver(&format!("{ID}-0"))
            .await
    })
    .await
    .unwrap_err();
    assert!(
        e.starts_with(&format!(
            "forbidden: you may not create pods/exec in namespace '{NS}' (object '{ID}-0')"
        )),
        "{e}"
    );
    assert!(e.ends_with("(after 3 attempts)"), "{e}");
}
