//! Resources and existing volumes on a real control plane (issue 18): an integer
//! `cpu_limit` job's pods are `Guaranteed` (the API server computes `status.qosClass` when it
//! creates them: the init container's requests equal its limits); a job mounting an existing
//! ReadWriteMany claim (a static hostPath PersistentVolume bound by the real PV controller)
//! runs to COMPLETED and the claim outlives the job and a kill of the next job; a missing
//! claim, and a ReadWriteOnce claim for several pods, fail the submit with one line and
//! nothing created; `t2 scale` refuses to give a ReadWriteOnce claim a second pod; and
//! `--dry-run=server` in a namespace enforcing Pod Security `restricted` refuses a job that
//! mounts a node's folder (`host_path`) and accepts it without.
//!
//! KWOK has no kubelet: nothing is really mounted (the test runtime gives each claim a
//! folder) and no limit is enforced; what is checked is what the API server, scheduler and
//! controllers decide.

mod kube_real_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use kube_real_support::{job_id, kubectl, text, TestNs};

const DEADLINE: Duration = Duration::from_secs(240);

/// A job whose workers run until `stop` exists (`stop` None: they end at once), with the
/// extra `kubernetes` lines `kube` (indented by two spaces).
fn job_dir(dir: &Path, name: &str, workers: u32, stop: Option<&Path>, kube: &str) -> PathBuf {
    let job = dir.join(name);
    std::fs::create_dir_all(&job).unwrap();
    let wait = stop
        .map(|s| format!("while [ ! -e '{}' ]; do sleep 0.2; done\n", s.display()))
        .unwrap_or_default();
    std::fs::write(
        job.join("job.yaml"),
        format!("name: {name}\nworkers: {workers}\ncommand: [./run.sh]\nkubernetes:\n{kube}"),
    )
    .unwrap();
    let script = job.join("run.sh");
    std::fs::write(
        &script,
        format!("#!/usr/bin/env bash\nset -euo pipefail\necho \"worker ${{T2_WORKER_ID}} up\"\n{wait}echo \"worker ${{T2_WORKER_ID}} done\"\n"),
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
                    .contains(&format!("worker {w} up"))
            })
            .then_some(())
    })
    .await;
}

/// A claim `name` with `modes`; with `bind`, also a static hostPath PersistentVolume made for
/// it (this control plane has no provisioner), and waits until the PV controller binds them.
/// Returns the PV's name (to delete: PVs are not namespaced).
async fn claim(ns: &TestNs, name: &str, modes: &str, bind: bool) -> Option<String> {
    let pv = format!("{}-{name}", ns.name);
    let mut yaml = String::new();
    if bind {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {pv}\nspec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [{modes}]\n  persistentVolumeReclaimPolicy: Retain\n  storageClassName: ''\n  hostPath: {{path: /tmp/{pv}}}\n  claimRef: {{namespace: {ns}, name: {name}}}\n---\n",
            ns = ns.name
        ));
    }
    yaml.push_str(&format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  accessModes: [{modes}]\n  storageClassName: ''\n  resources: {{requests: {{storage: 1Gi}}}}\n{vol}",
        ns = ns.name,
        vol = if bind { format!("  volumeName: {pv}\n") } else { String::new() }
    ));
    let out = kubectl(&["apply", "-f", "-"], Some(&yaml)).await;
    assert!(out.status.success(), "{}", text(&out));
    if !bind {
        return None;
    }
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ns.client.clone(), &ns.name);
    ns.until(&format!("claim {name} Bound"), DEADLINE, || async {
        let c = pvcs.get_opt(name).await.ok()??;
        (c.status?.phase.as_deref() == Some("Bound")).then_some(())
    })
    .await;
    Some(pv)
}

async fn delete_pv(ns: &TestNs, pv: Option<String>) {
    if let Some(pv) = pv {
        let pvs: Api<PersistentVolume> = Api::all(ns.client.clone());
        let _ = pvs.delete(&pv, &DeleteParams::default()).await;
    }
}

