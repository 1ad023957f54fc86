//! The in-cluster job master's pieces against the API contract: its state store (the root
//! ConfigMap — worker records batched into one patch, read back by a restarted job master so
//! restart counts survive it) and its cluster (scale through the scale subresource; end the
//! job by recording the final state and deleting the root; rack and datacenter from node
//! labels, or nothing without the permission), and its scaler (scale requests in the root
//! carried out through the `Scale` RPC over real gRPC, answered in the root with the
//! request's ID). Also the exec request of direct delivery, refused.

mod support;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::mock::{events, list, run, Step, NS};
use t2_jobmaster::cluster::JobCluster;
use t2_jobmaster::store::JobStateStore;
use t2_kubernetes::deliver::direct::ExecDeliverer;
use t2_kubernetes::deliver::Deliverer;
use t2_kubernetes::incluster::cluster::KubeJobCluster;
use t2_kubernetes::incluster::scaler::Scaler;
use t2_kubernetes::incluster::store::ConfigMapStore;
use t2_kubernetes::settings::Settings;
use t2_proto::job_master_server::{JobMaster, JobMasterServer};
use t2_proto::{
    JobState, JobStatus, KillParams, KillResult, MasterToWorker, NodeInfo, ScaleParams,
    ScaleResult, WatchParams, WorkerInfo, WorkerState, WorkerToMaster,
};
use tonic::{Request, Response, Status, Streaming};

const ID: &str = "pi-abcd1234";

fn root_path() -> String {
    format!("/api/v1/namespaces/{NS}/configmaps/{ID}")
}

/// A state patch's body without its time (`jobmaster.state-at`, checked to be RFC 3339).
fn without_state_at(b: &Value) -> Value {
    let mut b = b.clone();
    let at = b["data"]
        .as_object_mut()
        .and_then(|d| d.remove("jobmaster.state-at"))
        .expect("the state's time is recorded with it");
    let at = at.as_str().expect("a string");
    assert!(
        at.len() == 20 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    b
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
        agent_port: 0,
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
            .check(|b, _| assert_eq!(without_state_at(b), json!({"data": {"jobmaster.state": "RUNNING", "jobmaster.reason": ""}})))
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
            .check(|b, _| assert_eq!(without_state_at(b), json!({"data": {"jobmaster.state": "COMPLETED", "jobmaster.reason": "all 6 workers completed"}})))
            .json(200, json!({"metadata": {"name": ID}})),
        Step::new("DELETE", format!("{}?", root_path()))
            .check(|b, _| assert_eq!(b["propagationPolicy"], "Background"))
            .json(200, json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})),
    ];
    run(steps, |kube| async move {
        // ttl_after_finished 0s: the root goes at once.
        let settings = t2_kubernetes::Settings {
            ttl_after_finished: std::time::Duration::ZERO,
            ..t2_kubernetes::Settings::default()
        };
        let cluster = KubeJobCluster::with_settings(kube, ID, 2, &settings);
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

#[tokio::test]
async fn a_finished_job_is_kept_for_its_ttl_the_root_records_until_when() {
    // The default ttl_after_finished (5m): the final state and the time to remove the job are
    // recorded; the root is not deleted yet (the job master does that when the time is up).
    let steps = vec![Step::new("PATCH", format!("{}?", root_path()))
        .check(|b, _| {
            assert_eq!(b["data"]["jobmaster.state"], "FAILED");
            let at: k8s_openapi::jiff::Timestamp = b["data"]["jobmaster.remove-after"]
                .as_str()
                .expect("remove-after")
                .parse()
                .expect("RFC 3339");
            let left = t2_kubernetes::incluster::finished::time_left(at);
            assert!(
                left > std::time::Duration::ZERO && left <= std::time::Duration::from_secs(300)
            );
        })
        .json(200, json!({"metadata": {"name": ID}}))];
    run(steps, |kube| async move {
        let cluster = KubeJobCluster::new(kube, ID, 1);
        assert_eq!(
            cluster.ttl_after_finished(),
            t2_kubernetes::settings::DEFAULT_TTL_AFTER_FINISHED
        );
        cluster
            .end_job(JobState::JobFailed, "worker 0 failed")
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

#[tokio::test]
async fn a_scaled_jobs_worker_count_is_recorded_in_the_root_and_read_back() {
    let steps = vec![
        Step::new("PATCH", format!("{}?", root_path()))
            .check(|b, _| assert_eq!(b, &json!({"data": {"workers": "12"}})))
            .json(200, json!({"metadata": {"name": ID}})),
        Step::new("GET", root_path()).json(
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ID}, "data": {"workers": "12"}}),
        ),
        Step::new("GET", root_path()).json(
            200,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ID}, "data": {}}),
        ),
    ];
    let (after, none) = run(steps, |kube| async move {
        let store = ConfigMapStore::new(kube.clone(), ID);
        store.put_num_workers(12).await.unwrap();
        drop(store);
        let restarted = ConfigMapStore::new(kube, ID);
        (
            restarted.num_workers().await.unwrap(),
            restarted.num_workers().await.unwrap(),
        )
    })
    .await;
    assert_eq!(
        after,
        Some(12),
        "a restarted job master knows the scaled count"
    );
    assert_eq!(none, None);
}

