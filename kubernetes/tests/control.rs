//! Job control on Kubernetes against the API contract: kill (record, delete the root, wait
//! for the objects, report leftovers), scale (a request in the job's root, the job master's
//! answer awaited, withdrawn at the deadline), gc (by label), doctor
//! (SelfSubjectAccessReviews and the exact fixes), list, status and logs.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use support::mock::{events, list, run, Step, NS};
use support::pods;
use t2_kubernetes::permissions::{DIRECT_DELIVERY, SUBMITTER};
use t2_kubernetes::{doctor, gc, jobs, kill, logs, scale, KubeError};

const ID: &str = "pi-abcd1234";

fn sel_job(id: &str) -> String {
    format!("labelSelector=app.kubernetes.io%2Fname%3Dt2%2Ct2.io%2Fjob%3D{id}")
}

fn core(kind: &str) -> String {
    format!("/api/v1/namespaces/{NS}/{kind}")
}

fn apps(kind: &str) -> String {
    format!("/apis/apps/v1/namespaces/{NS}/{kind}")
}

fn ok_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})
}

fn meta(name: &str, job: &str, component: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"app.kubernetes.io/name": "t2", "t2.io/job": job,
                                                   "app.kubernetes.io/component": component}}})
}

/// The five lists `t2 kill` makes while waiting, answered with `left` (kind → items).
fn inventory(selector: &str, with_pods: bool, left: &[(&str, Vec<Value>)]) -> Vec<Step> {
    let mut kinds = vec![("StatefulSet", apps("statefulsets"))];
    if with_pods {
        kinds.push(("Pod", core("pods")));
    }
    kinds.extend([
        ("Service", core("services")),
        (
            "NetworkPolicy",
            format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"),
        ),
        ("PersistentVolumeClaim", core("persistentvolumeclaims")),
        ("ConfigMap", core("configmaps")),
    ]);
    kinds
        .into_iter()
        .map(|(kind, path)| {
            let items = left
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            Step::new("GET", format!("{path}?&{selector}")).json(200, list(kind, "7", items))
        })
        .collect()
}

fn kill_start() -> Vec<Step> {
    vec![
        Step::new("PATCH", format!("{}/{ID}?", core("configmaps")))
            .check(|b, h| {
                assert_eq!(h["content-type"], "application/merge-patch+json");
                assert_eq!(b["data"]["jobmaster.state"], "KILLED");
                assert_eq!(
                    b["data"]["jobmaster.reason"],
                    "killed by alice with t2 kill"
                );
            })
            .json(200, meta(ID, ID, "job")),
        Step::new("DELETE", format!("{}/{ID}?", core("configmaps")))
            .check(|b, _| assert_eq!(b["propagationPolicy"], "Foreground"))
            .json(200, ok_status()),
    ]
}

