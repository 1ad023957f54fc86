//! Job references are leases (issue 17): a real `t2 uploader` with a TTL of one second never
//! sweeps a package while a job renews its lease on it, sweeps it once the lease has lapsed,
//! and a local job's supervisor renews its lease for as long as the job runs, so a worker that
//! starts late in a long job still finds the package.

mod common;
#[path = "uploader_support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    job_log, only_job, run_t2, shell_job, sigkill, submit, text, wait_for_record, RunningJob,
};
use support::*;

const LONG: Duration = Duration::from_secs(120);
/// The uploader of these tests: everything unused for a second is swept, ten times a second;
/// a lease lasts three seconds without renewal.
const FLAGS: [&str; 6] = ["--ttl", "1s", "--sweep-interval", "100ms", "--lease", "3s"];

/// Waits up to `deadline` for HEAD of package `id` to answer `status`.
fn wait_head(up: &Uploader, id: &str, status: u16, deadline: Duration) {
    let start = Instant::now();
    while up.head_status(id) != status {
        assert!(
            start.elapsed() < deadline,
            "HEAD {id} did not answer {status} within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_renewed_lease_keeps_a_package_past_its_ttl_and_a_lapsed_one_lets_it_go() {
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(dir.path(), &FLAGS);
    let data = noise(10_000, 21);
    let id = sha256(&data);
    let r = up.req(
        "PUT",
        &format!("/packages/{id}?job=pi-lease1"),
        &[auth()],
        &data,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("x-t2-lease-ms"), Some("3000"), "{:?}", r.headers);
    // Eight seconds: eight TTLs, about eighty sweeps; the job renews every second.
    let renew = format!("/packages/{id}/refs/pi-lease1");
    for _ in 0..8 {
        std::thread::sleep(Duration::from_secs(1));
        let r = up.req("PUT", &renew, &[auth()], b"");
        assert_eq!(r.status, 200, "the renewal failed: {}", r.text());
        assert_eq!(r.header("x-t2-lease-ms"), Some("3000"));
    }
    assert_eq!(up.head_status(&id), 200, "swept under a live lease");
    // The job stops renewing (it crashed): the lease lapses and the sweep removes the package.
    wait_head(&up, &id, 404, Duration::from_secs(30));
    assert!(files_in(&dir.path().join("packages")).is_empty());
    assert!(files_in(&dir.path().join("refs").join(&id)).is_empty());
    // A renewal of a package that is gone says so.
    let r = up.req("PUT", &renew, &[auth()], b"");
    assert_eq!(r.status, 404, "{}", r.text());
    let m = up.req("GET", "/metrics", &[], b"").text();
    assert!(m.contains("t2_uploader_packages_swept_total 1\n"), "{m}");
}

#[test]
fn a_lease_flag_out_of_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_t2"))
        .args(["uploader", "--listen", "127.0.0.1:0", "--token", TOKEN])
        .arg("--dir")
        .arg(dir.path())
        .args(["--lease", "30d"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("--lease"), "{err}");
}

/// A one-worker job whose workers run until the file `stop` (in `root`) exists, at most 100 s.
fn waiting_job(root: &Path) -> std::path::PathBuf {
    let stop = root.join("stop");
    shell_job(
        &root.join("src"),
        &format!(
            "name: leased\nworkers: 1\nenv:\n  STOP_FILE: \"{}\"\ncommand: [./run.sh]\n",
            stop.display()
        ),
        "#!/bin/sh\necho \"worker $T2_WORKER_ID started\"\ni=0\nwhile [ ! -e \"$STOP_FILE\" ] && [ $i -lt 1000 ]; do sleep 0.1; i=$((i+1)); done\necho \"worker $T2_WORKER_ID done\"\n",
    )
}

#[test]
fn a_running_local_job_renews_its_lease_so_a_late_worker_still_fetches_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let up = Uploader::start(&dir.path().join("store"), &FLAGS);
    let job = waiting_job(dir.path());
    let mut cmd = submit(&home, &job, &["--uploader", &up.url, "--detach"]);
    cmd.env("T2_UPLOADER_TOKEN", TOKEN).env("RUST_LOG", "info");
    let out = common::run(cmd, LONG);
    assert!(out.status.success(), "{}", text(&out));
    let running = RunningJob::wait(&home, LONG);
    let id = only_job(&home)["package_sha256"]
        .as_str()
        .unwrap()
        .to_string();
    // Far past the TTL, with the one worker's download long done: only the lease keeps it.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        up.head_status(&id),
        200,
        "the package of a running job was swept"
    );
    // A worker that starts now downloads the package.
    let out = run_t2(&home, &["scale", &running.id, "2"], LONG);
    assert!(out.status.success(), "{}", text(&out));
    common::wait_until(
        LONG,
        || job_log(&home, &running.id, "worker-1").contains("worker 1 started"),
        || common::jobs_report(&home),
    );
    let log = job_log(&home, &running.id, "worker-1");
    assert!(
        log.lines()
            .any(|l| l.contains("package fetched") && l.contains(&id)),
        "worker 1 did not fetch the package:\n{log}"
    );
    std::fs::write(dir.path().join("stop"), b"").unwrap();
    let rec = wait_for_record(&home, LONG, |r| r["state"] == "COMPLETED");
    assert_eq!(rec["num_workers"], 2, "{rec}");
    // Its end dropped the reference and the package, and its supervisor (detached) leaves.
    wait_head(&up, &id, 404, Duration::from_secs(30));
    common::wait_all_gone(&running.pids(), LONG, "the job's processes");
    running.assert_nothing_left();
}

