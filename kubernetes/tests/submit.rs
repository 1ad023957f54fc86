//! `t2 submit kubernetes` against the API contract: a mock API server asserts the exact
//! sequence of requests (method, path and query, body essentials) for a direct submit, an
//! uploader submit, the rollback after a failed create, an existing job (409), a forbidden
//! create (403), the fail-fast paths (ImagePullBackOff, a failed init container, a pod
//! unschedulable past its deadline), and the SSH-key Secret of Twister2's MPI mode checked
//! before anything is created.

mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{json, Value};
use support::jobs::{self, TestJob};
use support::mock::{events, list, run, Step, NS};
use support::pods;
use t2_kubernetes::deliver::Deliverer;
use t2_kubernetes::follow::Ended;
use t2_kubernetes::submit::{submit, Outcome, SubmitPlan};
use t2_kubernetes::KubeError;

const UID: &str = "root-uid-1234";

/// Records the pods it delivered to (`pod` for init containers, `pod/container` else).
#[derive(Default)]
struct FakeDeliverer(Mutex<Vec<String>>);

#[async_trait]
impl Deliverer for FakeDeliverer {
    async fn deliver(&self, pod: &str) -> Result<(), String> {
        self.0.lock().unwrap().push(pod.to_string());
        Ok(())
    }

    async fn deliver_to(&self, pod: &str, container: &str) -> Result<(), String> {
        self.0.lock().unwrap().push(format!("{pod}/{container}"));
        Ok(())
    }
}

fn plan(
    job: &TestJob,
    package: &std::path::Path,
    detach: bool,
    d: Option<Arc<FakeDeliverer>>,
) -> SubmitPlan {
    SubmitPlan {
        info: job.info.clone(),
        spec: job.spec.clone(),
        settings: job.settings.clone(),
        package: package.to_path_buf(),
        uploader_token: None,
        detach,
        progress_bar: false,
        deliverer: d.map(|d| d as Arc<dyn Deliverer>),
    }
}

fn path(kind: &str) -> String {
    match kind {
        "statefulsets" => format!("/apis/apps/v1/namespaces/{NS}/statefulsets"),
        "roles" | "rolebindings" => {
            format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/{kind}")
        }
        "networkpolicies" => format!("/apis/networking.k8s.io/v1/namespaces/{NS}/{kind}"),
        k => format!("/api/v1/namespaces/{NS}/{k}"),
    }
}

fn no_uploader() -> Step {
    Step::new(
        "GET",
        format!(
            "{}?&labelSelector=app.kubernetes.io%2Fname%3Dt2-uploader",
            path("services")
        ),
    )
    .json(200, list("Service", "5", vec![]))
}

/// Creating the root: checks its labels and spec, answers with a uid.
fn create_root(job: &TestJob) -> Step {
    let id = job.info.id.clone();
    let workers = job.spec.workers;
    let root = support::mock::created(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": id}}),
        UID,
    );
    Step::new("POST", format!("{}?", path("configmaps")))
        .check(move |b, _| {
            assert_eq!(b["metadata"]["name"], id.as_str());
            assert_eq!(b["metadata"]["labels"]["t2.io/job"], id.as_str());
            assert_eq!(b["metadata"]["labels"]["app.kubernetes.io/name"], "t2");
            assert!(b["metadata"].get("ownerReferences").is_none());
            assert_eq!(b["data"]["workers"], workers.to_string());
            assert!(b["data"]["spec.json"]
                .as_str()
                .unwrap()
                .contains("\"command\""));
        })
        .json(201, root)
}

/// Creating an owned object `kind/name`: checks the owner reference carries the root's uid.
fn create_owned(kind: &str, name: &str) -> Step {
    let name = name.to_string();
    Step::new("POST", format!("{}?", path(kind)))
        .check(move |b, _| {
            assert_eq!(b["metadata"]["name"], name.as_str());
            let refs = &b["metadata"]["ownerReferences"];
            assert_eq!(refs[0]["uid"], UID, "{name} must be owned by the root");
            assert_eq!(refs[0]["kind"], "ConfigMap");
        })
        .json(201, json!({"metadata": {"name": "x", "uid": "u"}}))
}

