//! The real `t2` binary on the Kubernetes paths that need no cluster: `--dry-run -o yaml`,
//! every bad input (missing kubeconfig, unknown context, unreachable API server, forbidden,
//! an existing job, an invalid image) as one line with a non-zero exit and nothing left
//! behind, and the in-pod roles (`t2 pod receive`, `t2 pod init`, `t2 pod agent` against a
//! real job master).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{repo, run, t2, text};
use sha2::{Digest, Sha256};

const DEADLINE: Duration = Duration::from_secs(60);

fn kubeconfig(dir: &Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster: {{server: '{server}'}}\ncontexts:\n- name: test\n  context: {{cluster: test, user: u, namespace: jobs}}\nusers:\n- name: u\n  user: {{token: abc}}\n"
        ),
    )
    .unwrap();
    path
}

/// `t2` with no kubeconfig anywhere unless one is given.
fn t2k(home: &Path, kc: Option<&Path>) -> Command {
    let mut c = t2(home);
    c.env("HOME", home).env_remove("KUBERNETES_SERVICE_HOST");
    match kc {
        Some(k) => c.env("KUBECONFIG", k),
        None => c.env_remove("KUBECONFIG"),
    };
    c
}

/// Job folders left under `home`: local ones (`jobs/`) and Kubernetes submits' staging
/// folders (`staging/kubernetes/jobs/`), which a submit removes whatever its outcome.
fn jobs_left(home: &Path) -> usize {
    let count = |dir: std::path::PathBuf| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    count(home.join("jobs")) + count(home.join("staging").join("kubernetes").join("jobs"))
}

/// Runs `args`, expects failure with exactly one stderr line starting with `want`.
fn fails(home: &Path, kc: Option<&Path>, args: &[&str], want: &str) {
    let mut c = t2k(home, kc);
    c.args(args).current_dir(repo());
    let out = run(c, DEADLINE);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "{args:?} should fail: {}",
        text(&out)
    );
    assert_eq!(err.lines().count(), 1, "{args:?}: one line please:\n{err}");
    assert!(
        err.starts_with(&format!("error: {want}")),
        "{args:?}:\n  got:  {err}\n  want: error: {want}"
    );
    assert_eq!(jobs_left(home), 0, "nothing left behind in $T2_HOME");
}

#[test]
fn dry_run_prints_every_object_and_creates_nothing() {
    let home = tempfile::tempdir().unwrap();
    let mut c = t2k(home.path(), None);
    c.args([
        "submit",
        "kubernetes",
        "examples/shell",
        "--workers",
        "4",
        "--dry-run",
        "-o",
        "yaml",
        "-n",
        "demo",
    ])
    .current_dir(repo());
    let out = run(c, DEADLINE);
    assert!(out.status.success(), "{}", text(&out));
    let yaml = String::from_utf8_lossy(&out.stdout);
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Secret",
            "Service",
            "Service",
            "NetworkPolicy",
            "NetworkPolicy",
            "StatefulSet",
            "StatefulSet"
        ]
    );
    for d in &docs {
        assert_eq!(d["metadata"]["namespace"], "demo");
    }
    // The workers' StatefulSet comes last.
    assert_eq!(docs[10]["kind"], "StatefulSet");
    assert_eq!(docs[10]["spec"]["replicas"], 4);
    assert_eq!(jobs_left(home.path()), 0);
    let mut c = t2k(home.path(), None);
    c.args([
        "submit",
        "kubernetes",
        "examples/shell",
        "--dry-run",
        "-o",
        "json",
    ])
    .current_dir(repo());
    let out = run(c, DEADLINE);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["namespace"], "default");
}

#[test]
fn bad_inputs_are_one_line_with_nothing_left_behind() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let submit = ["submit", "kubernetes", "examples/shell"];
    fails(
        h,
        None,
        &submit,
        "no kubeconfig: KUBECONFIG is not set and ~/.kube/config does not exist",
    );
    let missing = h.join("nope.yaml");
    fails(
        h,
        Some(&missing),
        &submit,
        &format!("KUBECONFIG={} names no existing file", missing.display()),
    );
    let dead = kubeconfig(h, "https://127.0.0.1:1");
    fails(
        h,
        Some(&dead),
        &[
            "submit",
            "kubernetes",
            "examples/shell",
            "--context",
            "other",
        ],
        "context 'other' is not in kubeconfig",
    );
    fails(
        h,
        Some(&dead),
        &submit,
        "cannot reach the Kubernetes API server https://127.0.0.1:1: ",
    );
    fails(
        h,
        Some(&dead),
        &[
            "submit",
            "kubernetes",
            "examples/shell",
            "-D",
            "kubernetes.image=Not An Image",
        ],
        "kubernetes.image: 'Not An Image' is not a valid image reference",
    );
    fails(
        h,
        Some(&dead),
        &["submit", "kubernetes", "examples/shell", "-n", "Bad_NS"],
        "-n Bad_NS: not a valid namespace name",
    );
    fails(
        h,
        Some(&dead),
        &["kill", "pi-12345678", "--cluster", "kubernetes"],
        "cannot reach the Kubernetes API server",
    );
    fails(
        h,
        Some(&dead),
        &["status", "../x", "--cluster", "kubernetes"],
        "invalid job ID '../x'",
    );
}

