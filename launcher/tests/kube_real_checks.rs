//! What the real API server and controllers decide, on a real control plane: fail-fast
//! submits (a pod in ImagePullBackOff; a node selector no node has) within their deadline,
//! naming the reason and leaving nothing; RBAC by the real authorizer (`t2 doctor` and a submit
//! as a user bound only to deploy/rbac.yaml's t2-submitter Role, through impersonation; a user
//! without it refused, with the fix); and `--dry-run -o yaml` piped into the real
//! `kubectl apply --dry-run=server`: only the root is accepted, every owned object is refused
//! for its placeholder owner UID.

mod kube_real_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube_real_support::{kubectl, plane, text, TestNs};

const DEADLINE: Duration = Duration::from_secs(240);

/// A copy of the admin kubeconfig that impersonates `user` (authorized as that user alone).
fn impersonating(dir: &Path, user: &str) -> PathBuf {
    let admin = std::fs::read_to_string(&plane().kubeconfig).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&admin).unwrap();
    doc["users"][0]["user"]["as"] = serde_yaml::Value::String(user.into());
    let path = dir.join(format!("{user}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&doc).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn image_pull_backoff_fails_the_submit_with_the_reason_and_leaves_nothing() {
    let ns = TestNs::new("pull").await;
    let out = ns
        .run(
            &[
                "submit",
                "kubernetes",
                "examples/shell",
                "--workers",
                "2",
                "-D",
                "kubernetes.image=unpullable.invalid/t2:0.1.0",
            ],
            DEADLINE,
        )
        .await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("ImagePullBackOff"), "names the reason: {all}");
    assert!(all.contains("kubernetes.image"), "names the setting: {all}");
    let id = kube_real_support::job_id(&out);
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_selector_no_node_has_fails_the_submit_within_start_timeout() {
    let ns = TestNs::new("nonode").await;
    let out = ns
        .run(
            &[
                "submit",
                "kubernetes",
                "examples/shell",
                "--workers",
                "2",
                "-D",
                "kubernetes.node_selector.type=gpu",
                "-D",
                "kubernetes.start_timeout=5s",
            ],
            DEADLINE,
        )
        .await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("could not be scheduled"), "{all}");
    // The scheduler's own reason.
    assert!(
        all.contains("node(s) didn't match"),
        "the scheduler's words: {all}"
    );
    let id = kube_real_support::job_id(&out);
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dry_run_yaml_piped_into_kubectl_apply_makes_no_object_gc_would_delete() {
    let ns = TestNs::new("dry").await;
    let out = ns
        .run(
            &[
                "submit",
                "kubernetes",
                "examples/shell",
                "--workers",
                "4",
                "-D",
                "workers_per_pod=2",
                "-D",
                "kubernetes.spread=racks",
                "-D",
                "kubernetes.memory_volume_mb=64",
                "--dry-run",
                "-o",
                "yaml",
            ],
            DEADLINE,
        )
        .await;
    assert!(out.status.success(), "{}", text(&out));
    let yaml = String::from_utf8(out.stdout.clone()).unwrap();
    // No real secret in a dry run's output.
    assert!(yaml.contains("<made by t2 submit>"), "{yaml}");
    let applied = kubectl(
        &["apply", "--dry-run=server", "-n", &ns.name, "-f", "-"],
        Some(&yaml),
    )
    .await;
    let all = text(&applied);
    // The root (which owns nothing yet) is accepted; every object it would own carries the
    // placeholder owner UID, which the real API server refuses, so nothing is made that
    // garbage collection would delete at once.
    assert!(!applied.status.success(), "{all}\n{yaml}");
    let id = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("t2.io/job: "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("a t2.io/job label in the YAML");
    assert!(
        all.contains(&format!("configmap/{id} created (server dry run)")),
        "{all}"
    );
    assert!(
        all.contains("ownerReferences"),
        "the refusal names the owner: {all}"
    );
    assert!(all.contains("uid"), "{all}");
    for kind in ["secret/", "service/", "statefulset.apps/"] {
        let accepted: Vec<&str> = all
            .lines()
            .filter(|l| l.starts_with(kind) && l.contains("created"))
            .collect();
        assert!(
            accepted.is_empty(),
            "accepted with a placeholder owner: {accepted:?}\n{all}"
        );
    }
    // Nothing was created.
    let got = kubectl(
        &[
            "get",
            "configmaps,statefulsets",
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
        String::from_utf8_lossy(&got.stdout).trim().is_empty(),
        "{}",
        text(&got)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_t2_submitter_passes_doctor_and_submits_and_a_user_without_it_is_refused() {
    let ns = TestNs::new("rbac").await;
    let out = kubectl(
        &[
            "-n",
            &ns.name,
            "create",
            "rolebinding",
            "t2-submitter-alice",
            "--role=t2-submitter",
            "--user=alice",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    // alice submits without an uploader: she also needs exec (direct delivery).
    let out = kubectl(
        &[
            "-n",
            &ns.name,
            "create",
            "rolebinding",
            "t2-direct-delivery-alice",
            "--role=t2-direct-delivery",
            "--user=alice",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    // carol has t2-submitter alone.
    let out = kubectl(
        &[
            "-n",
            &ns.name,
            "create",
            "rolebinding",
            "t2-submitter-carol",
            "--role=t2-submitter",
            "--user=carol",
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let alice = impersonating(ns.home.path(), "alice");
    let bob = impersonating(ns.home.path(), "bob");
    let carol = impersonating(ns.home.path(), "carol");
    // alice: every check passes, and her job runs to its end.
    let mut c = ns.t2_with(&alice);
    c.args(["doctor", "kubernetes", "-n", &ns.name]);
    let out = ns.finish(c, &["doctor"], DEADLINE).await;
    assert!(out.status.success(), "doctor as alice: {}", text(&out));
    let mut c = ns.t2_with(&alice);
    c.args([
        "submit",
        "kubernetes",
        "examples/shell",
        "--workers",
        "2",
        "-n",
        &ns.name,
    ]);
    let out = ns.finish(c, &["submit as alice"], DEADLINE).await;
    let all = text(&out);
    assert!(
        out.status.success() && all.contains("COMPLETED"),
        "{all}\nruntime:\n{}",
        ns.runtime.report()
    );
    let id = kube_real_support::job_id(&out);
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
    // A submitter reads no job's Secrets (the token), by name or by listing.
    for args in [
        vec!["-n", ns.name.as_str(), "get", "secrets"],
        vec!["-n", ns.name.as_str(), "get", "secret", "any-job-token"],
    ] {
        let out = kube_real_support::kubectl_as(&alice, &args, None).await;
        let all = text(&out);
        assert!(
            !out.status.success() && all.contains("forbidden"),
            "{args:?} as alice: {all}"
        );
    }
    // carol (t2-submitter alone) may not exec: with no uploader, doctor says so and how to fix it.
    let mut c = ns.t2_with(&carol);
    c.args(["doctor", "kubernetes", "-n", &ns.name]);
    let out = ns.finish(c, &["doctor as carol"], DEADLINE).await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("you may not create pods/exec")
            && all.contains("--role=t2-direct-delivery --user="),
        "{all}"
    );
    assert!(
        !all.contains("--role=t2-submitter --user="),
        "carol has every t2-submitter permission: {all}"
    );
    // bob: doctor fails and prints the fix; a submit is refused before anything is made.
    let mut c = ns.t2_with(&bob);
    c.args(["doctor", "kubernetes", "-n", &ns.name]);
    let out = ns.finish(c, &["doctor as bob"], DEADLINE).await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("fix:")
            && all.contains("create rolebinding")
            && all.contains("--role=t2-submitter"),
        "doctor prints the fix: {all}"
    );
    let mut c = ns.t2_with(&bob);
    c.args([
        "submit",
        "kubernetes",
        "examples/shell",
        "--workers",
        "2",
        "-n",
        &ns.name,
    ]);
    let out = ns.finish(c, &["submit as bob"], DEADLINE).await;
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("forbidden") || all.contains("Forbidden") || all.contains("not allowed"),
        "{all}"
    );
    let got = kubectl(
        &[
            "get",
            "configmaps",
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
        String::from_utf8_lossy(&got.stdout).trim().is_empty(),
        "bob made nothing: {}",
        text(&got)
    );
}