fn create_all(job: &TestJob) -> Vec<Step> {
    let id = &job.info.id;
    vec![
        create_root(job),
        create_owned("serviceaccounts", &format!("{id}-jm")),
        create_owned("roles", &format!("{id}-jm")),
        create_owned("rolebindings", &format!("{id}-jm")),
        create_owned("secrets", &format!("{id}-token")),
        create_owned("services", id),
        create_owned("services", &format!("{id}-jm")),
        create_owned("networkpolicies", id),
        create_owned("networkpolicies", &format!("{id}-jm")),
        create_owned("statefulsets", &format!("{id}-jm")),
        create_owned("statefulsets", id),
    ]
}

fn pods_list(job: &TestJob, items: Vec<Value>) -> Step {
    Step::new(
        "GET",
        format!(
            "{}?&labelSelector=app.kubernetes.io%2Fname%3Dt2%2Ct2.io%2Fjob%3D{}",
            path("pods"),
            job.info.id
        ),
    )
    .json(200, list("Pod", "100", items))
}

fn pods_watch(job: &TestJob, rv: &str, body: String) -> Step {
    Step::new(
        "GET",
        format!(
            "{}?&watch=true&timeoutSeconds=290&labelSelector=app.kubernetes.io%2Fname%3Dt2%2Ct2.io%2Fjob%3D{}&allowWatchBookmarks=true&resourceVersion={rv}",
            path("pods"),
            job.info.id
        ),
    )
    .raw(200, body)
}

fn delete_root(job: &TestJob) -> Step {
    let id = job.info.id.clone();
    Step::new("DELETE", format!("{}/{id}?", path("configmaps")))
        .check(|b, _| assert_eq!(b["propagationPolicy"], "Background"))
        .json(
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}),
        )
}

fn package() -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), b"package bytes").unwrap();
    f
}

#[tokio::test]
async fn an_existing_job_is_refused_with_409_and_nothing_is_deleted() {
    let job = jobs::plain();
    let pkg = package();
    let mut steps = vec![no_uploader()];
    steps.push(
        Step::new("POST", format!("{}?", path("configmaps"))).status(
            409,
            "AlreadyExists",
            &format!("configmaps \"{}\" already exists", job.info.id),
        ),
    );
    let p = plan(&job, pkg.path(), true, None);
    let e = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, KubeError::AlreadyExists { .. }), "{msg}");
    assert_eq!(
        msg,
        format!("ConfigMap '{0}' already exists in namespace 't2-jobs'; a job with this ID is already there (see 't2 list --cluster kubernetes'); submit again for a new ID or delete it with 't2 kill {0}'", job.info.id)
    );
}

#[tokio::test]
async fn a_direct_submit_creates_the_root_first_delivers_to_waiting_pods_and_follows_to_completion()
{
    let job = jobs::plain();
    let id = job.info.id.clone();
    let pkg = package();
    let fake = Arc::new(FakeDeliverer::default());
    let w = |i: u32, rv: &str, st: Value| pods::pod(&id, &format!("{id}-{i}"), "worker", rv, st);
    let jm = |rv: &str, st: Value| pods::pod(&id, &format!("{id}-jm-0"), "jobmaster", rv, st);
    let mut steps = vec![no_uploader()];
    steps.extend(create_all(&job));
    steps.push(pods_list(&job, vec![w(0, "90", pods::init_running())]));
    let mut evs: Vec<(&str, Value)> = (1..4)
        .map(|i| ("ADDED", w(i, "101", pods::init_running())))
        .collect();
    evs.push(("ADDED", jm("102", pods::running())));
    evs.extend((0..4).map(|i| ("MODIFIED", w(i, "110", pods::running()))));
    steps.push(pods_watch(&job, "100", events(&evs)));
    // Following the job: its root, then the states the job master records.
    let field = format!("{}?&fieldSelector=metadata.name%3D{id}", path("configmaps"));
    let root = |rv: &str, state: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": id, "resourceVersion": rv},
               "data": {"jobmaster.state": state, "jobmaster.reason": ""}})
    };
    steps.push(
        Step::new("GET", field.clone())
            .json(200, list("ConfigMap", "200", vec![root("200", "RUNNING")])),
    );
    steps.push(
        Step::new(
            "GET",
            format!("{}?&watch=true&timeoutSeconds=290&fieldSelector=metadata.name%3D{id}&allowWatchBookmarks=true&resourceVersion=200", path("configmaps")),
        )
        .raw(200, events(&[("MODIFIED", root("201", "COMPLETED"))])),
    );
    let p = plan(&job, pkg.path(), false, Some(fake.clone()));
    let out = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap();
    assert_eq!(
        out,
        Outcome::Ended(Ended {
            state: Some("COMPLETED".into()),
            reason: None
        })
    );
    let mut got = fake.0.lock().unwrap().clone();
    got.sort();
    let mut want: Vec<String> = (0..4).map(|i| format!("{id}-{i}")).collect();
    want.sort();
    assert_eq!(
        got, want,
        "each worker pod's init container once; the job master gets its copy from the workers"
    );
}