/// A fake API server answering each request by `(method, path prefix)` with `(status, body)`.
fn fake_api(routes: Vec<(&'static str, &'static str, u16, String)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let routes = routes.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let (method, path) = (
                        parts.next().unwrap_or("").to_string(),
                        parts.next().unwrap_or("").to_string(),
                    );
                    let mut len = 0usize;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        if h == "\r\n" || h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    reader.read_exact(&mut body).unwrap();
                    let (status, reply) = routes
                        .iter()
                        .find(|(m, p, _, _)| *m == method && path.starts_with(p))
                        .map(|(_, _, s, b)| (*s, b.clone()))
                        .unwrap_or((404, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"not here"}"#.into()));
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                    if conn.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn status_json(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": message}).to_string()
}

#[test]
fn forbidden_and_existing_jobs_are_named_on_one_line() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let server = fake_api(vec![(
        "GET",
        "/api/v1/namespaces/jobs/services",
        403,
        status_json(403, "Forbidden", "services is forbidden"),
    )]);
    let kc = kubeconfig(h, &server);
    fails(
        h,
        Some(&kc),
        &["submit", "kubernetes", "examples/shell"],
        "forbidden: you may not list services in namespace 'jobs'; ask a cluster admin to bind the t2 submitter Role (deploy/rbac.yaml) to you, and run 't2 doctor kubernetes' to see every missing permission",
    );
    let empty =
        r#"{"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}"#
            .to_string();
    let server = fake_api(vec![
        ("GET", "/api/v1/namespaces/jobs/services", 200, empty),
        (
            "POST",
            "/api/v1/namespaces/jobs/configmaps",
            409,
            status_json(409, "AlreadyExists", "configmaps \"x\" already exists"),
        ),
    ]);
    let kc = kubeconfig(h, &server);
    fails(
        h,
        Some(&kc),
        &["submit", "kubernetes", "examples/shell"],
        "ConfigMap 'shell-",
    );
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[test]
fn pod_receive_and_init_hand_the_package_over_verified() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("package/package.tar.gz");
    let data = b"not really a tarball, but bytes".repeat(1000);
    let hash = sha(&data);
    // The init container waits for the package ...
    let mut init = t2(dir.path());
    init.args(["pod", "init"])
        .env("T2_PACKAGE_PATH", &pkg)
        .env("T2_PACKAGE_SHA256", &hash)
        .env("T2_PACKAGE_BYTES", data.len().to_string())
        .env("T2_PACKAGE_TIMEOUT", "30s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let init = init.spawn().unwrap();
    // ... which arrives on stdin, as over the exec API.
    let mut recv = t2(dir.path());
    recv.args([
        "pod",
        "receive",
        "--bytes",
        &data.len().to_string(),
        "--sha256",
        &hash,
        "--dest",
    ])
    .arg(&pkg)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = recv.spawn().unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = common::wait(child, DEADLINE);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("received {hash}")
    );
    let out = common::wait(init, DEADLINE);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(&pkg).unwrap(), data);
    // A damaged stream is refused and the init container gives up with a clear line.
    let mut recv = t2(dir.path());
    recv.args([
        "pod", "receive", "--bytes", "5", "--sha256", &hash, "--dest",
    ])
    .arg(dir.path().join("other.tar.gz"))
    .stdin(Stdio::piped());
    recv.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = recv.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"12345").unwrap();
    let out = common::wait(child, DEADLINE);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("t2-receive: the package arrived damaged: sha256 "),
        "{}",
        text(&out)
    );
    let mut init = t2(dir.path());
    init.args(["pod", "init"])
        .env("T2_PACKAGE_PATH", dir.path().join("never.tar.gz"))
        .env("T2_PACKAGE_SHA256", &hash)
        .env("T2_PACKAGE_BYTES", "10")
        .env("T2_PACKAGE_TIMEOUT", "1s");
    let out = run(init, DEADLINE);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "t2-init: no package arrived within 1s: 't2 submit' streams it into the pods"
        ),
        "{err}"
    );
}

#[test]
fn a_program_the_build_step_makes_is_checked_after_the_build() {
    let home = tempfile::tempdir().unwrap();
    let job = home.path().join("built");
    std::fs::create_dir_all(&job).unwrap();
    let yaml = |build: &str| format!("name: built\ncommand: [./prog]\nbuild: \"{build}\"\n");
    // A dry run skips the build, so the program need not exist yet (as for
    // examples/mpi-allreduce, whose build step compiles it).
    std::fs::write(
        job.join("job.yaml"),
        yaml("printf '#!/bin/sh\\\\necho hi\\\\n' > prog && chmod +x prog"),
    )
    .unwrap();
    let mut c = t2k(home.path(), None);
    c.args([
        "submit",
        "kubernetes",
        job.to_str().unwrap(),
        "--dry-run",
        "-o",
        "yaml",
    ]);
    let out = run(c, DEADLINE);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!job.join("prog").exists(), "a dry run builds nothing");
    // A build that does not make it: refused after the build, with nothing left behind.
    std::fs::write(job.join("job.yaml"), yaml("true")).unwrap();
    let kc = kubeconfig(home.path(), "https://127.0.0.1:1");
    let mut c = t2k(home.path(), Some(&kc));
    c.args(["submit", "kubernetes", job.to_str().unwrap()]);
    let out = run(c, DEADLINE);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(err.contains("t2: building: true"), "{err}");
    assert!(
        err.lines().last().is_some_and(
            |l| l.starts_with("error: job.yaml: command './prog' is not in the package")
        ),
        "{err}"
    );
    assert_eq!(jobs_left(home.path()), 0, "nothing left behind in $T2_HOME");
}
