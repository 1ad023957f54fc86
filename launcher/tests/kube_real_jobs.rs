//! Jobs on a real control plane (scripts/kube-up: etcd, kube-apiserver, controller-manager,
//! scheduler, KWOK nodes), their containers run as local processes by the test runtime: a
//! 4-worker job runs to COMPLETED through the real StatefulSet controller, scheduler,
//! exec-API package delivery, job master and agents, every object owned by the root
//! ConfigMap, and garbage collection leaves nothing of it, of any kind.

mod kube_real_support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::api::{Api, ListParams};
use kube_real_support::{eventually, text, TestNs};

/// Hang guard of a whole job.
const JOB_DEADLINE: Duration = Duration::from_secs(240);

/// The owner references of every object labelled with the job, except the root.
async fn owners(ns: &TestNs, id: &str) -> Vec<(String, Option<String>)> {
    let lp = ListParams::default().labels(&format!("t2.io/job={id}"));
    let mut out = Vec::new();
    macro_rules! collect {
        ($t:ty, $kind:expr) => {
            for o in Api::<$t>::namespaced(ns.client.clone(), &ns.name)
                .list(&lp)
                .await
                .expect("list")
                .items
            {
                let name = o.metadata.name.clone().unwrap_or_default();
                if $kind == "ConfigMap" && name == id {
                    continue;
                }
                let owner = o
                    .metadata
                    .owner_references
                    .unwrap_or_default()
                    .into_iter()
                    .find(|r| r.kind == "ConfigMap" && r.name == id)
                    .map(|r| r.uid);
                out.push((format!("{}/{name}", $kind), owner));
            }
        };
    }
    collect!(ConfigMap, "ConfigMap");
    collect!(Secret, "Secret");
    collect!(Service, "Service");
    collect!(StatefulSet, "StatefulSet");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_workers_complete_with_every_object_owned_by_the_root_and_nothing_left() {
    let ns = TestNs::new("four").await;
    let mut c = ns.t2();
    c.args([
        "submit",
        "kubernetes",
        "examples/shell",
        "--workers",
        "4",
        "-n",
        &ns.name,
    ]);
    let submit = tokio::spawn(c.spawn().expect("spawn t2 submit").wait_with_output());
    // While it runs: the root and what it owns, the pods the StatefulSet controller made and
    // where the scheduler put them.
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
    let id = root.metadata.name.clone().expect("root name");
    let root_uid = root.metadata.uid.clone().expect("root uid");
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let placed = eventually("5 pods on KWOK nodes", JOB_DEADLINE, || async {
        let l = pods
            .list(&ListParams::default().labels(&format!("t2.io/job={id}")))
            .await
            .ok()?;
        let nodes: Vec<(String, String)> = l
            .items
            .iter()
            .filter_map(|p| {
                Some((
                    p.metadata.name.clone()?,
                    p.spec.as_ref()?.node_name.clone()?,
                ))
            })
            .collect();
        (nodes.len() == 5).then_some(nodes)
    })
    .await;
    for (pod, node) in &placed {
        assert!(node.starts_with("kwok-node-"), "pod {pod} on {node}");
    }
    // TLS is on by default on Kubernetes: the job's certificate is in its token Secret (the
    // job then completing below means the agents registered over TLS against it).
    let secrets: Api<Secret> = Api::namespaced(ns.client.clone(), &ns.name);
    let secret = secrets
        .get(&format!("{id}-token"))
        .await
        .expect("the token Secret");
    let keys: Vec<String> = secret.data.unwrap_or_default().into_keys().collect();
    for key in ["ca.crt", "tls.crt", "tls.key", "token"] {
        assert!(
            keys.iter().any(|k| k == key),
            "no {key} in the Secret: {keys:?}"
        );
    }
    let names: Vec<&str> = placed.iter().map(|(p, _)| p.as_str()).collect();
    for want in ["-jm-0", "-0", "-1", "-2", "-3"] {
        assert!(
            names.iter().any(|n| *n == format!("{id}{want}")),
            "pod {id}{want} in {names:?}"
        );
    }
    let owned = owners(&ns, &id).await;
    let kinds: Vec<&str> = owned.iter().map(|(k, _)| k.as_str()).collect();
    for want in [
        format!("Secret/{id}-token"),
        format!("Service/{id}"),
        format!("Service/{id}-jm"),
        format!("StatefulSet/{id}"),
        format!("StatefulSet/{id}-jm"),
    ] {
        assert!(kinds.contains(&want.as_str()), "{want} in {kinds:?}");
    }
    for (obj, owner) in &owned {
        assert_eq!(
            owner.as_deref(),
            Some(root_uid.as_str()),
            "{obj} is owned by the root ConfigMap {id} (uid {root_uid})"
        );
    }
    let out = ns.completed(submit, &id, JOB_DEADLINE).await;
    let all = text(&out);
    assert!(all.contains("package delivered 4/4"), "{all}");
    // Every worker really ran the job's program, and passed both barriers.
    for w in 0..4 {
        let log = ns.runtime.log(&format!("{id}-{w}"), "worker-0");
        assert!(
            log.contains(&format!("worker {w} of 4")) && log.contains("barrier 2: SUCCESS"),
            "worker {w}'s output:\n{log}\nruntime:\n{}",
            ns.runtime.report()
        );
    }
    // The job master deleted the root; garbage collection removes the rest.
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
}