#[test]
fn the_lease_of_a_job_whose_supervisor_was_killed_lapses_and_its_package_is_swept() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let up = Uploader::start(&dir.path().join("store"), &FLAGS);
    let job = waiting_job(dir.path());
    let mut cmd = submit(&home, &job, &["--uploader", &up.url, "--detach"]);
    cmd.env("T2_UPLOADER_TOKEN", TOKEN);
    let out = common::run(cmd, LONG);
    assert!(out.status.success(), "{}", text(&out));
    let running = RunningJob::wait(&home, LONG);
    let rec = only_job(&home);
    let id = rec["package_sha256"].as_str().unwrap().to_string();
    let supervisor = rec["supervisor_pid"].as_u64().expect("supervisor PID");
    sigkill(supervisor).expect("SIGKILL the supervisor");
    // Nobody renews the lease or deletes the package now; the sweep takes it once the lease
    // has lapsed, while the job's orphans still run.
    wait_head(&up, &id, 404, Duration::from_secs(30));
    let out = run_t2(&home, &["kill", &running.id], LONG);
    assert!(out.status.success(), "{}", text(&out));
    common::wait_all_gone(&running.pids(), LONG, "the job's processes");
    running.assert_nothing_left();
}

#[test]
fn a_kubernetes_job_master_keeps_its_jobs_lease_with_only_its_reference_key_and_drops_it_at_the_end(
) {
    use t2_kubernetes::incluster::lease::PackageLease;
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(dir.path(), &FLAGS);
    let data = noise(10_000, 22);
    let id = sha256(&data);
    let job = "kube-lease1";
    // `t2 submit kubernetes` uploads with the token; the job master gets only the job's key.
    let r = up.req(
        "PUT",
        &format!("/packages/{id}?job={job}"),
        &[auth()],
        &data,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let key = t2_uploader::auth::ref_key(TOKEN, &id, job);
    let url = format!("{}/packages/{id}", up.url);
    let lease = PackageLease::new(&url, &id, job, &key).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let renewal = {
        let _in = rt.enter();
        lease.spawn_renewal()
    };
    // Eight seconds: eight TTLs and almost three leases; the job master renews every second.
    for _ in 0..8 {
        std::thread::sleep(Duration::from_secs(1));
        assert_eq!(
            up.head_status(&id),
            200,
            "swept while the job master renews"
        );
    }
    assert!(!renewal.is_finished(), "the renewal loop ended by itself");
    // The key opens this job's reference to this package and nothing else.
    let bearer = format!("Bearer {key}");
    let with_key = [("Authorization", bearer.as_str())];
    for (method, path) in [
        ("PUT", format!("/packages/{id}/refs/other-job")),
        ("DELETE", format!("/packages/{id}?job=other-job")),
        ("DELETE", format!("/packages/{id}")),
        ("PUT", format!("/packages/{id}?job={job}")),
    ] {
        let r = up.req(method, &path, &with_key, b"");
        assert_eq!(
            r.status,
            403,
            "{method} {path} with the job's key: {}",
            r.text()
        );
    }
    let r = up.req("PUT", &format!("/packages/{id}/refs/{job}"), &with_key, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    // Another job starts using the package; this one ends: the package stays for the other.
    renewal.abort();
    let r = up.req(
        "PUT",
        &format!("/packages/{id}/refs/kube-lease2"),
        &[auth()],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    rt.block_on(lease.release());
    assert_eq!(
        up.head_status(&id),
        200,
        "deleted under another job's reference"
    );
    assert_eq!(
        files_in(&dir.path().join("refs").join(&id)),
        vec!["kube-lease2".to_string()],
        "the ended job's reference is dropped, the other kept"
    );
    // The other job never renews: its lease lapses and the package goes.
    wait_head(&up, &id, 404, Duration::from_secs(30));
}

#[test]
fn a_kubernetes_job_masters_release_deletes_a_package_no_other_job_uses() {
    use t2_kubernetes::incluster::lease::PackageLease;
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(dir.path(), &["--lease", "1m"]);
    let data = noise(5_000, 23);
    let id = sha256(&data);
    let job = "kube-lease3";
    let r = up.req(
        "PUT",
        &format!("/packages/{id}?job={job}"),
        &[auth()],
        &data,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let key = t2_uploader::auth::ref_key(TOKEN, &id, job);
    let lease = PackageLease::new(&format!("{}/packages/{id}", up.url), &id, job, &key).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(lease.release());
    assert_eq!(
        up.head_status(&id),
        404,
        "the job's package is deleted at its end"
    );
    assert!(files_in(&dir.path().join("packages")).is_empty());
    // A package URL that is not the package's is refused with a clear line.
    let e = PackageLease::new(&up.url, &id, job, &key).unwrap_err();
    assert!(e.contains("is not the URL of package"), "{e}");
}