/// `t2 kill` reading the root while it waits: still there (held by foregroundDeletion), or
/// gone.
fn root_read(there: bool) -> Step {
    let s = Step::new("GET", format!("{}/{ID}", core("configmaps")));
    if there {
        let mut root = meta(ID, ID, "job");
        root["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
        root["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
        s.json(200, root)
    } else {
        s.status(404, "NotFound", "configmaps \"pi-abcd1234\" not found")
    }
}

#[tokio::test(start_paused = true)]
async fn kill_deletes_the_root_and_waits_until_garbage_collection_removed_everything() {
    let mut steps = kill_start();
    let mut going = meta(&format!("{ID}-0"), ID, "worker");
    going["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    steps.push(root_read(true));
    steps.extend(inventory(
        &sel_job(ID),
        true,
        &[
            ("Pod", vec![going]),
            ("StatefulSet", vec![meta(ID, ID, "worker")]),
        ],
    ));
    steps.push(root_read(false));
    steps.extend(inventory(&sel_job(ID), true, &[]));
    let r = run(steps, |kube| async move {
        kill::kill(&kube, ID, "alice", Duration::from_secs(30), || {}).await
    })
    .await
    .unwrap();
    assert!(r.leftovers.is_empty());
    assert!(
        r.root_gone,
        "the kill waited for the root (after the last pod)"
    );
}

#[tokio::test(start_paused = true)]
async fn kill_reports_what_is_left_at_its_deadline() {
    let mut steps = kill_start();
    let mut stuck = meta(&format!("{ID}-data"), ID, "storage");
    stuck["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    for _ in 0..3 {
        steps.push(root_read(false));
        steps.extend(inventory(
            &sel_job(ID),
            true,
            &[("PersistentVolumeClaim", vec![stuck.clone()])],
        ));
    }
    let r = run(steps, |kube| async move {
        kill::kill(&kube, ID, "alice", Duration::from_secs(2), || {}).await
    })
    .await
    .unwrap();
    assert_eq!(
        kill::describe(&r.leftovers),
        format!("PersistentVolumeClaim/{ID}-data (being deleted)")
    );
}

#[tokio::test]
async fn kill_of_an_unknown_job_says_so_and_deletes_nothing() {
    let steps = vec![
        Step::new("PATCH", format!("{}/{ID}?", core("configmaps"))).status(
            404,
            "NotFound",
            "configmaps \"pi-abcd1234\" not found",
        ),
    ];
    let e = run(steps, |kube| async move {
        kill::kill(&kube, ID, "alice", Duration::from_secs(2), || {
            panic!("no 'deleting' progress for a job that is not there")
        })
        .await
    })
    .await
    .unwrap_err();
    assert_eq!(e.to_string(), format!("no job '{ID}' in namespace '{NS}' (see 't2 list --cluster kubernetes', or pass -n NAMESPACE)"));
}

#[tokio::test]
async fn kill_refuses_a_bad_job_id_without_asking_the_cluster() {
    let e = run(vec![], |kube| async move {
        kill::kill(&kube, "../etc", "alice", Duration::from_secs(2), || {}).await
    })
    .await
    .unwrap_err();
    assert!(e.to_string().starts_with("invalid job ID '../etc'"), "{e}");
}

#[tokio::test]
async fn kill_when_forbidden_names_the_verb_and_resource() {
    let steps = vec![
        Step::new("PATCH", format!("{}/{ID}?", core("configmaps"))).status(
            403,
            "Forbidden",
            "nope",
        ),
    ];
    let e = run(steps, |kube| async move {
        kill::kill(&kube, ID, "alice", Duration::from_secs(2), || {}).await
    })
    .await
    .unwrap_err();
    assert!(matches!(e, KubeError::Forbidden { .. }));
    assert!(
        e.to_string().starts_with(&format!(
            "forbidden: you may not patch configmaps in namespace '{NS}' (object '{ID}')"
        )),
        "{e}"
    );
}

fn root(id: &str, data: Value) -> Value {
    let mut r = meta(id, id, "job");
    r["apiVersion"] = json!("v1");
    r["kind"] = json!("ConfigMap");
    r["data"] = data;
    r
}

/// A root with resourceVersion `rv`.
fn root_at(rv: &str, data: Value) -> Value {
    let mut r = root(ID, data);
    r["metadata"]["resourceVersion"] = json!(rv);
    r
}

fn watch_root(rv: &str) -> String {
    format!(
        "{}?&watch=true&timeoutSeconds=290&fieldSelector=metadata.name%3D{ID}&allowWatchBookmarks=true&resourceVersion={rv}",
        core("configmaps")
    )
}

fn running_root() -> Value {
    json!({"workers": "4", "workers-per-pod": "2", "jobmaster.state": "RUNNING"})
}

/// The request patch of `t2 scale ID workers`: checks it and keeps the request's ID in `id`.
fn request_patch(workers: u32, id: &Arc<Mutex<String>>) -> Step {
    let id = id.clone();
    Step::new("PATCH", format!("{}/{ID}?", core("configmaps")))
        .check(move |b, _| {
            let data = b["data"].as_object().expect("data");
            assert_eq!(data.len(), 1, "only the request: {b}");
            let req: Value = serde_json::from_str(data["scale.request"].as_str().unwrap()).unwrap();
            assert_eq!(req["workers"], workers, "{req}");
            let rid = req["id"].as_str().unwrap();
            assert!(
                rid.len() == 16 && rid.chars().all(|c| c.is_ascii_hexdigit()),
                "{rid}"
            );
            *id.lock().unwrap() = rid.to_string();
        })
        .json(200, root_at("6", running_root()))
}

/// The root as the job master leaves it after answering request `id` with `answer`.
fn answered(rv: &str, id: &Arc<Mutex<String>>, workers: u32, answer: Value) -> Value {
    let rid = id.lock().unwrap().clone();
    let mut a = answer;
    a["id"] = json!(rid);
    let mut data = running_root();
    data["scale.request"] = json!(json!({"id": rid, "workers": workers}).to_string());
    data["scale.answer"] = json!(a.to_string());
    root_at(rv, data)
}

#[tokio::test]
async fn scale_asks_the_job_master_through_the_root_and_waits_for_its_answer() {
    let rid = Arc::new(Mutex::new(String::new()));
    let (r1, r2) = (rid.clone(), rid.clone());
    let steps = vec![
        Step::new("GET", format!("{}/{ID}", core("configmaps")))
            .json(200, root_at("5", running_root())),
        request_patch(10, &rid),
        // The first watch sees an unrelated change (an older request's answer), then ends; the
        // second resumes from it and sees the answer.
        Step::new("GET", watch_root("6")).later(200, move || {
            let mut data = running_root();
            data["scale.request"] =
                json!(json!({"id": *r1.lock().unwrap(), "workers": 10}).to_string());
            data["scale.answer"] =
                json!(json!({"id": "0000000000000000", "workers": 8}).to_string());
            events(&[("MODIFIED", root_at("7", data))]).into_bytes()
        }),
        Step::new("GET", watch_root("7")).later(200, move || {
            events(&[("MODIFIED", answered("8", &r2, 10, json!({"workers": 10})))]).into_bytes()
        }),
    ];
    let pods = run(
        steps,
        |kube| async move { scale::scale(&kube, ID, 10).await },
    )
    .await
    .unwrap();
    assert_eq!(pods, 5);
}

#[tokio::test]
async fn scale_reports_the_job_masters_refusal_on_one_line() {
    let rid = Arc::new(Mutex::new(String::new()));
    let r1 = rid.clone();
    let steps = vec![
        Step::new("GET", format!("{}/{ID}", core("configmaps"))).json(200, root_at("5", running_root())),
        request_patch(6, &rid),
        Step::new("GET", watch_root("6")).later(200, move || {
            events(&[("MODIFIED", answered("7", &r1, 6, json!({"error": "job pi-abcd1234 is already being scaled from 4 to 8 workers; try again once that is done"})))]).into_bytes()
        }),
    ];
    let e = run(
        steps,
        |kube| async move { scale::scale(&kube, ID, 6).await },
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("cannot scale job {ID}: the job master refused: job {ID} is already being scaled from 4 to 8 workers; try again once that is done")
    );
}

#[tokio::test(start_paused = true)]
async fn scale_withdraws_an_unanswered_request_at_the_deadline_and_says_what_to_check() {
    let rid = Arc::new(Mutex::new(String::new()));
    let r1 = rid.clone();
    let steps = vec![
        Step::new("GET", format!("{}/{ID}", core("configmaps")))
            .json(200, root_at("5", running_root())),
        request_patch(6, &rid),
        // The job master never answers: the watch stays open past the deadline.
        Step::new("GET", watch_root("6"))
            .raw(200, "")
            .delay(Duration::from_secs(600)),
        Step::new("GET", format!("{}/{ID}", core("configmaps"))).later(200, move || {
            let mut data = running_root();
            data["scale.request"] =
                json!(json!({"id": *r1.lock().unwrap(), "workers": 6}).to_string());
            serde_json::to_vec(&root_at("9", data)).unwrap()
        }),
        Step::new("PATCH", format!("{}/{ID}?", core("configmaps")))
            .check(|b, _| {
                assert_eq!(
                    b,
                    &json!({"metadata": {"resourceVersion": "9"}, "data": {"scale.request": null}})
                )
            })
            .json(200, root_at("10", running_root())),
    ];
    let e = run(steps, |kube| async move {
        scale::scale_within(&kube, ID, 6, Duration::from_secs(10)).await
    })
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("cannot scale job {ID}: its job master did not answer within 10s, so the request was withdrawn; check that pod {ID}-jm-0 runs and what it logs ('kubectl -n {NS} get pod {ID}-jm-0', 'kubectl -n {NS} logs {ID}-jm-0'), then try again")
    );
}

#[tokio::test]
async fn scale_refuses_partial_pods_and_finished_jobs() {
    let get = |state: &str| {
        Step::new("GET", format!("{}/{ID}", core("configmaps"))).json(
            200,
            root(
                ID,
                json!({"workers": "4", "workers-per-pod": "2", "jobmaster.state": state}),
            ),
        )
    };
    let e = run(vec![get("RUNNING")], |kube| async move {
        scale::scale(&kube, ID, 7).await
    })
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "7 workers do not fill whole pods of 2 workers; use a multiple of 2"
    );
    let e = run(vec![get("COMPLETED")], |kube| async move {
        scale::scale(&kube, ID, 8).await
    })
    .await
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("job {ID} is COMPLETED; only a running job can be scaled")
    );
}