fn node(name: &str, ip: &str, zone: &str, region: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone, "topology.kubernetes.io/region": region, "kubernetes.io/hostname": name}},
           "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}})
}

fn at(ip: &str) -> NodeInfo {
    NodeInfo {
        node_ip: ip.into(),
        ..NodeInfo::default()
    }
}

#[tokio::test]
async fn a_workers_node_gets_rack_and_datacenter_from_the_node_labels_listed_once() {
    let steps = vec![Step::new("GET", "/api/v1/nodes?").json(
        200,
        list(
            "Node",
            "3",
            vec![
                node("n1", "192.168.1.1", "rack-a", "dc-1"),
                node("n2", "192.168.1.2", "rack-b", "dc-1"),
            ],
        ),
    )];
    let described = run(steps, |kube| async move {
        let cluster = KubeJobCluster::new(kube, ID, 1);
        let mut out = Vec::new();
        // One list serves every known node; an unknown one within the refresh time lists
        // nothing more and stays as the worker said.
        for ip in ["192.168.1.2", "192.168.1.1", "n1", "10.9.9.9"] {
            out.push(cluster.describe_node(at(ip)).await);
        }
        out
    })
    .await;
    let got: Vec<(&str, &str, &str)> = described
        .iter()
        .map(|n| (n.node_ip.as_str(), n.rack.as_str(), n.datacenter.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("192.168.1.2", "rack-b", "dc-1"),
            ("192.168.1.1", "rack-a", "dc-1"),
            ("n1", "rack-a", "dc-1"),
            ("10.9.9.9", "", ""),
        ]
    );
}

#[tokio::test]
async fn configured_labels_name_rack_and_datacenter_and_a_forbidden_list_is_tried_once() {
    let mut n = node("n1", "192.168.1.1", "z", "r");
    n["metadata"]["labels"]["example.com/rack"] = json!("r17");
    n["metadata"]["labels"]["example.com/site"] = json!("lon");
    let steps = vec![
        Step::new("GET", "/api/v1/nodes?").json(200, list("Node", "3", vec![n])),
        Step::new("GET", "/api/v1/nodes?").status(
            403,
            "Forbidden",
            "nodes is forbidden: User \"system:serviceaccount:t2-jobs:t2-jobmaster\" cannot list resource \"nodes\"",
        ),
    ];
    let (custom, forbidden) = run(steps, |kube| async move {
        let settings = Settings {
            rack_label: "example.com/rack".into(),
            datacenter_label: "example.com/site".into(),
            ..Settings::default()
        };
        let custom = KubeJobCluster::with_settings(kube.clone(), ID, 1, &settings)
            .describe_node(at("192.168.1.1"))
            .await;
        let cluster = KubeJobCluster::new(kube, ID, 1);
        let mut forbidden = Vec::new();
        for ip in ["192.168.1.1", "192.168.1.2"] {
            forbidden.push(cluster.describe_node(at(ip)).await);
        }
        (custom, forbidden)
    })
    .await;
    assert_eq!(
        (custom.rack.as_str(), custom.datacenter.as_str()),
        ("r17", "lon")
    );
    assert_eq!(forbidden, vec![at("192.168.1.1"), at("192.168.1.2")]);
}