#[tokio::test]
async fn an_uploader_submit_uploads_once_through_the_service_proxy_and_pods_download() {
    let job = jobs::plain();
    let id = job.info.id.clone();
    let pkg = package();
    let sha = job.info.package_sha256.clone();
    let proxy = format!("{}/t2-uploader:8080/proxy/packages/{sha}", path("services"));
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "t2-uploader", "labels": {"app.kubernetes.io/name": "t2-uploader"},
                     "annotations": {"t2.io/token-secret": "t2-uploader-token"}},
        "spec": {"ports": [{"name": "http", "port": 8080}]}});
    let mut steps = vec![
        Step::new(
            "GET",
            format!(
                "{}?&labelSelector=app.kubernetes.io%2Fname%3Dt2-uploader",
                path("services")
            ),
        )
        .json(200, list("Service", "5", vec![svc])),
        Step::new("GET", format!("{}/t2-uploader-token", path("secrets"))).json(
            200,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t2-uploader-token"},
                              "data": {"token": "c2VjcmV0LXRva2Vu"}}),
        ),
        Step::new("HEAD", proxy.clone()).raw(404, ""),
        Step::new("PUT", format!("{proxy}?job={id}"))
            .check(|b, h| {
                assert_eq!(h["x-t2-uploader-token"], "secret-token");
                assert_eq!(b["raw"], "package bytes");
            })
            .raw(201, "stored"),
    ];
    let mut creates = create_all(&job);
    // The workers' init container downloads from the uploader's cluster address.
    let url = format!("http://t2-uploader.{NS}.svc:8080/packages/{sha}");
    creates[10] = create_owned("statefulsets", &id).check(move |b, _| {
        let env = b["spec"]["template"]["spec"]["initContainers"][0]["env"]
            .as_array()
            .unwrap()
            .clone();
        assert!(
            env.contains(&json!({"name": "T2_PACKAGE_URL", "value": url})),
            "{env:?}"
        );
    });
    steps.extend(creates);
    let all: Vec<Value> = (0..4)
        .map(|i| pods::pod(&id, &format!("{id}-{i}"), "worker", "90", pods::running()))
        .chain([pods::pod(
            &id,
            &format!("{id}-jm-0"),
            "jobmaster",
            "90",
            pods::running(),
        )])
        .collect();
    steps.push(pods_list(&job, all));
    let p = plan(&job, pkg.path(), true, None);
    let out = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap();
    assert_eq!(out, Outcome::Detached);
}

#[tokio::test]
async fn a_failed_create_deletes_the_root_and_names_the_verb_and_resource() {
    let job = jobs::plain();
    let id = job.info.id.clone();
    let pkg = package();
    let mut steps = vec![no_uploader()];
    let mut creates = create_all(&job);
    creates.truncate(6);
    steps.extend(creates);
    steps.push(Step::new("POST", format!("{}?", path("services"))).status(
        403,
        "Forbidden",
        "services is forbidden: User \"alice\" cannot create resource \"services\" in API group \"\" in the namespace \"t2-jobs\"",
    ));
    steps.push(delete_root(&job));
    let p = plan(&job, pkg.path(), true, None);
    let e = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(!msg.contains('\n'));
    assert!(
        msg.starts_with(&format!("forbidden: you may not create services in namespace 't2-jobs' (object '{id}-jm'); ask a cluster admin")),
        "{msg}"
    );
    assert!(msg.contains("run 't2 doctor kubernetes'"), "{msg}");
    assert!(msg.ends_with(&format!("; job {id} was removed again (its root ConfigMap deleted, Kubernetes removes the rest)")), "{msg}");
}

