//! TLS between the agents and the job master of local jobs, with the real `t2` binary, real
//! processes and real gRPC on loopback: a job with `tls: true` completes over TLS with its
//! certificate files private to the user; `tls: false` still works in plaintext; an agent
//! given a certificate the job master's is not signed by exits with one line naming it.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(240);

fn job_dir(home: &Path, rec: &serde_json::Value) -> std::path::PathBuf {
    home.join("jobs").join(rec["id"].as_str().unwrap())
}

#[test]
fn a_local_job_with_tls_completes_and_keeps_its_certificate_private() {
    let home = tempfile::tempdir().unwrap();
    let shell = repo().join("examples/shell");
    let out = run(
        submit(home.path(), &shell, &["--workers", "4", "-D", "tls=true"]),
        LONG,
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    let rec = only_job(home.path());
    assert_eq!(rec["state"], "COMPLETED", "{all}");
    let addr = rec["jobmaster_addr"].as_str().unwrap_or_default();
    assert!(addr.starts_with("https://127.0.0.1:"), "{addr}");
    let dir = job_dir(home.path(), &rec);
    for f in ["ca.crt", "tls.crt", "tls.key"] {
        let mode = std::fs::metadata(dir.join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let passed = all
        .lines()
        .filter(|l| l.ends_with("barrier 2: SUCCESS"))
        .count();
    assert_eq!(passed, 4, "{all}");
}

#[test]
fn a_local_job_with_tls_off_completes_in_plaintext() {
    let home = tempfile::tempdir().unwrap();
    let shell = repo().join("examples/shell");
    let out = run(
        submit(home.path(), &shell, &["--workers", "2", "-D", "tls=false"]),
        LONG,
    );
    assert!(out.status.success(), "{}", text(&out));
    let rec = only_job(home.path());
    assert_eq!(rec["state"], "COMPLETED");
    let addr = rec["jobmaster_addr"].as_str().unwrap_or_default();
    assert!(addr.starts_with("http://127.0.0.1:"), "{addr}");
    assert!(!job_dir(home.path(), &rec).join("tls.key").exists());
}

#[test]
fn an_agent_given_a_wrong_certificate_exits_with_one_line_naming_it() {
    let home = tempfile::tempdir().unwrap();
    let job = shell_job(
        &home.path().join("src"),
        "name: waits\nworkers: 1\ncommand: [./run.sh]\ntls: true\n",
        "#!/usr/bin/env bash\nsleep 60\n",
    );
    let child = spawn_submit(home.path(), &job, &["--detach"]);
    let out = wait(child, LONG);
    assert!(out.status.success(), "{}", text(&out));
    let rec = wait_for_record(home.path(), LONG, |r| r["state"] == "RUNNING");
    let id = rec["id"].as_str().unwrap().to_string();
    let addr = rec["jobmaster_addr"].as_str().unwrap().to_string();
    assert!(addr.starts_with("https://"), "{addr}");

    // A copy of the job's folder for a second agent, whose CA is another job's.
    let real = job_dir(home.path(), &rec);
    let other_home = tempfile::tempdir().unwrap();
    let fake = other_home.path().join("jobs").join(&id);
    std::fs::create_dir_all(&fake).unwrap();
    for f in ["job.json", "spec.json", "token", "package.tar.gz"] {
        std::fs::copy(real.join(f), fake.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    let wrong = t2_core::tls::mint("another-job", &t2_core::tls::local_names()).unwrap();
    std::fs::write(fake.join("ca.crt"), &wrong.ca_pem).unwrap();

    let mut agent = t2(other_home.path());
    agent
        .args(["worker", "agent", "--worker-id", "0", "--job-master", &addr])
        .arg("--job-dir")
        .arg(&fake);
    let out = run(agent, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let _ = run_t2(home.path(), &["kill", &id], Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("t2-agent: "))
        .unwrap_or_else(|| panic!("no t2-agent line:\n{stderr}"));
    assert!(
        line.contains("presented a certificate that is not signed by the job's CA"),
        "{line}"
    );
    assert!(
        line.contains(&fake.join("ca.crt").display().to_string()),
        "{line}"
    );
    assert!(line.contains(&addr), "{line}");
}
