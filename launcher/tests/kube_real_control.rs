//! Controlling running jobs on a real control plane: `t2 kill` mid-job (everything gone by
//! garbage collection), `t2 gc` sweeping a job whose job master never started, and the job
//! master's pod deleted mid-job (its StatefulSet makes a new one, which reads the root back;
//! the workers reconnect; the job completes; the workers give the new one the package, which
//! it hands to a scale-up), scaling, a crash loop counted against `max_restarts` through the
//! kubelet's back-off, and per-worker claims deleted on a scale-down and at the job's end.

mod kube_real_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use kube_real_support::{eventually, text, TestNs};

const DEADLINE: Duration = Duration::from_secs(240);

/// A job whose workers pass a barrier (those the submit starts; workers a scale-up adds skip
/// it), then run until `stop` exists, then complete.
pub fn until_file_job(dir: &Path, workers: u32, stop: &Path) -> PathBuf {
    let job = dir.join("until-file");
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(
        job.join("job.yaml"),
        format!(
            "name: until-file\nworkers: {workers}\nmax_restarts: 2\nenv:\n  STOP_FILE: {}\ncommand: [./run.sh]\n",
            stop.display()
        ),
    )
    .unwrap();
    let script = job.join("run.sh");
    std::fs::write(
        &script,
        "#!/usr/bin/env bash\nset -euo pipefail\necho \"worker ${T2_WORKER_ID} of ${T2_NUM_WORKERS} up (restart ${T2_RESTART_COUNT})\"\nif [ \"$T2_WORKER_ID\" -lt WORKERS_AT_SUBMIT ]; then echo \"barrier: $(t2 worker barrier --timeout 120s)\"; fi\nt2 worker events &\nwhile [ ! -e \"$STOP_FILE\" ]; do sleep 0.2; done\necho \"worker ${T2_WORKER_ID}: stop file seen\"\n"
            .replace("WORKERS_AT_SUBMIT", &workers.to_string()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    job
}

/// Waits until every worker printed its barrier line.
async fn wait_barrier(ns: &TestNs, id: &str, workers: u32) {
    ns.until("every worker past its barrier", DEADLINE, || async {
        (0..workers)
            .all(|w| {
                ns.runtime
                    .log(&format!("{id}-{w}"), "worker-0")
                    .contains("barrier: SUCCESS")
            })
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_mid_job_removes_everything_through_garbage_collection() {
    let ns = TestNs::new("kill").await;
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 2, &stop);
    let id = ns.submit_detached(&job, &[], DEADLINE).await;
    wait_barrier(&ns, &id, 2).await;
    assert!(!ns.leftovers(&id).await.is_empty());
    let out = ns.run(&["kill", &id], Duration::from_secs(120)).await;
    assert!(out.status.success(), "{}", text(&out));
    // The root is gone at once; the rest goes through garbage collection.
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    assert!(
        cms.get_opt(&id).await.unwrap().is_none(),
        "root still there"
    );
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
    // And the runtime stopped every container of the job's pods.
    ns.until(
        "the job's containers stopped",
        Duration::from_secs(30),
        || async {
            let ev = ns.runtime.events();
            ["-jm-0/jobmaster", "-0/worker-0", "-1/worker-0"]
                .iter()
                .all(|c| {
                    ev.iter().any(|e| {
                        e.starts_with(&format!("{id}{c} stopped"))
                            || e.starts_with(&format!("{id}{c} killed"))
                    })
                })
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_sweeps_a_job_whose_job_master_never_started() {
    let ns = TestNs::new("gc").await;
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 2, &stop);
    // The job master's ServiceAccount does not exist, so the StatefulSet controller cannot
    // make its pod; the submit is killed while it waits, as a closed laptop would. (Short
    // start deadlines, so that gc may call the job broken soon.)
    let mut c = ns.t2();
    c.args([
        "submit",
        "kubernetes",
        job.to_str().unwrap(),
        "-D",
        "kubernetes.service_account=nobody-here",
        "-D",
        "kubernetes.start_timeout=3s",
        "-D",
        "kubernetes.package_timeout=3s",
        "-n",
        &ns.name,
    ]);
    let mut child = c.spawn().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let root = eventually("the root ConfigMap", Duration::from_secs(60), || async {
        cms.list(&ListParams::default().labels("app.kubernetes.io/component=job"))
            .await
            .ok()?
            .items
            .into_iter()
            .next()
    })
    .await;
    let id = root.metadata.name.unwrap();
    eventually(
        "the job's StatefulSets",
        Duration::from_secs(60),
        || async {
            let left = ns.leftovers(&id).await;
            left.iter()
                .any(|l| l == &format!("statefulset.apps/{id}-jm"))
                .then_some(())
        },
    )
    .await;
    child.kill().await.unwrap();
    let _ = child.wait().await;
    // No pod of the job master, ever.
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    assert!(pods.get_opt(&format!("{id}-jm-0")).await.unwrap().is_none());
    // Once the root is older than the submit's own deadline (6 s here), gc sweeps it.
    let all = ns
        .until(
            "t2 gc sweeping the job",
            Duration::from_secs(90),
            || async {
                let out = ns.run(&["gc"], Duration::from_secs(120)).await;
                let all = text(&out);
                assert!(out.status.success(), "{all}");
                all.contains(&format!("job {id}")).then_some(all)
            },
        )
        .await;
    assert!(
        all.contains("job master never started") && all.contains(&format!("ConfigMap/{id}")),
        "gc says why and deletes the root: {all}"
    );
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_master_pod_deleted_mid_job_is_recreated_and_the_job_completes() {
    let ns = TestNs::new("jmdel").await;
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 2, &stop);
    let mut c = ns.t2();
    c.args([
        "submit",
        "kubernetes",
        job.to_str().unwrap(),
        "-n",
        &ns.name,
    ]);
    let submit = c.spawn().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let id = eventually("the root ConfigMap", Duration::from_secs(60), || async {
        cms.list(&ListParams::default().labels("app.kubernetes.io/component=job"))
            .await
            .ok()?
            .items
            .into_iter()
            .next()?
            .metadata
            .name
    })
    .await;
    wait_barrier(&ns, &id, 2).await;
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let jm = format!("{id}-jm-0");
    let old_uid = pods.get(&jm).await.unwrap().metadata.uid.unwrap();
    pods.delete(&jm, &DeleteParams::default()).await.unwrap();
    // The StatefulSet controller makes a new one; the runtime starts its job master.
    ns.until("a new job master pod running", DEADLINE, || async {
        let p = pods.get_opt(&jm).await.ok()??;
        let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
        (running && p.metadata.uid.as_deref() != Some(old_uid.as_str())).then_some(())
    })
    .await;
    ns.until("the new job master serving", DEADLINE, || async {
        ns.runtime
            .events()
            .iter()
            .filter(|e| e.starts_with(&format!("{jm}/jobmaster started")))
            .nth(1)
            .map(|_| ())
    })
    .await;
    std::fs::write(&stop, "stop").unwrap();
    let out = match tokio::time::timeout(DEADLINE, submit.wait_with_output()).await {
        Ok(o) => o.unwrap(),
        Err(_) => panic!("submit did not end\n{}", ns.runtime.report()),
    };
    let all = text(&out);
    assert!(
        out.status.success() && all.contains(&format!("job {id} COMPLETED")),
        "{all}\nruntime:\n{}",
        ns.runtime.report()
    );
    // Workers were not restarted: each agent ran once.
    for w in 0..2 {
        let log = ns.runtime.log(&format!("{id}-{w}"), "worker-0");
        assert!(log.contains("stop file seen"), "worker {w}:\n{log}");
        assert!(!log.contains("(restart 1)"), "worker {w} restarted:\n{log}");
    }
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_up_then_down_through_the_scale_subresource() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let ns = TestNs::new("scale").await;
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 4, &stop);
    let id = ns
        .submit_detached(&job, &["-D", "kubernetes.package_timeout=60s"], DEADLINE)
        .await;
    wait_barrier(&ns, &id, 4).await;
    let out = ns.run(&["scale", &id, "8"], Duration::from_secs(120)).await;
    let all = text(&out);
    assert!(
        out.status.success(),
        "{all}\nruntime:\n{}",
        ns.runtime.report()
    );
    assert!(all.contains("8 workers in 8 pods"), "{all}");
    let sts: Api<StatefulSet> = Api::namespaced(ns.client.clone(), &ns.name);
    let replicas = sts.get_scale(&id).await.unwrap().spec.unwrap().replicas;
    assert_eq!(replicas, Some(8), "the scale subresource");
    // The StatefulSet controller makes pods 4..7; the running workers are told.
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    for w in 4..8 {
        let name = format!("{id}-{w}");
        ns.until(&format!("pod {name}"), DEADLINE, || async {
            pods.get_opt(&name).await.ok()?.map(|_| ())
        })
        .await;
    }
    ns.until("worker 0 told of the scale", DEADLINE, || async {
        ns.runtime
            .log(&format!("{id}-0"), "worker-0")
            .contains("job_scaled")
            .then_some(())
    })
    .await;
    // Direct delivery: the submit streamed the package into pods 0..3 only; pods made by the
    // scale-up fetch the job master's copy, and their workers join and run the job.
    for w in 4..8 {
        let pod = format!("{id}-{w}");
        ns.until(&format!("worker {w} up in pod {pod}"), DEADLINE, || async {
            ns.runtime
                .log(&pod, "worker-0")
                .contains(&format!("worker {w} of 8 up"))
                .then_some(())
        })
        .await;
        let init = ns.runtime.log(&pod, "t2-init");
        assert!(
            init.contains("fetched from the job master"),
            "pod {pod}'s init container:\n{init}"
        );
    }
    let out = ns.run(&["scale", &id, "4"], Duration::from_secs(120)).await;
    let all = text(&out);
    assert!(
        out.status.success(),
        "{all}\nruntime:\n{}",
        ns.runtime.report()
    );
    assert!(all.contains("4 workers in 4 pods"), "{all}");
    assert_eq!(
        sts.get_scale(&id).await.unwrap().spec.unwrap().replicas,
        Some(4)
    );
    for w in 4..8 {
        let name = format!("{id}-{w}");
        ns.until(&format!("pod {name} gone"), DEADLINE, || async {
            pods.get_opt(&name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
    std::fs::write(&stop, "stop").unwrap();
    ns.until("the job's root gone (the job ended)", DEADLINE, || async {
        let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
        cms.get_opt(&id).await.ok()?.is_none().then_some(())
    })
    .await;
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
}

/// A kubeconfig for the control plane that authenticates with `token` alone.
fn token_kubeconfig(dir: &Path, name: &str, token: &str) -> PathBuf {
    let admin = std::fs::read_to_string(&kube_real_support::plane().kubeconfig).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&admin).unwrap();
    let mut user = serde_yaml::Mapping::new();
    user.insert("token".into(), token.into());
    doc["users"][0]["user"] = serde_yaml::Value::Mapping(user);
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_masters_own_role_reaches_its_own_job_and_no_other() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use kube::api::PostParams;
    let ns = TestNs::new("jmrole").await;
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 2, &stop);
    let a = ns.submit_detached(&job, &[], DEADLINE).await;
    let b = ns.submit_detached(&job, &[], DEADLINE).await;
    wait_barrier(&ns, &a, 2).await;
    wait_barrier(&ns, &b, 2).await;
    // Each job has its own ServiceAccount, Role and RoleBinding, owned by its root.
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let root_uid = cms.get(&a).await.unwrap().metadata.uid.unwrap();
    let jm = format!("{a}-jm");
    let owners = [
        Api::<ServiceAccount>::namespaced(ns.client.clone(), &ns.name)
            .get(&jm)
            .await
            .unwrap()
            .metadata
            .owner_references,
        Api::<Role>::namespaced(ns.client.clone(), &ns.name)
            .get(&jm)
            .await
            .unwrap()
            .metadata
            .owner_references,
        Api::<RoleBinding>::namespaced(ns.client.clone(), &ns.name)
            .get(&jm)
            .await
            .unwrap()
            .metadata
            .owner_references,
    ];
    for o in owners {
        assert_eq!(o.unwrap()[0].uid, root_uid, "owned by job {a}'s root");
    }
    let pod: Pod = Api::namespaced(ns.client.clone(), &ns.name)
        .get(&format!("{a}-jm-0"))
        .await
        .unwrap();
    assert_eq!(
        pod.spec.unwrap().service_account_name.as_deref(),
        Some(jm.as_str()),
        "job {a}'s job master runs as its job's ServiceAccount"
    );
    // A token of job A's job master's ServiceAccount, from the real TokenRequest API: what the
    // job master itself holds.
    let sa: Api<ServiceAccount> = Api::namespaced(ns.client.clone(), &ns.name);
    let req = serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"expirationSeconds": 600},
    });
    let answer: serde_json::Value = sa
        .create_subresource("token", &jm, &PostParams::default(), &req)
        .await
        .unwrap();
    let token = answer["status"]["token"].as_str().unwrap().to_string();
    let as_a = token_kubeconfig(ns.home.path(), "jm-a", &token);
    let n = ns.name.as_str();
    let run = |args: Vec<String>| {
        let as_a = as_a.clone();
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            kube_real_support::kubectl_as(&as_a, &refs, None).await
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let patch = r#"{"data":{"probe":"x"}}"#;
    let scale = r#"{"spec":{"replicas":2}}"#;
    // Another job's objects: refused by the real authorizer (server-side dry runs, so nothing
    // would change even if allowed).
    for (what, args) in [
        (
            "patch B's root",
            s(&[
                "-n",
                n,
                "patch",
                "configmap",
                &b,
                "-p",
                patch,
                "--dry-run=server",
            ]),
        ),
        (
            "delete B's root",
            s(&["-n", n, "delete", "configmap", &b, "--dry-run=server"]),
        ),
        ("read B's root", s(&["-n", n, "get", "configmap", &b])),
        ("list every ConfigMap", s(&["-n", n, "get", "configmaps"])),
        (
            "scale B's workers",
            s(&[
                "-n",
                n,
                "patch",
                "statefulset",
                &b,
                "--subresource=scale",
                "-p",
                scale,
                "--dry-run=server",
            ]),
        ),
        (
            "read B's token",
            s(&["-n", n, "get", "secret", &format!("{b}-token")]),
        ),
        (
            "change B's StatefulSet",
            s(&[
                "-n",
                n,
                "patch",
                "statefulset",
                &b,
                "-p",
                r#"{"metadata":{"labels":{"x":"y"}}}"#,
                "--dry-run=server",
            ]),
        ),
    ] {
        let out = run(args).await;
        let all = text(&out);
        assert!(
            !out.status.success(),
            "job A's job master may {what}: {all}"
        );
        assert!(
            all.contains("forbidden") || all.contains("Forbidden"),
            "{what}: {all}"
        );
    }
    // Its own: allowed.
    for (what, args) in [
        ("read its root", s(&["-n", n, "get", "configmap", &a])),
        (
            "patch its root",
            s(&[
                "-n",
                n,
                "patch",
                "configmap",
                &a,
                "-p",
                patch,
                "--dry-run=server",
            ]),
        ),
        (
            "delete its root",
            s(&["-n", n, "delete", "configmap", &a, "--dry-run=server"]),
        ),
        (
            "scale its workers",
            s(&[
                "-n",
                n,
                "patch",
                "statefulset",
                &a,
                "--subresource=scale",
                "-p",
                scale,
                "--dry-run=server",
            ]),
        ),
    ] {
        let out = run(args).await;
        assert!(
            out.status.success(),
            "job A's job master may not {what}: {}",
            text(&out)
        );
    }
    // Both jobs still run to their end under their own Roles (the job masters watch, patch and
    // delete their roots with them), and everything, Roles included, goes with them.
    std::fs::write(&stop, "stop").unwrap();
    for id in [&a, &b] {
        ns.until(
            &format!("job {id}'s root gone (it ended)"),
            DEADLINE,
            || async { cms.get_opt(id).await.ok()?.is_none().then_some(()) },
        )
        .await;
        ns.assert_all_gone(id, Duration::from_secs(90)).await;
    }
    for id in [&a, &b] {
        for w in 0..2 {
            let log = ns.runtime.log(&format!("{id}-{w}"), "worker-0");
            assert!(
                log.contains("stop file seen"),
                "job {id} worker {w}:\n{log}"
            );
        }
    }
}

/// A job whose worker 1 exits 3 on every run and whose worker 0 runs until `stop` exists.
fn crash_job(dir: &Path, stop: &Path, max_restarts: u32, join_timeout: &str) -> PathBuf {
    let job = dir.join("crashy");
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(
        job.join("job.yaml"),
        format!(
            "name: crashy\nworkers: 2\nmax_restarts: {max_restarts}\njoin_timeout: {join_timeout}\nenv:\n  STOP_FILE: {}\ncommand: [./run.sh]\n",
            stop.display()
        ),
    )
    .unwrap();
    let script = job.join("run.sh");
    std::fs::write(
        &script,
        "#!/usr/bin/env bash\necho \"worker ${T2_WORKER_ID} up (restart ${T2_RESTART_COUNT})\"\nif [ \"$T2_WORKER_ID\" = 1 ]; then echo 'worker 1 fails'; exit 3; fi\nwhile [ ! -e \"$STOP_FILE\" ]; do sleep 0.2; done\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_loop_counts_against_max_restarts_and_its_backoff_against_no_join_timeout() {
    use t2_kubernetes::podstate::{summarize, CrashRules};
    let ns = TestNs::new("crash").await;
    let stop = ns.home.path().join("stop");
    // The runtime restarts a crashed container after the kubelet's back-off: 10 s, 20 s,
    // 40 s. A rejoin within join_timeout alone (20 s) would miss the second restart.
    let job = crash_job(ns.home.path(), &stop, 3, "20s");
    let mut c = ns.t2();
    c.args([
        "submit",
        "kubernetes",
        job.to_str().unwrap(),
        "-n",
        &ns.name,
    ]);
    let submit = c.spawn().unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let id = eventually("the root ConfigMap", Duration::from_secs(60), || async {
        cms.list(&ListParams::default().labels("app.kubernetes.io/component=job"))
            .await
            .ok()?
            .items
            .into_iter()
            .next()?
            .metadata
            .name
    })
    .await;
    // Worker 1's pod as the API server has it while its container waits out the back-off.
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let pod1 = format!("{id}-1");
    let looping = ns
        .until("worker 1's pod in CrashLoopBackOff", DEADLINE, || async {
            let p = pods.get_opt(&pod1).await.ok()??;
            let st = p
                .status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .first()?
                .clone();
            let waiting = st.state.as_ref()?.waiting.as_ref()?.reason.clone()?;
            (waiting == "CrashLoopBackOff" && st.restart_count >= 1).then_some(p)
        })
        .await;
    // Within max_restarts the submit's rules wait for it; past them they name the worker,
    // its exit code and its restarts.
    let within = CrashRules {
        max_restarts: 3,
        workers_per_pod: 1,
    };
    assert_eq!(summarize(&looping, &within).failure, None);
    let past = summarize(
        &looping,
        &CrashRules {
            max_restarts: 0,
            workers_per_pod: 1,
        },
    )
    .failure
    .unwrap_or_default();
    assert!(
        past.contains("worker 1 (container worker-0) crashed and was restarted")
            && past.contains("past max_restarts = 0")
            && past.contains("last exit code 3"),
        "{past}"
    );
    let out = match tokio::time::timeout(DEADLINE, submit.wait_with_output()).await {
        Ok(o) => o.unwrap(),
        Err(_) => panic!("submit did not end\n{}", ns.runtime.report()),
    };
    let all = text(&out);
    assert!(
        !out.status.success() && all.contains(&format!("job {id} FAILED")),
        "{all}\nruntime:\n{}",
        ns.runtime.report()
    );
    // The job failed on worker 1's fourth failure (three restarts), not on a missed rejoin
    // deadline while the kubelet's back-off ran.
    assert!(
        all.contains("worker 1 exited with code 3")
            && all.contains("restarted 3 times, max_restarts = 3"),
        "{all}\nruntime:\n{}",
        ns.runtime.report()
    );
    assert!(!all.contains("did not rejoin"), "{all}");
    let log = ns.runtime.log(&pod1, "worker-0");
    for r in 0..=3 {
        assert!(log.contains(&format!("worker 1 up (restart {r})")), "{log}");
    }
    let events = ns.runtime.events();
    for wait in ["10s", "20s", "40s"] {
        assert!(
            events
                .iter()
                .any(|e| e.starts_with(&format!("{pod1}/worker-0 exited 3"))
                    && e.ends_with(&format!("restarting in {wait}"))),
            "a restart after {wait}: {events:#?}"
        );
    }
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_remade_job_master_gets_the_package_from_the_workers_and_hands_it_to_a_scale_up() {
    let ns = TestNs::new("jmpkg").await;
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 2, &stop);
    let id = ns
        .submit_detached(&job, &["-D", "kubernetes.package_timeout=90s"], DEADLINE)
        .await;
    wait_barrier(&ns, &id, 2).await;
    let jm = format!("{id}-jm-0");
    let kept = "kept the copy of the package a worker offered";
    ns.until(
        "the job master holding a worker's copy",
        DEADLINE,
        || async {
            ns.runtime
                .log(&jm, "jobmaster")
                .contains(kept)
                .then_some(())
        },
    )
    .await;
    // The StatefulSet re-makes the job master's pod: its work area starts empty.
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let old_uid = pods.get(&jm).await.unwrap().metadata.uid.unwrap();
    pods.delete(&jm, &DeleteParams::default()).await.unwrap();
    ns.until("a new job master pod running", DEADLINE, || async {
        let p = pods.get_opt(&jm).await.ok()??;
        let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
        (running && p.metadata.uid.as_deref() != Some(old_uid.as_str())).then_some(())
    })
    .await;
    // The workers reconnect and offer their copy again (the runtime's log of the pod name is
    // the new pod's).
    ns.until(
        "the new job master holding a worker's copy",
        DEADLINE,
        || async {
            let log = ns.runtime.log(&jm, "jobmaster");
            let new_pod = ns
                .runtime
                .events()
                .iter()
                .filter(|e| e.starts_with(&format!("{jm}/jobmaster started")))
                .count()
                >= 2;
            (new_pod && log.contains(kept)).then_some(())
        },
    )
    .await;
    // Pods made now fetch the package from the new job master, and their workers run.
    let out = ns.run(&["scale", &id, "4"], Duration::from_secs(120)).await;
    let all = text(&out);
    assert!(
        out.status.success() && all.contains("4 workers in 4 pods"),
        "{all}\nruntime:\n{}",
        ns.runtime.report()
    );
    for w in 2..4 {
        let pod = format!("{id}-{w}");
        ns.until(&format!("worker {w} up in pod {pod}"), DEADLINE, || async {
            ns.runtime
                .log(&pod, "worker-0")
                .contains(&format!("worker {w} of 4 up"))
                .then_some(())
        })
        .await;
        let init = ns.runtime.log(&pod, "t2-init");
        assert!(
            init.contains("fetched from the job master"),
            "pod {pod}'s init container:\n{init}"
        );
    }
    std::fs::write(&stop, "stop").unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    ns.until("the job's root gone (the job ended)", DEADLINE, || async {
        cms.get_opt(&id).await.ok()?.is_none().then_some(())
    })
    .await;
    for w in 0..4 {
        let log = ns.runtime.log(&format!("{id}-{w}"), "worker-0");
        assert!(log.contains("stop file seen"), "worker {w}:\n{log}");
    }
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_of_a_scale_down_and_of_the_ended_job_are_deleted() {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let ns = TestNs::new("claims").await;
    // No provisioner here: static volumes of a class of this test's own, which the real
    // PersistentVolume controller binds the StatefulSet's claims to.
    let class = format!("{}-static", ns.name);
    let pvs: Api<PersistentVolume> = Api::all(ns.client.clone());
    let mut made = Vec::new();
    for i in 0..4 {
        let name = format!("{}-pv-{i}", ns.name);
        let dir = ns.home.path().join(format!("pv-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "10Mi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": class,
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": dir.to_str().unwrap()},
            },
        }))
        .unwrap();
        pvs.create(&Default::default(), &pv).await.unwrap();
        made.push(name);
    }
    let stop = ns.home.path().join("stop");
    let job = until_file_job(ns.home.path(), 4, &stop);
    let id = ns
        .submit_detached(
            &job,
            &[
                "-D",
                "kubernetes.storage.size_mb=1",
                "-D",
                &format!("kubernetes.storage.class={class}"),
            ],
            DEADLINE,
        )
        .await;
    wait_barrier(&ns, &id, 4).await;
    let sts: Api<StatefulSet> = Api::namespaced(ns.client.clone(), &ns.name);
    let set_uid = sts.get(&id).await.unwrap().metadata.uid.unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ns.client.clone(), &ns.name);
    let owner_kinds = |c: &PersistentVolumeClaim| -> Vec<(String, String)> {
        c.metadata
            .owner_references
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.kind, r.uid))
            .collect()
    };
    // The StatefulSet controller made a claim per pod, labelled with the job, owned by the
    // StatefulSet (whenDeleted: Delete).
    for i in 0..4 {
        let name = format!("data-{id}-{i}");
        ns.until(
            &format!("claim {name} owned by the StatefulSet"),
            DEADLINE,
            || async {
                let c = claims.get_opt(&name).await.ok()??;
                let labelled = c
                    .metadata
                    .labels
                    .as_ref()?
                    .get("t2.io/job")
                    .is_some_and(|j| j == &id);
                (labelled && owner_kinds(&c) == [("StatefulSet".to_string(), set_uid.clone())])
                    .then_some(())
            },
        )
        .await;
    }
    // A scale-down: the claims of pods 2 and 3 go with their pods (whenScaled: Delete), those
    // of 0 and 1 stay.
    let out = ns.run(&["scale", &id, "2"], Duration::from_secs(120)).await;
    assert!(out.status.success(), "{}", text(&out));
    for i in 2..4 {
        let name = format!("data-{id}-{i}");
        ns.until(&format!("claim {name} deleted"), DEADLINE, || async {
            claims.get_opt(&name).await.ok()?.is_none().then_some(())
        })
        .await;
    }
    for i in 0..2 {
        let c = claims.get(&format!("data-{id}-{i}")).await.unwrap();
        assert!(c.metadata.deletion_timestamp.is_none(), "claim {i} kept");
    }
    // The job ends: garbage collection removes the rest, claims included.
    std::fs::write(&stop, "stop").unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    ns.until("the job's root gone (the job ended)", DEADLINE, || async {
        cms.get_opt(&id).await.ok()?.is_none().then_some(())
    })
    .await;
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
    let left = claims
        .list(&ListParams::default().labels(&format!("t2.io/job={id}")))
        .await
        .unwrap();
    assert!(left.items.is_empty(), "claims left: {:?}", left.items);
    for name in made {
        let _ = pvs.delete(&name, &DeleteParams::default()).await;
    }
}