/// One cluster described twice: as node labels (what `kubectl label node` gives) and as
/// Twister2's configuration lists (its guide's key names). Both ways give every node the
/// same rack and datacenter.
#[tokio::test]
async fn config_lists_and_node_labels_give_the_same_mapping_for_the_same_cluster() {
    let cluster = [
        ("n1", "10.1.0.1", "blue-rack", "dc1"),
        ("n2", "10.1.0.2", "blue-rack", "dc1"),
        ("n3", "10.1.1.1", "green-rack", "dc1"),
        ("n4", "10.2.5.1", "rack01", "dc2"),
        ("n5", "10.2.5.2", "rack01", "dc2"),
    ];
    let nodes = cluster
        .iter()
        .map(|(n, ip, rack, dc)| node(n, ip, rack, dc))
        .collect();
    let steps = vec![Step::new("GET", "/api/v1/nodes?").json(200, list("Node", "3", nodes))];
    let from_labels = run(steps, |kube| async move {
        let labels = KubeJobCluster::new(kube, ID, 1);
        let mut out = Vec::new();
        for (_, ip, _, _) in cluster {
            out.push(labels.describe_node(at(ip)).await);
        }
        out
    })
    .await;
    // The same description as configuration lists.
    let mut racks: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut dcs: Vec<(&str, Vec<&str>)> = Vec::new();
    for (_, ip, rack, dc) in cluster {
        match racks.iter_mut().find(|(r, _)| *r == rack) {
            Some((_, ips)) => ips.push(ip),
            None => racks.push((rack, vec![ip])),
        }
        match dcs.iter_mut().find(|(d, _)| *d == dc) {
            Some((_, rs)) if !rs.contains(&rack) => rs.push(rack),
            Some(_) => {}
            None => dcs.push((dc, vec![rack])),
        }
    }
    let entry = |(k, v): &(&str, Vec<&str>)| format!("- {k}: ['{}']\n", v.join("', '"));
    let yaml = format!(
        "name: a\ncommand: [./a]\nkubernetes.node.locations.from.config: true\nkubernetes.datacenters.list:\n{}kubernetes.racks.list:\n{}",
        dcs.iter().map(entry).collect::<String>(),
        racks.iter().map(entry).collect::<String>()
    );
    let spec = support::jobs::spec(&yaml, &[]);
    let config = t2_jobmaster::JobMasterConfig::from_spec(ID, "t", &spec)
        .topology
        .expect("the job master uses the lists");
    for ((_, ip, rack, dc), labelled) in cluster.iter().zip(&from_labels) {
        let listed = config.locate(ip).expect("listed");
        assert_eq!(
            (listed.rack.as_str(), listed.datacenter.as_str()),
            (labelled.rack.as_str(), labelled.datacenter.as_str()),
            "node {ip}"
        );
        assert_eq!(
            (listed.rack.as_str(), listed.datacenter.as_str()),
            (*rack, *dc)
        );
    }
}

/// A job master that only answers Scale: it records each call.
#[derive(Clone, Default)]
struct ScaleRecorder {
    calls: Arc<Mutex<Vec<(String, u32)>>>,
}

