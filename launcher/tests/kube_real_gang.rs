//! Gang scheduling and queues on a real control plane (issue 18). No Volcano or Kueue runs
//! there: the PodGroup kind is a stand-in CRD with Volcano's v1beta1 schema
//! (tests/k8s/crds/volcano-podgroup.yaml, installed here), and its status is written by the
//! test, as Volcano's scheduler would. A Volcano job's PodGroup is owned by the root as its
//! controller and goes with it (`t2 kill`; the rollback after a queue timeout); its pods,
//! which no `volcano` scheduler takes, are reported as queued with the PodGroup's reason, not
//! as failed, until `queue_timeout` ends the submit in one readable line; the job master's
//! Role lets it set `minMember` on `t2 scale`; a Kueue job's StatefulSets and pods carry the
//! queue label and `t2 scale` refuses it; the owner label is the cluster's name for the
//! submitter (SelfSubjectReview); the user's labels and annotations are on the pods.

mod kube_real_support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DynamicObject, ListParams};
use kube_real_support::{job_id, kubectl, repo, text, TestNs};
use t2_kubernetes::manifests::gang::podgroup_resource;

const DEADLINE: Duration = Duration::from_secs(240);

/// Installs the stand-in PodGroup CRD (idempotent) and waits until it is served.
async fn install_podgroup_crd() {
    let crd = repo().join("tests/k8s/crds/volcano-podgroup.yaml");
    let out = kubectl(&["apply", "-f", crd.to_str().expect("utf-8 path")], None).await;
    assert!(
        out.status.success(),
        "apply the PodGroup CRD: {}",
        text(&out)
    );
    let out = kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "crd/podgroups.scheduling.volcano.sh",
            "--timeout=60s",
        ],
        None,
    )
    .await;
    assert!(
        out.status.success(),
        "the PodGroup CRD established: {}",
        text(&out)
    );
}