#[tokio::test]
async fn gc_deletes_finished_roots_and_orphans_of_missing_roots_only() {
    let roots = list(
        "ConfigMap",
        "3",
        vec![
            root("done-00000001", json!({"jobmaster.state": "COMPLETED"})),
            root("live-00000002", json!({"jobmaster.state": "RUNNING"})),
        ],
    );
    let all = "labelSelector=app.kubernetes.io%2Fname%3Dt2";
    let mut steps = vec![Step::new(
        "GET",
        format!(
            "{}?&labelSelector=app.kubernetes.io%2Fname%3Dt2%2Capp.kubernetes.io%2Fcomponent%3Djob",
            core("configmaps")
        ),
    )
    .json(200, roots)];
    steps.extend(inventory(
        all,
        false,
        &[
            (
                "StatefulSet",
                vec![
                    meta("done-00000001", "done-00000001", "worker"),
                    meta("live-00000002", "live-00000002", "worker"),
                    meta("lost-00000003", "lost-00000003", "worker"),
                ],
            ),
            (
                "ConfigMap",
                vec![
                    meta("done-00000001", "done-00000001", "job"),
                    meta("live-00000002", "live-00000002", "job"),
                ],
            ),
        ],
    ));
    for (path, name) in [
        (core("configmaps"), "done-00000001"),
        (apps("statefulsets"), "lost-00000003"),
    ] {
        steps.push(
            Step::new("DELETE", format!("{path}/{name}?"))
                .check(|b, _| assert_eq!(b["propagationPolicy"], "Background"))
                .json(200, ok_status()),
        );
    }
    let sweep = run(steps, |kube| async move { gc::gc(&kube, false).await })
        .await
        .unwrap();
    assert_eq!(
        sweep.jobs,
        vec![
            (
                "done-00000001".to_string(),
                "COMPLETED, but its objects are still there".to_string()
            ),
            (
                "lost-00000003".to_string(),
                "its root ConfigMap is gone".to_string()
            ),
        ]
    );
    assert_eq!(sweep.deleted.len(), 2);
}