#[tokio::test]
async fn a_failed_rollback_says_what_is_left_and_how_to_remove_it() {
    let job = jobs::plain();
    let id = job.info.id.clone();
    let pkg = package();
    let mut steps = vec![no_uploader()];
    steps.extend(create_all(&job).into_iter().take(4));
    steps.push(Step::new("POST", format!("{}?", path("secrets"))).status(
        500,
        "InternalError",
        "etcd is sad",
    ));
    steps.push(
        Step::new("DELETE", format!("{}/{id}?", path("configmaps"))).status(
            500,
            "InternalError",
            "etcd is still sad",
        ),
    );
    let p = plan(&job, pkg.path(), true, None);
    let e = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "cannot create secrets '{id}-token' in namespace 't2-jobs': etcd is sad (HTTP 500)"
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!(
            "but: could not delete it (cannot delete configmaps '{id}'"
        )),
        "{e}"
    );
    assert!(
        e.contains(&format!("remove it with 't2 kill {id} -n t2-jobs'")),
        "{e}"
    );
}

async fn fails_to_start(status: Value) -> String {
    let job = jobs::plain();
    let id = job.info.id.clone();
    let pkg = package();
    let mut steps = vec![no_uploader()];
    steps.extend(create_all(&job));
    steps.push(pods_list(&job, vec![]));
    let bad = pods::pod(&id, &format!("{id}-2"), "worker", "101", status);
    steps.push(pods_watch(&job, "100", events(&[("ADDED", bad)])));
    steps.push(delete_root(&job));
    let p = plan(
        &job,
        pkg.path(),
        true,
        Some(Arc::new(FakeDeliverer::default())),
    );
    let e = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(&e, KubeError::RolledBack { cause, .. } if matches!(**cause, KubeError::StartFailed { .. })),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.starts_with(&format!("job {id} failed to start: pod {id}-2: ")),
        "{msg}"
    );
    msg
}

#[tokio::test]
async fn image_pull_back_off_fails_fast_with_the_pods_reason_and_removes_the_job() {
    let msg = fails_to_start(pods::waiting(
        "worker-0",
        "ImagePullBackOff",
        "Back-off pulling image \"t2:0.1.0\"",
    ))
    .await;
    assert!(msg.contains("container worker-0: ImagePullBackOff: Back-off pulling image \"t2:0.1.0\"; check kubernetes.image"), "{msg}");
    assert!(msg.contains("was removed again"), "{msg}");
}

#[tokio::test]
async fn a_missing_secret_and_a_failed_init_container_fail_fast_too() {
    let msg = fails_to_start(pods::waiting(
        "worker-0",
        "CreateContainerConfigError",
        "secret \"s3\" not found",
    ))
    .await;
    assert!(msg.contains("CreateContainerConfigError: secret \"s3\" not found; does every Secret in kubernetes.secrets"), "{msg}");
    let msg = fails_to_start(pods::init_failed(
        "t2-init: package 5e1f… not on the uploader (HTTP 404)",
    ))
    .await;
    assert!(msg.contains("the init container could not get the package: t2-init: package 5e1f… not on the uploader (HTTP 404)"), "{msg}");
}

#[tokio::test(start_paused = true)]
async fn an_unschedulable_pod_fails_the_submit_after_start_timeout() {
    let mut job = jobs::plain();
    job.settings.start_timeout = std::time::Duration::from_secs(10);
    let id = job.info.id.clone();
    let pkg = package();
    let mut steps = vec![no_uploader()];
    steps.extend(create_all(&job));
    let stuck = pods::pod(
        &id,
        &format!("{id}-0"),
        "worker",
        "90",
        pods::unschedulable("0/3 nodes are available: 3 Insufficient cpu."),
    );
    steps.push(pods_list(&job, vec![stuck]));
    // The watch stays open (no events) while the deadline passes.
    steps.push(pods_watch(&job, "100", String::new()).delay(std::time::Duration::from_secs(60)));
    steps.push(delete_root(&job));
    let p = plan(
        &job,
        pkg.path(),
        true,
        Some(Arc::new(FakeDeliverer::default())),
    );
    let e = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("job {id} failed to start: pod {id}-0 could not be scheduled for 10s: 0/3 nodes are available: 3 Insufficient cpu.; lower the job's resources")),
        "{e}"
    );
}