/// A job whose workers (those the submit starts pass a barrier) run until `stop` exists;
/// `kubernetes` is the job.yaml's `kubernetes` section.
fn until_file_job(dir: &Path, workers: u32, stop: &Path, kubernetes: &str) -> PathBuf {
    let job = dir.join("gang-job");
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(
        job.join("job.yaml"),
        format!(
            "name: gang-job\nworkers: {workers}\nmax_restarts: 2\nenv:\n  STOP_FILE: {}\ncommand: [./run.sh]\nkubernetes: {kubernetes}\n",
            stop.display()
        ),
    )
    .unwrap();
    let script = job.join("run.sh");
    std::fs::write(
        &script,
        "#!/usr/bin/env bash\nset -euo pipefail\necho \"worker ${T2_WORKER_ID} of ${T2_NUM_WORKERS} up (restart ${T2_RESTART_COUNT})\"\nif [ \"$T2_WORKER_ID\" -lt WORKERS_AT_SUBMIT ]; then echo \"barrier: $(t2 worker barrier --timeout 120s)\"; fi\nwhile [ ! -e \"$STOP_FILE\" ]; do sleep 0.2; done\necho \"worker ${T2_WORKER_ID}: stop file seen\"\n"
            .replace("WORKERS_AT_SUBMIT", &workers.to_string()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    job
}

/// `t2 submit kubernetes JOB ARGS` in the background.
fn submit_in_background(
    ns: &TestNs,
    job: &Path,
    extra: &[&str],
) -> tokio::task::JoinHandle<std::io::Result<Output>> {
    let mut c = ns.t2();
    c.args([
        "submit",
        "kubernetes",
        job.to_str().unwrap(),
        "-n",
        &ns.name,
    ])
    .args(extra);
    tokio::spawn(async move { c.output().await })
}

/// Waits for a background submit to end (hang guard `deadline`).
async fn ended(
    ns: &TestNs,
    submit: tokio::task::JoinHandle<std::io::Result<Output>>,
    deadline: Duration,
) -> Output {
    match tokio::time::timeout(deadline, submit).await {
        Ok(o) => o.expect("the submit's task").expect("t2 output"),
        Err(_) => panic!(
            "the submit did not end within {deadline:?}\n{}",
            ns.runtime.report()
        ),
    }
}

fn podgroups(ns: &TestNs) -> Api<DynamicObject> {
    Api::namespaced_with(ns.client.clone(), &ns.name, &podgroup_resource())
}

/// The one PodGroup t2 made in the namespace, once it exists, as JSON.
async fn the_podgroup(ns: &TestNs) -> serde_json::Value {
    let api = podgroups(ns);
    ns.until("the job's PodGroup", DEADLINE, || async {
        let list = api.list(&ListParams::default()).await.ok()?;
        let pg = list.items.into_iter().next()?;
        serde_json::to_value(pg).ok()
    })
    .await
}

/// Checks a PodGroup's owner (the root, as its controller), size and queue.
async fn check_podgroup(ns: &TestNs, pg: &serde_json::Value, min_member: i64, queue: &str) {
    let id = pg["metadata"]["name"].as_str().expect("a name").to_string();
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let root_uid = cms.get(&id).await.unwrap().metadata.uid.unwrap();
    let owner = &pg["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ConfigMap", "{pg}");
    assert_eq!(owner["name"], id.as_str(), "{pg}");
    assert_eq!(owner["uid"], root_uid.as_str(), "owned by the root: {pg}");
    assert_eq!(owner["controller"], true, "{pg}");
    assert_eq!(owner["blockOwnerDeletion"], true, "{pg}");
    assert_eq!(pg["spec"]["minMember"], min_member, "{pg}");
    assert_eq!(pg["spec"]["queue"], queue, "{pg}");
    assert_eq!(pg["metadata"]["labels"]["t2.io/job"], id.as_str(), "{pg}");
    assert_eq!(
        pg["metadata"]["labels"]["app.kubernetes.io/instance"],
        id.as_str(),
        "{pg}"
    );
}

/// The job's pods, once there are `n`.
async fn pods_of(ns: &TestNs, id: &str, n: usize) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let selector = format!("t2.io/job={id}");
    ns.until(&format!("{n} pods of job {id}"), DEADLINE, || async {
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .ok()?;
        (list.items.len() == n).then_some(list.items)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_held_volcano_gang_is_queued_with_its_podgroups_reason_then_times_out_cleanly() {
    install_podgroup_crd().await;
    let ns = TestNs::new("gangq").await;
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 2, &stop, "{gang: volcano, queue: research}");
    let submit = submit_in_background(&ns, &job, &["-D", "kubernetes.queue_timeout=60s"]);
    let pg = the_podgroup(&ns).await;
    let id = pg["metadata"]["name"].as_str().unwrap().to_string();
    check_podgroup(&ns, &pg, 3, "research").await;
    // Every pod of the job is in the gang; no `volcano` scheduler runs, so they are held.
    for p in pods_of(&ns, &id, 3).await {
        let name = p.metadata.name.clone().unwrap();
        let spec = p.spec.unwrap();
        assert_eq!(spec.scheduler_name.as_deref(), Some("volcano"), "{name}");
        assert_eq!(spec.node_name, None, "{name} is not placed");
        let annotations = p.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations.get("scheduling.k8s.io/group-name"),
            Some(&id),
            "{name}"
        );
    }
    // What Volcano's scheduler writes when the gang does not fit.
    let status = r#"{"status":{"phase":"Pending","conditions":[{"type":"Unschedulable","status":"True","reason":"NotEnoughResources","message":"3/3 tasks in gang unschedulable: pod group is not ready, 3 Pending, 3 minAvailable","transitionID":"t1"}]}}"#;
    let out = kubectl(
        &[
            "patch", "podgroup", &id, "-n", &ns.name, "--type", "merge", "-p", status,
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let out = ended(&ns, submit, DEADLINE).await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&format!(
            "{id}: queued in research (NotEnoughResources: 3/3 tasks in gang unschedulable: pod group is not ready, 3 Pending, 3 minAvailable; PodGroup phase Pending)"
        )),
        "the PodGroup's reason: {all}"
    );
    assert!(
        all.contains(
            "still queued in research after 1m (kubernetes.queue_timeout): NotEnoughResources"
        ),
        "{all}"
    );
    assert!(
        all.contains(&format!("'kubectl describe podgroup {id}'")),
        "{all}"
    );
    assert!(
        !all.contains("could not be scheduled"),
        "queued, not unschedulable: {all}"
    );
    // The submit removed the job again: the PodGroup goes with the root.
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
    assert!(podgroups(&ns).get_opt(&id).await.unwrap().is_none());
}

// `t2 kill` while the job's `t2 submit` still runs (waiting in the queue): the kill goes to
// Kubernetes, not to the submit's staging folder (which, under `$T2_HOME/jobs/` until stop 25,
// made `t2 kill ID` kill a phantom local job and leave the whole Kubernetes job running), and
// the foreground deletion takes the PodGroup with the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_volcano_jobs_podgroup_goes_with_t2_kill() {
    install_podgroup_crd().await;
    let ns = TestNs::new("gangk").await;
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 1, &stop, "{gang: volcano}");
    let submit = submit_in_background(&ns, &job, &["-D", "kubernetes.queue_timeout=10m"]);
    let pg = the_podgroup(&ns).await;
    let id = pg["metadata"]["name"].as_str().unwrap().to_string();
    check_podgroup(&ns, &pg, 2, "default").await;
    // The running submit's package folder is no local job.
    assert!(
        !ns.home.path().join("jobs").join(&id).exists(),
        "the Kubernetes submit staged its job among the local jobs"
    );
    let out = ns.run(&["kill", &id], Duration::from_secs(120)).await;
    assert!(
        out.status.success(),
        "{}\nruntime:\n{}",
        text(&out),
        ns.runtime.report()
    );
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
    assert!(podgroups(&ns).get_opt(&id).await.unwrap().is_none());
    // The submit that waited for the queued job ends too.
    let out = ended(&ns, submit, DEADLINE).await;
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_job_master_keeps_the_podgroup_as_big_as_the_job_on_scale() {
    install_podgroup_crd().await;
    let ns = TestNs::new("gangs").await;
    let stop = ns.home.path().join("stop");
    // A Volcano gang whose pods the cluster's own scheduler places (no Volcano here), with
    // the user's labels and annotations.
    let job = until_file_job(
        ns.home.path(),
        2,
        &stop,
        "{gang: volcano, queue: research, scheduler_name: default-scheduler, labels: {example.com/team: ml-infra}, annotations: {example.com/contact: alice@example.com}}",
    );
    let out = ns
        .run(
            &[
                "submit",
                "kubernetes",
                job.to_str().unwrap(),
                "--detach",
                "-D",
                "kubernetes.package_timeout=60s",
            ],
            DEADLINE,
        )
        .await;
    assert!(
        out.status.success(),
        "{}\nruntime:\n{}",
        text(&out),
        ns.runtime.report()
    );
    let id = job_id(&out);
    check_podgroup(
        &ns,
        &serde_json::to_value(podgroups(&ns).get(&id).await.unwrap()).unwrap(),
        3,
        "research",
    )
    .await;
    // The owner label is who the cluster says the submitter is.
    let who = kubectl(
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
        None,
    )
    .await;
    assert!(who.status.success(), "{}", text(&who));
    let owner = t2_kubernetes::checks::label_value(String::from_utf8_lossy(&who.stdout).trim());
    for p in pods_of(&ns, &id, 3).await {
        let name = p.metadata.name.clone().unwrap();
        let labels = p.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("t2.io/owner"),
            Some(&owner),
            "{name}: {labels:?}"
        );
        assert_eq!(
            labels.get("example.com/team").map(String::as_str),
            Some("ml-infra"),
            "{name}"
        );
        assert_eq!(
            labels.get("app.kubernetes.io/instance"),
            Some(&id),
            "{name}"
        );
        assert_eq!(
            labels.get("app.kubernetes.io/version").map(String::as_str),
            Some(env!("CARGO_PKG_VERSION")),
            "{name}"
        );
        let annotations = p.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.get("example.com/contact").map(String::as_str),
            Some("alice@example.com"),
            "{name}"
        );
        assert_eq!(
            p.spec.unwrap().scheduler_name.as_deref(),
            Some("default-scheduler"),
            "{name}"
        );
    }
    ns.until("every worker past its barrier", DEADLINE, || async {
        (0..2)
            .all(|w| {
                ns.runtime
                    .log(&format!("{id}-{w}"), "worker-0")
                    .contains("barrier: ")
            })
            .then_some(())
    })
    .await;
    // Scaled by the job master, under its own Role: minMember first, then the StatefulSet.
    let out = ns.run(&["scale", &id, "3"], Duration::from_secs(120)).await;
    let all = text(&out);
    assert!(
        out.status.success(),
        "{all}\nruntime:\n{}",
        ns.runtime.report()
    );
    let pg = serde_json::to_value(podgroups(&ns).get(&id).await.unwrap()).unwrap();
    assert_eq!(
        pg["spec"]["minMember"], 4,
        "3 worker pods and the job master: {pg}"
    );
    let sts: Api<StatefulSet> = Api::namespaced(ns.client.clone(), &ns.name);
    assert_eq!(
        sts.get_scale(&id).await.unwrap().spec.unwrap().replicas,
        Some(3)
    );
    std::fs::write(&stop, "stop").unwrap();
    ns.assert_all_gone(&id, Duration::from_secs(120)).await;
    assert!(podgroups(&ns).get_opt(&id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kueue_jobs_workloads_carry_the_queue_label_and_scale_is_refused() {
    let ns = TestNs::new("kueue").await;
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 2, &stop, "{gang: kueue, queue: team-a}");
    // No Kueue here: nothing gates the pods, so the job runs.
    let out = ns
        .run(
            &["submit", "kubernetes", job.to_str().unwrap(), "--detach"],
            DEADLINE,
        )
        .await;
    assert!(
        out.status.success(),
        "{}\nruntime:\n{}",
        text(&out),
        ns.runtime.report()
    );
    let id = job_id(&out);
    let sts: Api<StatefulSet> = Api::namespaced(ns.client.clone(), &ns.name);
    for name in [id.clone(), format!("{id}-jm")] {
        let s = sts.get(&name).await.unwrap();
        let labels = s.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get("kueue.x-k8s.io/queue-name").map(String::as_str),
            Some("team-a"),
            "StatefulSet {name}"
        );
    }
    for p in pods_of(&ns, &id, 3).await {
        let labels = p.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get("kueue.x-k8s.io/queue-name").map(String::as_str),
            Some("team-a"),
            "pod {:?}",
            p.metadata.name
        );
    }
    let out = ns.run(&["scale", &id, "3"], Duration::from_secs(120)).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        err.contains(&format!("cannot scale job {id}: it runs under Kueue")),
        "{}",
        text(&out)
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("Kueue")).count(),
        1,
        "one line: {err}"
    );
    assert_eq!(
        sts.get_scale(&id).await.unwrap().spec.unwrap().replicas,
        Some(2),
        "not scaled"
    );
    std::fs::write(&stop, "stop").unwrap();
    ns.assert_all_gone(&id, Duration::from_secs(120)).await;
}