/// Asserts that the namespace holds no object of any t2 job.
async fn nothing_created(ns: &TestNs) {
    let out = kubectl(
        &[
            "get",
            "configmaps,secrets,services,statefulsets,networkpolicies,serviceaccounts",
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
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "objects were created: {}",
        text(&out)
    );
}

/// The one stderr line naming `needle`, checked to be the only one.
fn one_line_with<'a>(stderr: &'a str, needle: &str) -> &'a str {
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains(needle)).collect();
    assert_eq!(lines.len(), 1, "one line naming {needle}: {stderr}");
    lines[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_integer_cpu_limit_jobs_pods_are_guaranteed() {
    let ns = TestNs::new("qos").await;
    let stop = ns.home.path().join("stop");
    let job = job_dir(
        ns.home.path(),
        "qos",
        2,
        Some(stop.as_path()),
        "  cpu_limit: true\n",
    );
    let id = ns
        .submit_detached(&job, &["-D", "resources.cpu=1"], DEADLINE)
        .await;
    wait_up(&ns, &id, 2).await;
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let list = pods
        .list(&ListParams::default().labels(&format!("t2.io/job={id}")))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 3, "two workers and the job master");
    for p in &list.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        let qos = p.status.as_ref().and_then(|s| s.qos_class.clone());
        assert_eq!(qos.as_deref(), Some("Guaranteed"), "pod {name}");
        let spec = p.spec.as_ref().unwrap();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
        {
            let r = c.resources.as_ref().unwrap();
            for k in ["cpu", "memory"] {
                assert_eq!(
                    r.requests.as_ref().unwrap().get(k),
                    r.limits.as_ref().unwrap().get(k),
                    "{name}/{}: {k} request = limit",
                    c.name
                );
            }
        }
        if name != format!("{id}-jm-0") {
            let worker = &spec.containers[0];
            let sc = worker.security_context.as_ref().unwrap();
            assert_eq!(sc.read_only_root_filesystem, Some(true), "{name}");
            let mounts = worker.volume_mounts.as_ref().unwrap();
            assert!(mounts.iter().any(|m| m.mount_path == "/tmp"), "{name}");
            let work = spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == "t2")
                .unwrap();
            assert!(
                work.empty_dir.as_ref().unwrap().size_limit.is_some(),
                "{name}: /t2 has a sizeLimit"
            );
        }
    }
    std::fs::write(&stop, "stop").unwrap();
    ns.assert_all_gone(&id, Duration::from_secs(120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_mounts_an_existing_readwritemany_claim_which_outlives_it_and_a_kill() {
    let ns = TestNs::new("rwx").await;
    let pv = claim(&ns, "shared-out", "ReadWriteMany", true).await;
    let vol = "  volumes:\n    - {claim: shared-out, mount: /workspace}\n";
    // Runs to its end with the claim mounted in both worker pods.
    let job = job_dir(ns.home.path(), "writer", 2, None, vol);
    let out = ns
        .run(&["submit", "kubernetes", job.to_str().unwrap()], DEADLINE)
        .await;
    let all = text(&out);
    assert!(
        out.status.success(),
        "{all}\nruntime:\n{}",
        ns.runtime.report()
    );
    let id = job_id(&out);
    assert!(all.contains(&format!("job {id} COMPLETED")), "{all}");
    ns.assert_all_gone(&id, Duration::from_secs(120)).await;
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ns.client.clone(), &ns.name);
    let kept = pvcs
        .get("shared-out")
        .await
        .expect("the claim is still there");
    assert!(kept.metadata.deletion_timestamp.is_none());
    assert!(
        kept.metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "t2 never owns an existing claim"
    );
    assert_eq!(kept.status.unwrap().phase.as_deref(), Some("Bound"));
    // A second job reads it and is killed: the claim stays.
    let stop = ns.home.path().join("never");
    let ro = "  volumes:\n    - {claim: shared-out, mount: /workspace, read_only: true}\n";
    let job = job_dir(ns.home.path(), "reader", 2, Some(stop.as_path()), ro);
    let id = ns.submit_detached(&job, &[], DEADLINE).await;
    wait_up(&ns, &id, 2).await;
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    let pod = pods.get(&format!("{id}-1")).await.unwrap();
    let v = pod
        .spec
        .unwrap()
        .volumes
        .unwrap_or_default()
        .into_iter()
        .find(|v| v.persistent_volume_claim.is_some())
        .expect("the claim in the pod");
    let src = v.persistent_volume_claim.unwrap();
    assert_eq!(
        (src.claim_name.as_str(), src.read_only),
        ("shared-out", Some(true))
    );
    let out = ns.run(&["kill", &id], Duration::from_secs(120)).await;
    assert!(out.status.success(), "{}", text(&out));
    ns.assert_all_gone(&id, Duration::from_secs(120)).await;
    let kept = pvcs
        .get("shared-out")
        .await
        .expect("still there after the kill");
    assert!(kept.metadata.deletion_timestamp.is_none());
    delete_pv(&ns, pv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_claim_or_a_readwriteonce_claim_for_several_pods_fails_the_submit_cleanly() {
    let ns = TestNs::new("claims").await;
    // Only the claim objects: the submit reads their spec.accessModes.
    claim(&ns, "private", "ReadWriteOnce", false).await;
    let missing = job_dir(
        ns.home.path(),
        "missing",
        2,
        None,
        "  volumes:\n    - {claim: nope, mount: /data}\n",
    );
    let out = ns
        .run(
            &["submit", "kubernetes", missing.to_str().unwrap()],
            DEADLINE,
        )
        .await;
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let line = one_line_with(&err, "nope");
    assert!(
        line.contains("kubernetes.volumes[0].claim")
            && line.contains("there is no PersistentVolumeClaim 'nope'")
            && line.contains("create it first"),
        "{err}"
    );
    nothing_created(&ns).await;
    let rwo = job_dir(
        ns.home.path(),
        "rwo",
        2,
        None,
        "  volumes:\n    - {claim: private, mount: /data}\n",
    );
    let out = ns
        .run(&["submit", "kubernetes", rwo.to_str().unwrap()], DEADLINE)
        .await;
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let line = one_line_with(&err, "'private'");
    assert!(
        line.contains("is ReadWriteOnce")
            && line.contains("2 worker pods")
            && line.contains("ReadWriteMany"),
        "{err}"
    );
    nothing_created(&ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_refuses_a_second_pod_for_a_readwriteonce_claim() {
    let ns = TestNs::new("rwoscale").await;
    let pv = claim(&ns, "scratch", "ReadWriteOnce", true).await;
    let stop = ns.home.path().join("stop");
    let job = job_dir(
        ns.home.path(),
        "single",
        1,
        Some(stop.as_path()),
        "  volumes:\n    - {claim: scratch, mount: /scratch}\n",
    );
    // One pod may write a ReadWriteOnce claim.
    let id = ns.submit_detached(&job, &[], DEADLINE).await;
    wait_up(&ns, &id, 1).await;
    let out = ns.run(&["scale", &id, "2"], Duration::from_secs(120)).await;
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let line = one_line_with(&err, "'scratch'");
    assert!(
        line.contains("cannot scale to 2 workers") && line.contains("is ReadWriteOnce"),
        "{err}"
    );
    // Nothing asked of the job master: the root has no scale request, one pod runs.
    let cms: Api<ConfigMap> = Api::namespaced(ns.client.clone(), &ns.name);
    let data = cms.get(&id).await.unwrap().data.unwrap_or_default();
    assert!(
        !data.contains_key("scale.request"),
        "a scale request was written: {data:?}"
    );
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), &ns.name);
    assert!(pods.get_opt(&format!("{id}-1")).await.unwrap().is_none());
    std::fs::write(&stop, "stop").unwrap();
    ns.assert_all_gone(&id, Duration::from_secs(120)).await;
    delete_pv(&ns, pv).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_dry_run_under_restricted_refuses_host_path_and_accepts_the_job_without() {
    let ns = TestNs::new("hostpath").await;
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
    let cache = job_dir(
        ns.home.path(),
        "cache",
        2,
        None,
        "  allow_host_path: true\n  volumes:\n    - {host_path: /var/lib/t2-cache, mount: /cache}\n",
    );
    let out = ns
        .run(
            &[
                "submit",
                "kubernetes",
                cache.to_str().unwrap(),
                "--dry-run=server",
            ],
            DEADLINE,
        )
        .await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    let refused: Vec<&str> = all.lines().filter(|l| l.contains(": refused (")).collect();
    assert_eq!(refused.len(), 1, "only the worker StatefulSet: {all}");
    assert!(
        refused[0].starts_with("StatefulSet/") && refused[0].contains("hostPath"),
        "{all}"
    );
    assert!(all.contains("nothing was created"), "{all}");
    // Refused without allow_host_path before anything is sent.
    let out = ns
        .run(
            &[
                "submit",
                "kubernetes",
                cache.to_str().unwrap(),
                "--dry-run=server",
                "-D",
                "kubernetes.allow_host_path=false",
            ],
            DEADLINE,
        )
        .await;
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let line = one_line_with(&err, "allow_host_path");
    assert!(line.contains("kubernetes.volumes[0].host_path"), "{err}");
    // The same job without the node's folder: every object accepted (the read-only root and
    // /tmp emptyDir, the sized /t2, requests equal to limits all pass restricted).
    let plain = job_dir(ns.home.path(), "plain", 2, None, "  cpu_limit: true\n");
    let out = ns
        .run(
            &[
                "submit",
                "kubernetes",
                plain.to_str().unwrap(),
                "--dry-run=server",
            ],
            DEADLINE,
        )
        .await;
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains(": refused ("), "{all}");
    assert!(all.contains(" 0 refused;"), "{all}");
    nothing_created(&ns).await;
}