fn ssar(allowed: bool) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
           "spec": {}, "status": {"allowed": allowed}})
}

#[tokio::test]
async fn doctor_checks_every_permission_and_prints_the_exact_fix() {
    let mut steps = vec![Step::new("GET", format!("/api/v1/namespaces/{NS}")).json(
        200,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}),
    )];
    let review = |p: &'static t2_kubernetes::permissions::Permission, allowed: bool| {
        let want = (p.verb, p.group, p.resource, p.subresource);
        Step::new(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews?",
        )
        .check(move |b, _| {
            let ra = &b["spec"]["resourceAttributes"];
            assert_eq!(ra["namespace"], NS);
            assert_eq!(ra["verb"], want.0);
            assert_eq!(ra["group"], want.1);
            assert_eq!(ra["resource"], want.2);
            assert_eq!(ra["subresource"].as_str(), want.3);
        })
        .json(201, ssar(allowed))
    };
    for p in SUBMITTER {
        steps.push(review(p, p.resource != "rolebindings"));
    }
    steps.push(
        Step::new(
            "GET",
            format!(
                "{}?&labelSelector=app.kubernetes.io%2Fname%3Dt2-uploader",
                core("services")
            ),
        )
        .json(200, list("Service", "1", vec![])),
    );
    // No uploader: direct delivery's exec is checked too.
    for p in DIRECT_DELIVERY {
        steps.push(review(p, false));
    }
    let checks = run(
        steps,
        |kube| async move { doctor::doctor(&kube, "alice").await },
    )
    .await
    .unwrap();
    let text = doctor::render(&checks);
    assert_eq!(
        text,
        format!(
            "ok    namespace '{NS}' exists\n\
             FAIL  you may not create rolebindings.rbac.authorization.k8s.io in '{NS}' (needed by submit (binding that Role to the job's ServiceAccount))\n\
             \x20     fix: kubectl -n {NS} create rolebinding t2-submitter-alice --role=t2-submitter --user=alice  (the Role is in deploy/rbac.yaml: kubectl apply -k deploy/)\n\
             ok    no uploader: packages are streamed into each pod (fine for small jobs; deploy/uploader.yaml serves many workers better)\n\
             FAIL  you may not create pods/exec in '{NS}' (needed by submit (direct package delivery: streaming it into the job's pods))\n\
             \x20     fix: kubectl -n {NS} create rolebinding t2-direct-delivery-alice --role=t2-direct-delivery --user=alice  (deploy/rbac.yaml), or deploy an uploader (deploy/uploader.yaml)\n\
             FAIL  you may not get pods/exec in '{NS}' (needed by submit (direct package delivery over WebSocket))\n\
             \x20     fix: (same as above)\n"
        )
    );
}