type Out<T> = Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl JobMaster for ScaleRecorder {
    type AttachStream = Out<MasterToWorker>;
    type WatchStream = Out<JobStatus>;

    async fn attach(
        &self,
        _: Request<Streaming<WorkerToMaster>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn watch(&self, _: Request<WatchParams>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn kill(&self, _: Request<KillParams>) -> Result<Response<KillResult>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn scale(&self, r: Request<ScaleParams>) -> Result<Response<ScaleResult>, Status> {
        let p = r.into_inner();
        self.calls.lock().unwrap().push((p.token, p.num_workers));
        Ok(Response::new(ScaleResult {
            previous: 4,
            num_workers: p.num_workers,
        }))
    }
}

/// Serves `recorder` on a loopback port; returns its endpoint.
async fn serve(recorder: ScaleRecorder) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(JobMasterServer::new(recorder))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn configmaps() -> String {
    format!("/api/v1/namespaces/{NS}/configmaps")
}

fn list_root() -> String {
    format!("{}?&fieldSelector=metadata.name%3D{ID}", configmaps())
}

fn watch_root(rv: &str) -> String {
    format!(
        "{}?&watch=true&timeoutSeconds=290&fieldSelector=metadata.name%3D{ID}&allowWatchBookmarks=true&resourceVersion={rv}",
        configmaps()
    )
}

/// The root at `rv` with a request (`(id, workers)`) and an answer (JSON), if given.
fn root_with(rv: &str, request: Option<(&str, u32)>, answer: Option<Value>) -> Value {
    let mut data = json!({"workers": "4", "workers-per-pod": "1", "jobmaster.state": "RUNNING"});
    if let Some((id, w)) = request {
        data["scale.request"] = json!(json!({"id": id, "workers": w}).to_string());
    }
    if let Some(a) = answer {
        data["scale.answer"] = json!(a.to_string());
    }
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": ID, "namespace": NS, "resourceVersion": rv}, "data": data})
}

fn answer_patch(expected: Value) -> Step {
    Step::new("PATCH", format!("{}?", root_path()))
        .check(move |b, _| {
            let data = b["data"].as_object().expect("data");
            assert_eq!(data.len(), 1, "only the answer: {b}");
            let a: Value = serde_json::from_str(data["scale.answer"].as_str().unwrap()).unwrap();
            assert_eq!(a, expected);
        })
        .json(200, json!({"metadata": {"name": ID}}))
}

#[tokio::test]
async fn scale_requests_seen_in_the_watch_go_through_the_real_job_master_and_are_answered_by_id() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let steps = vec![
        Step::new("GET", list_root()).json(200, list("ConfigMap", "10", vec![root_with("10", None, None)])),
        Step::new("GET", watch_root("10")).raw(
            200,
            events(&[
                ("MODIFIED", root_with("11", Some(("a1b2", 6)), None)),
                // The job master's own answer coming back: nothing to do.
                ("MODIFIED", root_with("12", Some(("a1b2", 6)), Some(json!({"id": "a1b2", "workers": 6})))),
                ("MODIFIED", root_with("13", Some(("c3d4", 5)), Some(json!({"id": "a1b2", "workers": 6})))),
                ("DELETED", root_with("14", None, None)),
            ]),
        ),
        // The job master's Scale: its cluster patches the worker StatefulSet's scale (2 workers
        // per pod) and records the count in the root...
        Step::new("PATCH", format!("/apis/apps/v1/namespaces/{NS}/statefulsets/{ID}/scale?"))
            .check(|b, _| assert_eq!(b, &json!({"spec": {"replicas": 3}})))
            .json(200, json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": ID}, "spec": {"replicas": 3}})),
        Step::new("PATCH", format!("{}?", root_path()))
            .check(|b, _| assert_eq!(b, &json!({"data": {"workers": "6"}})))
            .json(200, json!({"metadata": {"name": ID}})),
        // ...then the scaler answers with the request's ID.
        answer_patch(json!({"id": "a1b2", "workers": 6})),
        // 5 workers do not fill pods of 2: the cluster refuses, the answer says why.
        answer_patch(json!({"id": "c3d4", "error": format!("cannot scale job {ID} to 5 workers: 5 workers do not fill whole pods of 2 workers; use a multiple of 2")})),
    ];
    let outcome = run(steps, |kube| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let cluster: Arc<dyn JobCluster> = Arc::new(KubeJobCluster::new(kube.clone(), ID, 2));
        let master = tokio::spawn(t2_jobmaster::server::run_with(
            listener,
            t2_jobmaster::JobMasterConfig::new(ID, TOKEN, 4),
            Arc::new(t2_jobmaster::store::MemoryStore::default()),
            Some(cluster),
            async {
                let _ = stopped.await;
            },
        ));
        Scaler::new(kube, ID, &endpoint, TOKEN).run().await;
        let _ = stop.send(());
        master.await.unwrap().unwrap()
    })
    .await;
    assert_eq!(
        outcome.reason, "job master shut down",
        "the job ran until the test stopped it"
    );
}

#[tokio::test]
async fn a_pending_request_is_carried_out_once_even_when_its_answer_must_be_written_again() {
    let recorder = ScaleRecorder::default();
    let endpoint = serve(recorder.clone()).await;
    let pending = || {
        list(
            "ConfigMap",
            "20",
            vec![root_with("20", Some(("e5f6", 2)), None)],
        )
    };
    let steps = vec![
        // A request written while the job master was away.
        Step::new("GET", list_root()).json(200, pending()),
        answer_patch(json!({"id": "e5f6", "workers": 2})).status(500, "InternalError", "etcd timeout"),
        // After the backoff: listed again, answered from memory, not scaled again.
        Step::new("GET", list_root()).json(200, pending()),
        answer_patch(json!({"id": "e5f6", "workers": 2})),
        // An expired watch is listed again, a watch the server ends is resumed.
        Step::new("GET", watch_root("20")).raw(
            200,
            events(&[("ERROR", json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}))]),
        ),
        Step::new("GET", list_root()).json(200, list("ConfigMap", "30", vec![root_with("30", Some(("e5f6", 2)), Some(json!({"id": "e5f6", "workers": 2})))])),
        Step::new("GET", watch_root("30")).raw(200, ""),
        Step::new("GET", watch_root("30")).raw(200, events(&[("DELETED", root_with("31", None, None))])),
    ];
    run(steps, |kube| async move {
        Scaler::new(kube, ID, &endpoint, TOKEN).run().await;
    })
    .await;
    assert_eq!(
        *recorder.calls.lock().unwrap(),
        vec![(TOKEN.to_string(), 2)]
    );
}
