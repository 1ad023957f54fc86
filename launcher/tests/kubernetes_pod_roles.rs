//! The in-pod worker agent without a cluster: a real `t2 jobmaster` and four `t2 pod agent`
//! processes set up exactly as the worker StatefulSet's pods would be (two pods of two
//! containers; the pod name, container index, pod IP, token and package from the
//! environment). Worker IDs come out as ordinal × workers_per_pod + index, the job
//! completes (over TLS, the agents checking the job master Service's name against the
//! certificate in the job's Secret), and finished agents wait for SIGTERM (a StatefulSet
//! would restart them).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{repo, t2, text, wait};
use sha2::{Digest, Sha256};

const DEADLINE: Duration = Duration::from_secs(60);

fn sigterm(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

#[test]
fn pod_agents_get_worker_ids_from_ordinal_and_container_and_complete_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    // The objects a submit would create, to take the spec and token from.
    let mut c = t2(home);
    c.env("HOME", home).env_remove("KUBECONFIG");
    c.args([
        "submit",
        "kubernetes",
        "examples/shell",
        "-D",
        "workers_per_pod=2",
        "--dry-run",
        "-o",
        "json",
    ])
    .current_dir(repo());
    let out = common::run(c, DEADLINE);
    assert!(out.status.success(), "{}", text(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = &list["items"][0];
    let id = root["metadata"]["name"].as_str().unwrap().to_string();
    let secret = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Secret")
        .expect("the job's Secret");
    // A dry run shows placeholders for the token and the certificate (they are made at a
    // real submit): make them here, for the names the Secret's certificate would carry.
    assert_eq!(secret["stringData"]["token"], "<made by t2 submit>");
    let token = hex::encode(rand::random::<[u8; 32]>());
    let spec_json = root["data"]["spec.json"].as_str().unwrap();
    // The job master, as `t2 jobmaster` reads a job folder.
    let job_dir = home.join("jobs").join(&id);
    std::fs::create_dir_all(&job_dir).unwrap();
    std::fs::write(job_dir.join("spec.json"), spec_json).unwrap();
    std::fs::write(job_dir.join("token"), &token).unwrap();
    // TLS (on by default on Kubernetes): a certificate for the job master's Service names, as
    // the Secret carries at a real submit; the agents trust its CA and check the name of the
    // job master's Service.
    let data = &secret["stringData"];
    for key in ["ca.crt", "tls.crt", "tls.key"] {
        assert_eq!(data[key], "<made by t2 submit>", "{key} in a dry run");
    }
    let namespace = root["metadata"]["namespace"].as_str().unwrap().to_string();
    let svc = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == format!("{id}-jm").as_str())
        .expect("the job master's Service")["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let names = vec![
        svc.clone(),
        format!("{svc}.{namespace}"),
        format!("{svc}.{namespace}.svc"),
        format!("{svc}.{namespace}.svc.cluster.local"),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    let certs = t2_core::tls::mint(&id, &names).unwrap();
    certs.write(&job_dir).unwrap();
    let ca = certs.ca_pem.clone();
    let pkg = home.join("package.tar.gz");
    let mut c = t2(home);
    c.args(["package", "examples/shell", "--out"])
        .arg(&pkg)
        .current_dir(repo());
    assert!(common::run(c, DEADLINE).status.success());
    let sha = hex::encode(Sha256::digest(std::fs::read(&pkg).unwrap()));
    let mut jm = t2(home);
    jm.args(["jobmaster", "--job-dir"])
        .arg(&job_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut jm = jm.spawn().unwrap();
    let mut first = String::new();
    BufReader::new(jm.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("T2_JOBMASTER_ADDR=")
        .expect(&first)
        .to_string();
    let spec_path = home.join("spec.json");
    std::fs::write(&spec_path, spec_json).unwrap();
    let mut agents = Vec::new();
    for ordinal in 0..2 {
        let area = home.join(format!("pod-{ordinal}"));
        for index in 0..2 {
            let mut a = t2(home);
            a.args(["pod", "agent"])
                .env("T2_JOB_ID", &id)
                .env("T2_POD_NAME", format!("{id}-{ordinal}"))
                .env("T2_CONTAINER_INDEX", index.to_string())
                .env("T2_WORKERS_PER_POD", "2")
                .env("T2_JOB_MASTER", &addr)
                .env("T2_JOB_TOKEN", &token)
                .env("T2_JOB_CA", &ca)
                .env("T2_NAMESPACE", &namespace)
                .env("T2_PACKAGE_SHA256", &sha)
                .env("T2_POD_IP", "127.0.0.1")
                .env("T2_NODE_IP", "127.0.0.1")
                .env("T2_JOB_SPEC", &spec_path)
                .env("T2_PACKAGE_PATH", &pkg)
                .env("T2_WORK_AREA", &area)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            agents.push(a.spawn().unwrap());
        }
    }
    let jm_out = wait(jm, DEADLINE);
    let jm_text = text(&jm_out);
    assert!(
        jm_text.contains("state=\"COMPLETED\"") || jm_text.contains("state=COMPLETED"),
        "{jm_text}"
    );
    // Finished agents wait to be stopped, as in a pod.
    std::thread::sleep(Duration::from_millis(300));
    let mut seen = Vec::new();
    for a in agents {
        assert!(a.id() > 0);
        sigterm(&a);
        let out = wait(a, DEADLINE);
        assert!(out.status.success(), "{}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let line = stdout
            .lines()
            .find(|l| l.starts_with("worker "))
            .unwrap_or_default()
            .to_string();
        seen.push(line);
    }
    seen.sort();
    for (w, line) in seen.iter().enumerate() {
        assert!(
            line.starts_with(&format!("worker {w} of 4 (job {id}, restart 0")),
            "{line}"
        );
    }
    // A restarted container counts its restarts in the pod's work area.
    assert_eq!(
        std::fs::read_to_string(home.join("pod-1/run/container-1.starts")).unwrap(),
        "1"
    );
}