#[tokio::test]
async fn doctor_on_a_missing_namespace_says_how_to_create_it() {
    let steps = vec![Step::new("GET", format!("/api/v1/namespaces/{NS}")).status(
        404,
        "NotFound",
        "namespaces \"t2-jobs\" not found",
    )];
    let checks = run(
        steps,
        |kube| async move { doctor::doctor(&kube, "alice").await },
    )
    .await
    .unwrap();
    assert_eq!(
        doctor::render(&checks),
        format!(
            "FAIL  namespace '{NS}' does not exist\n      fix: kubectl create namespace {NS}\n"
        )
    );
}

fn pod_of(name: &str, role: &str, status: Value) -> Value {
    pods::pod(ID, name, role, "5", status)
}

#[tokio::test]
async fn list_and_status_read_roots_pods_and_worker_records() {
    let steps = vec![
        Step::new(
            "GET",
            format!("{}?&labelSelector=app.kubernetes.io%2Fname%3Dt2%2Capp.kubernetes.io%2Fcomponent%3Djob", core("configmaps")),
        )
        .json(
            200,
            list(
                "ConfigMap",
                "3",
                vec![
                    root("old-00000001", json!({"workers": "2", "owner": "bob", "submitted-at": "2025-01-01T00:00:00Z", "jobmaster.state": "COMPLETED"})),
                    root(ID, json!({"workers": "4", "owner": "alice", "submitted-at": "2025-02-01T00:00:00Z"})),
                ],
            ),
        ),
        Step::new("GET", format!("{}/{ID}", core("configmaps"))).json(
            200,
            root(ID, json!({"workers": "2", "workers-per-pod": "1", "owner": "alice", "jobmaster.state": "RUNNING",
                            "worker.1": "{\"id\":1,\"state\":\"RESTARTED\",\"restart_count\":1,\"host\":\"10.0.0.8\",\"port\":4000,\"node\":\"n2\"}",
                            "worker.0": "{\"id\":0,\"state\":\"STARTED\",\"restart_count\":0,\"host\":\"10.0.0.7\",\"port\":4000,\"node\":\"n1\"}"})),
        ),
        Step::new("GET", format!("{}?&{}", core("pods"), sel_job(ID))).json(
            200,
            list("Pod", "9", vec![pod_of(&format!("{ID}-1"), "worker", pods::waiting("worker-0", "CrashLoopBackOff", "")), pod_of(&format!("{ID}-0"), "worker", pods::running()), pod_of(&format!("{ID}-jm-0"), "jobmaster", pods::running())]),
        ),
    ];
    let (rows, status) = run(steps, |kube| async move {
        (
            jobs::list_jobs(&kube).await.unwrap(),
            jobs::job_status(&kube, ID).await.unwrap(),
        )
    })
    .await;
    assert_eq!(
        rows.iter()
            .map(|r| (r.id.as_str(), r.state.as_str()))
            .collect::<Vec<_>>(),
        vec![(ID, "STARTING"), ("old-00000001", "COMPLETED")]
    );
    assert_eq!(status.state, "RUNNING");
    assert_eq!(
        status
            .pods
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        vec![format!("{ID}-jm-0"), format!("{ID}-0"), format!("{ID}-1")]
    );
    assert_eq!(status.pods[2].waiting.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        status
            .worker_records
            .iter()
            .map(|w| (w.id, w.restart_count))
            .collect::<Vec<_>>(),
        vec![(0, 0), (1, 1)]
    );
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["worker_records"][1]["state"], "RESTARTED");
    let text = jobs::render_status(&status, false, &|t| format!("<{t}>"));
    assert!(
        text.starts_with(&format!("job {ID} ({NS}) RUNNING\n")),
        "{text}"
    );
    assert!(text.contains(" AGE "), "{text}");
    let wide = jobs::render_status(&status, true, &|t| format!("<{t}>"));
    assert!(
        wide.lines().nth(2).is_some_and(|h| h.ends_with(" IP")),
        "{wide}"
    );
}

