//! A job's lifecycle and network on a real control plane (issue 18): the NetworkPolicies are
//! made, owned by the root as its controller, and collected with it (and not made with
//! `kubernetes.network_policy: false`); `t2 kill` deletes in the foreground, so the root is
//! deleted after the job's last pod (compared by the etcd revisions of the deletions); a
//! finished job stays for `ttl_after_finished` (pods, logs, `t2 gc` leaves it) and then goes;
//! a worker pod evicted through the Eviction API (condition `DisruptionTarget`) is not counted
//! against `max_restarts = 0`; `--dry-run=server` is judged by the API server's admission
//! (Pod Security `restricted` enforced, a quota) and creates nothing.

mod kube_real_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, EvictParams, ListParams, WatchEvent, WatchParams};
use kube_real_support::{kubectl, text, TestNs};

const DEADLINE: Duration = Duration::from_secs(240);

/// A job whose workers run until `stop` exists, then complete (no barrier: a worker made
/// again after an eviction just runs on).
fn until_file_job(dir: &Path, workers: u32, max_restarts: u32, stop: &Path) -> PathBuf {
    let job = dir.join("until-stop");
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(
        job.join("job.yaml"),
        format!(
            "name: until-stop\nworkers: {workers}\nmax_restarts: {max_restarts}\nenv:\n  STOP_FILE: {}\ncommand: [./run.sh]\n",
            stop.display()
        ),
    )
    .unwrap();
    let script = job.join("run.sh");
    std::fs::write(
        &script,
        "#!/usr/bin/env bash\nset -euo pipefail\necho \"worker ${T2_WORKER_ID} of ${T2_NUM_WORKERS} up (restart ${T2_RESTART_COUNT})\"\nwhile [ ! -e \"$STOP_FILE\" ]; do sleep 0.2; done\necho \"worker ${T2_WORKER_ID}: stop file seen\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    job
}

async fn wait_up(ns: &TestNs, id: &str, workers: u32) {
    ns.until("every worker up", DEADLINE, || async {
        (0..workers)
            .all(|w| {
                ns.runtime
                    .log(&format!("{id}-{w}"), "worker-0")
                    .contains("up (restart")
            })
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_network_policies_are_owned_by_the_root_and_collected_with_it() {
    let ns = TestNs::new("netpol").await;
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 2, 2, &stop);
    let id = ns.submit_detached(&job, &[], DEADLINE).await;
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let root_uid = cms.get(&id).await.unwrap().metadata.uid.unwrap();
    let nps: Api<NetworkPolicy> = Api::namespaced(ns.client.clone(), &ns.name);
    for (name, role) in [(id.clone(), "worker"), (format!("{id}-jm"), "jobmaster")] {
        let np = nps
            .get(&name)
            .await
            .unwrap_or_else(|e| panic!("NetworkPolicy {name}: {e}"));
        let owner = &np.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.uid, root_uid, "{name} owned by the root");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        let spec = np.spec.unwrap();
        let selected = spec.pod_selector.unwrap().match_labels.unwrap();
        assert_eq!(selected["t2.io/role"], role);
        assert_eq!(selected["t2.io/job"], id);
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
        let rule = &spec.ingress.unwrap()[0];
        let from = rule.from.as_ref().unwrap()[0].pod_selector.clone().unwrap();
        let from = from.match_labels.unwrap();
        assert_eq!(from["t2.io/job"], id, "{name}: only the job's own pods");
        if role == "jobmaster" {
            assert_eq!(
                from["t2.io/role"], "worker",
                "the job master's port: workers only"
            );
            assert_eq!(rule.ports.as_ref().unwrap().len(), 1);
        }
    }
    wait_up(&ns, &id, 2).await;
    std::fs::write(&stop, "stop").unwrap();
    // The suite's conf removes a finished job at once (ttl_after_finished 0s): the policies
    // go with the root, by garbage collection.
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
    assert!(nps.get_opt(&id).await.unwrap().is_none());
    // Turned off: none is made.
    let out = ns
        .run(
            &[
                "submit",
                "kubernetes",
                job.to_str().unwrap(),
                "--dry-run",
                "-D",
                "kubernetes.network_policy=false",
            ],
            DEADLINE,
        )
        .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("kind: NetworkPolicy"));
}

/// The etcd revision of a deletion event (resourceVersions are etcd revisions on a real API
/// server, one counter for every object).
fn revision(rv: Option<&String>) -> u64 {
    rv.and_then(|v| v.parse().ok())
        .expect("a numeric resourceVersion")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_deletes_in_the_foreground_so_the_root_goes_after_the_last_pod() {
    let ns = TestNs::new("fgkill").await;
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 2, 2, &stop);
    let id = ns.submit_detached(&job, &[], DEADLINE).await;
    wait_up(&ns, &id, 2).await;
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let pod_rv = pods
        .list(&ListParams::default().labels(&format!("t2.io/job={id}")))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    assert_eq!(
        pods.list(&ListParams::default().labels(&format!("t2.io/job={id}")))
            .await
            .unwrap()
            .items
            .len(),
        3,
        "two worker pods and the job master's"
    );
    let root_rv = cms
        .get(&id)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut pod_events = pods
        .watch(
            &WatchParams::default().labels(&format!("t2.io/job={id}")),
            &pod_rv,
        )
        .await
        .unwrap()
        .boxed();
    let mut root_events = cms
        .watch(
            &WatchParams::default().fields(&format!("metadata.name={id}")),
            &root_rv,
        )
        .await
        .unwrap()
        .boxed();
    let out = ns.run(&["kill", &id], Duration::from_secs(120)).await;
    let all = text(&out);
    assert!(
        out.status.success(),
        "{all}\nruntime:\n{}",
        ns.runtime.report()
    );
    assert!(all.contains("deleting it in the foreground"), "{all}");
    assert!(all.contains("it is gone: its last pod stopped"), "{all}");
    // When the kill returns, nothing of the job is left: not a pod, not the root.
    assert!(cms.get_opt(&id).await.unwrap().is_none());
    assert!(
        ns.leftovers(&id).await.is_empty(),
        "{:?}",
        ns.leftovers(&id).await
    );
    // The root was held (foregroundDeletion) and deleted after every pod.
    let mut pod_deleted = Vec::new();
    while pod_deleted.len() < 3 {
        match tokio::time::timeout(Duration::from_secs(30), pod_events.next()).await {
            Ok(Some(Ok(WatchEvent::Deleted(p)))) => {
                pod_deleted.push(revision(p.metadata.resource_version.as_ref()))
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("pod watch ended before 3 deletions: {other:?}"),
        }
    }
    let mut held = false;
    let root_deleted = loop {
        match tokio::time::timeout(Duration::from_secs(30), root_events.next()).await {
            Ok(Some(Ok(WatchEvent::Modified(cm)))) => {
                held |= cm.metadata.deletion_timestamp.is_some()
                    && cm
                        .metadata
                        .finalizers
                        .iter()
                        .flatten()
                        .any(|f| f == "foregroundDeletion");
            }
            Ok(Some(Ok(WatchEvent::Deleted(cm)))) => {
                break revision(cm.metadata.resource_version.as_ref())
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("root watch ended before its deletion: {other:?}"),
        }
    };
    assert!(held, "the root waited in foregroundDeletion");
    let last_pod = pod_deleted.iter().max().copied().unwrap();
    assert!(
        root_deleted > last_pod,
        "root deleted at revision {root_deleted}, the last pod at {last_pod}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_evicted_worker_is_not_counted_and_a_finished_job_stays_for_its_ttl() {
    let ns = TestNs::new("evict").await;
    let stop = ns.home.path().join("stop");
    // max_restarts 0: one failure of a worker fails the job.
    let job = until_file_job(ns.home.path(), 2, 0, &stop);
    let id = ns
        .submit_detached(&job, &["-D", "kubernetes.ttl_after_finished=75s"], DEADLINE)
        .await;
    wait_up(&ns, &id, 2).await;
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let victim = format!("{id}-1");
    let old_uid = pods.get(&victim).await.unwrap().metadata.uid.unwrap();
    pods.evict(&victim, &EvictParams::default())
        .await
        .unwrap_or_else(|e| panic!("evicting {victim}: {e}"));
    // The StatefulSet makes the pod again; its worker runs again.
    ns.until(
        "the evicted worker's pod made again and running",
        DEADLINE,
        || async {
            let p = pods.get_opt(&victim).await.ok()??;
            let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
            (running && p.metadata.uid.as_deref() != Some(old_uid.as_str())).then_some(())
        },
    )
    .await;
    ns.until("the evicted worker started again", DEADLINE, || async {
        ns.runtime
            .events()
            .iter()
            .filter(|e| e.starts_with(&format!("{victim}/worker-0 started")))
            .nth(1)
            .map(|_| ())
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let data = cms.get(&id).await.unwrap().data.unwrap_or_default();
    assert_ne!(
        data.get("jobmaster.state").map(String::as_str),
        Some("FAILED"),
        "an eviction failed a max_restarts = 0 job: {data:?}"
    );
    std::fs::write(&stop, "stop").unwrap();
    let data = ns
        .until("the job COMPLETED", DEADLINE, || async {
            let d = cms.get_opt(&id).await.ok()??.data?;
            (d.get("jobmaster.state").map(String::as_str) == Some("COMPLETED")).then_some(d)
        })
        .await;
    assert_ne!(
        data.get("jobmaster.state").map(String::as_str),
        Some("FAILED")
    );
    // The job master's store records COMPLETED first; its end of job then writes the final
    // state again with the time the root is to be removed.
    let data = ns
        .until("the finished job's remove-after", DEADLINE, || async {
            let d = cms.get_opt(&id).await.ok()??.data?;
            d.contains_key("jobmaster.remove-after").then_some(d)
        })
        .await;
    assert_eq!(
        data.get("jobmaster.state").map(String::as_str),
        Some("COMPLETED"),
        "{data:?}"
    );
    // Kept: the pods and their logs are there, and gc leaves the job alone.
    let out = ns.run(&["logs", &id], Duration::from_secs(60)).await;
    assert!(
        out.status.success() && text(&out).contains("stop file seen"),
        "{}",
        text(&out)
    );
    let out = ns
        .run(&["gc", "--cluster", "kubernetes"], Duration::from_secs(60))
        .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        cms.get_opt(&id).await.unwrap().is_some(),
        "gc swept a job within its ttl: {}",
        text(&out)
    );
    // The job master's events name the eviction; then, after the ttl, the job goes.
    let jm_log = ns.runtime.log(&format!("{id}-jm-0"), "jobmaster");
    assert!(
        jm_log.contains("not counted against max_restarts"),
        "the job master's log:\n{jm_log}"
    );
    ns.assert_all_gone(&id, Duration::from_secs(180)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_dry_run_is_judged_by_admission_and_creates_nothing() {
    let ns = TestNs::new("sdry").await;
    let out = kubectl(
        &[
            "label",
            "namespace",
            &ns.name,
            "pod-security.kubernetes.io/enforce=restricted",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    // A compliant job: every object accepted (Pod Security judges the pod templates).
    let out = ns
        .run(
            &[
                "submit",
                "kubernetes",
                "examples/shell",
                "--workers",
                "2",
                "--dry-run=server",
            ],
            DEADLINE,
        )
        .await;
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for kind in [
        "ConfigMap",
        "Secret",
        "Service",
        "NetworkPolicy",
        "StatefulSet",
        "Role",
        "RoleBinding",
    ] {
        assert!(all.contains(&format!("{kind}/")), "{kind} judged: {all}");
    }
    assert!(!all.contains(": refused ("), "{all}");
    assert!(all.contains(" 0 refused;"), "{all}");
    assert!(all.contains("nothing was created"), "{all}");
    let left = kubectl(
        &[
            "get",
            "configmaps,statefulsets,networkpolicies",
            "-n",
            &ns.name,
            "-l",
            "app.kubernetes.io/name=t2",
            "-o",
            "name",
        ],
        None,
    )
    .await;
    assert!(
        String::from_utf8_lossy(&left.stdout).trim().is_empty(),
        "{}",
        text(&left)
    );
    // A namespace that allows no StatefulSet (a dry run stores nothing, so each create is
    // judged against what exists): refused by the quota, named.
    let quota = format!(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: no-sts\n  namespace: {}\nspec:\n  hard:\n    count/statefulsets.apps: \"0\"\n",
        ns.name
    );
    let out = kubectl(&["apply", "-f", "-"], Some(&quota)).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = ns
        .until("the quota in force", DEADLINE, || async {
            let out = ns
                .run(
                    &[
                        "submit",
                        "kubernetes",
                        "examples/shell",
                        "--workers",
                        "2",
                        "--dry-run=server",
                    ],
                    DEADLINE,
                )
                .await;
            (!out.status.success()).then_some(out)
        })
        .await;
    let all = text(&out);
    assert!(
        all.contains("refused (403)") && all.contains("exceeded quota"),
        "{all}"
    );
}