#[tokio::test]
async fn twister2s_mpi_mode_needs_its_ssh_key_secret_before_anything_is_created() {
    let job = jobs::mpi_ssh();
    let secret = format!("{}/twister2-openmpi-ssh-key", path("secrets"));
    let pkg = package();
    // No such Secret: one line saying how to make it, and no other request at all.
    let steps = vec![Step::new("GET", &secret).status(
        404,
        "NotFound",
        "secrets \"twister2-openmpi-ssh-key\" not found",
    )];
    let p = plan(&job, pkg.path(), true, None);
    let msg = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err()
        .to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.contains("kubernetes.mpi_ssh_secret: there is no Secret 'twister2-openmpi-ssh-key' in namespace 't2-jobs'")
            && msg.contains("kubectl -n t2-jobs create secret generic twister2-openmpi-ssh-key --from-file=id_rsa="),
        "{msg}"
    );
    // A Secret without the public keys sshd accepts.
    let partial = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "twister2-openmpi-ssh-key"}, "data": {"id_rsa": "a2V5"}});
    let steps = vec![Step::new("GET", &secret).json(200, partial)];
    let p = plan(&job, pkg.path(), true, None);
    let msg = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(
            "Secret 'twister2-openmpi-ssh-key' in namespace 't2-jobs' has no key authorized_keys;"
        ),
        "{msg}"
    );
    // With both keys the submit goes on (here to a create that is refused, and rolled back).
    let full = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "twister2-openmpi-ssh-key"},
        "data": {"id_rsa": "a2V5", "authorized_keys": "cHVi"}});
    let steps = vec![
        Step::new("GET", &secret).json(200, full),
        no_uploader(),
        Step::new("POST", format!("{}?", path("configmaps"))).status(
            409,
            "AlreadyExists",
            &format!("configmaps \"{}\" already exists", job.info.id),
        ),
    ];
    let p = plan(&job, pkg.path(), true, None);
    let e = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::AlreadyExists { .. }), "{e}");
    // A plain MPI job (t2 as the remote shell) needs no Secret: it goes straight on.
    let plain = jobs::mpi();
    let steps = vec![
        no_uploader(),
        Step::new("POST", format!("{}?", path("configmaps"))).status(
            409,
            "AlreadyExists",
            &format!("configmaps \"{}\" already exists", plain.info.id),
        ),
    ];
    let p = plan(&plain, pkg.path(), true, None);
    let e = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::AlreadyExists { .. }), "{e}");
}

/// Issue 18 (res18): the existing claims of `kubernetes.volumes` are read before anything is
/// created: a missing one, or one whose access modes do not fit the worker pods, fails with
/// one line and no other request.
#[tokio::test]
async fn existing_claims_are_checked_before_anything_is_created() {
    let job = jobs::existing_volumes();
    let pkg = package();
    let claim = |name: &str| format!("{}/{name}", path("persistentvolumeclaims"));
    let pvc = |name: &str, modes: Value| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"accessModes": modes}, "status": {"phase": "Bound", "accessModes": modes}})
    };
    // The first claim is missing.
    let steps = vec![Step::new("GET", claim("pv1000g")).status(
        404,
        "NotFound",
        "persistentvolumeclaims \"pv1000g\" not found",
    )];
    let p = plan(&job, pkg.path(), true, None);
    let msg = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err()
        .to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.starts_with("kubernetes.volumes[0].claim: there is no PersistentVolumeClaim 'pv1000g' in namespace 't2-jobs'"),
        "{msg}"
    );
    // The output claim is ReadWriteOnce, and the job's 3 pods write to it.
    let steps = vec![
        Step::new("GET", claim("pv1000g")).json(200, pvc("pv1000g", json!(["ReadOnlyMany"]))),
        Step::new("GET", claim("shared-workspace"))
            .json(200, pvc("shared-workspace", json!(["ReadWriteOnce"]))),
    ];
    let p = plan(&job, pkg.path(), true, None);
    let msg = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("kubernetes.volumes[1].claim: PersistentVolumeClaim 'shared-workspace' is ReadWriteOnce, but 3 worker pods would write to it; use a ReadWriteMany claim"),
        "{msg}"
    );
    // Both fit: the submit goes on (to a create refused here).
    let steps = vec![
        Step::new("GET", claim("pv1000g")).json(200, pvc("pv1000g", json!(["ReadOnlyMany"]))),
        Step::new("GET", claim("shared-workspace"))
            .json(200, pvc("shared-workspace", json!(["ReadWriteMany"]))),
        no_uploader(),
        Step::new("POST", format!("{}?", path("configmaps"))).status(
            409,
            "AlreadyExists",
            &format!("configmaps \"{}\" already exists", job.info.id),
        ),
    ];
    let p = plan(&job, pkg.path(), true, None);
    let e = run(steps, |kube| async move { submit(&kube, p).await })
        .await
        .unwrap_err();
    assert!(matches!(e, KubeError::AlreadyExists { .. }), "{e}");
}