#[tokio::test]
async fn logs_of_one_worker_come_from_its_ordinal_and_container_without_a_prefix() {
    let steps = vec![
        Step::new("GET", format!("{}/{ID}", core("configmaps")))
            .json(200, root(ID, json!({"workers-per-pod": "2"}))),
        Step::new("GET", format!("{}?&{}", core("pods"), sel_job(ID))).json(
            200,
            list(
                "Pod",
                "9",
                vec![
                    pod_of(&format!("{ID}-1"), "worker", pods::running()),
                    pod_of(&format!("{ID}-jm-0"), "jobmaster", pods::running()),
                ],
            ),
        ),
        Step::new(
            "GET",
            format!("{}/{ID}-1/log?&container=worker-1", core("pods")),
        )
        .raw(200, "hello from 3\nbye\n"),
    ];
    let lines = run(steps, |kube| async move {
        let targets = logs::log_targets(&kube, ID, Some(3)).await.unwrap();
        let mut lines = Vec::new();
        logs::print_logs(&kube, ID, &targets, false, &mut |l| {
            lines.push(l.to_string())
        })
        .await
        .unwrap();
        lines
    })
    .await;
    // One worker asked for: its lines as they are (no prefix), as locally.
    assert_eq!(lines, vec!["hello from 3", "bye"]);
}
