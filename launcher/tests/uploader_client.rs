//! The client side against a real `t2 uploader` on loopback: the agent's download (resume
//! after a cut, sha256 check, clear failures within the deadline), and local jobs that ship
//! their package through an uploader (`t2 submit local --uploader`).

mod common;
#[path = "uploader_support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::{
    job_log, only_job, pids_mentioning, run, run_t2, shell_job, submit, t2, text, wait_until,
    RunningJob, NO_ARGS,
};
use support::*;
use t2_worker::agent::fetch::{fetch, FetchSpec};

const LONG: Duration = Duration::from_secs(120);

/// A TCP proxy to `upstream`. The first connection is cut after `cut_first_after` bytes of
/// the answer; with `corrupt`, byte 1000 of every answer is flipped.
fn proxy(upstream: &str, cut_first_after: Option<usize>, corrupt: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let upstream = upstream.to_string();
    std::thread::spawn(move || {
        for (i, client) in listener.incoming().enumerate() {
            let Ok(client) = client else { return };
            let cut = if i == 0 { cut_first_after } else { None };
            let upstream = upstream.clone();
            std::thread::spawn(move || pipe(client, &upstream, cut, corrupt));
        }
    });
    addr
}

fn pipe(mut client: TcpStream, upstream: &str, cut: Option<usize>, corrupt: bool) {
    let Ok(mut up) = TcpStream::connect(upstream) else {
        return;
    };
    let (mut c2, mut u2) = (client.try_clone().unwrap(), up.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 64 << 10];
    let mut sent = 0usize;
    loop {
        let n = match up.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &mut buf[..n];
        if corrupt && sent <= 1000 && sent + n > 1000 {
            chunk[1000 - sent] ^= 0xff;
        }
        if let Some(cut) = cut {
            if sent + n >= cut {
                let _ = client.write_all(&chunk[..cut - sent]);
                let _ = client.shutdown(Shutdown::Both);
                let _ = up.shutdown(Shutdown::Both);
                return;
            }
        }
        if client.write_all(chunk).is_err() {
            break;
        }
        sent += n;
    }
    let _ = client.shutdown(Shutdown::Write);
}

fn fetch_spec(url: String, dest: &Path, sha256: &str, deadline: Duration) -> FetchSpec {
    FetchSpec {
        url,
        dest: dest.to_path_buf(),
        sha256: sha256.to_string(),
        deadline,
        max_bytes: 1 << 30,
        tls: None,
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_download_cut_mid_file_resumes_with_range_and_is_verified() {
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(&dir.path().join("store"), &[]);
    let data = noise(6 << 20, 11);
    let id = sha256(&data);
    assert_eq!(up.put(&id, &data).status, 201);
    let via = proxy(&up.addr, Some(2 << 20), false);
    let dest = dir.path().join("got/package.tar.gz");
    let spec = fetch_spec(
        format!("http://{via}/packages/{id}"),
        &dest,
        &id,
        Duration::from_secs(60),
    );
    let got = block_on(fetch(&spec)).expect("fetched after one cut");
    assert_eq!(got.attempts, 2, "{got:?}");
    assert_eq!(
        got.resumed, 1,
        "the second attempt must continue, not restart: {got:?}"
    );
    assert!(got.downloaded < data.len() as u64 + (1 << 20), "{got:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(!dir.path().join("got/package.tar.gz.part").exists());
    // Already there and intact: nothing is downloaded again.
    let again = block_on(fetch(&spec)).unwrap();
    assert_eq!(again.attempts, 0);
}

#[test]
fn a_corrupted_download_is_rejected_with_both_sha256s() {
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(&dir.path().join("store"), &[]);
    let data = noise(100_000, 12);
    let id = sha256(&data);
    assert_eq!(up.put(&id, &data).status, 201);
    let via = proxy(&up.addr, None, true);
    let dest = dir.path().join("package.tar.gz");
    let spec = fetch_spec(
        format!("http://{via}/packages/{id}"),
        &dest,
        &id,
        Duration::from_secs(30),
    );
    let e = block_on(fetch(&spec)).expect_err("corrupted on every attempt");
    let msg = e.to_string();
    assert!(
        msg.contains(&spec.url) && msg.contains(&format!("expected {id}")),
        "{msg}"
    );
    assert!(!dest.exists());
}

#[test]
fn a_package_the_uploader_does_not_have_fails_at_once_naming_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let up = Uploader::start(&dir.path().join("store"), &[]);
    let id = "ab".repeat(32);
    let url = format!("{}/packages/{id}", up.url);
    let spec = fetch_spec(
        url.clone(),
        &dir.path().join("p.tar.gz"),
        &id,
        Duration::from_secs(60),
    );
    let msg = block_on(fetch(&spec)).unwrap_err().to_string();
    assert!(msg.contains(&url) && msg.contains("404"), "{msg}");
}

/// A finished local job's folder, to run an agent against.
fn finished_job(home: &Path) -> std::path::PathBuf {
    let job = shell_job(
        &home.join("src"),
        "name: tiny\ncommand: [./run.sh]\n",
        "#!/bin/sh\necho hi\n",
    );
    let out = run(submit(home, &job, NO_ARGS), LONG);
    assert!(out.status.success(), "{}", text(&out));
    home.join("jobs")
        .join(only_job(home)["id"].as_str().unwrap())
}

#[test]
fn an_agent_fails_clearly_within_its_deadline_when_the_uploader_is_down_or_lacks_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let job_dir = finished_job(&home);
    let up = Uploader::start(&dir.path().join("store"), &[]);
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let missing = format!("{}/packages/{}", up.url, "cd".repeat(32));
    let down = format!("http://{free}/packages/{}", "cd".repeat(32));
    for (url, cause) in [
        (&missing, "does not have this package (404"),
        (&down, "connection refused"),
    ] {
        let mut cmd = t2(&home);
        cmd.args([
            "worker",
            "agent",
            "--worker-id",
            "0",
            "--job-master",
            "http://127.0.0.1:1",
        ])
        .arg("--job-dir")
        .arg(&job_dir)
        .args(["--package-url", url, "--fetch-timeout", "2s"]);
        let out = run(cmd, Duration::from_secs(30));
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{all}");
        let line = all
            .lines()
            .find(|l| l.starts_with("t2-agent: "))
            .unwrap_or_else(|| panic!("{all}"));
        assert!(
            line.contains(url.as_str()) && line.contains(cause),
            "{line}"
        );
    }
}

fn pi_like_job(root: &Path) -> std::path::PathBuf {
    let job = shell_job(
        root,
        "name: fetched\nworkers: 3\ncommand: [./run.sh]\n",
        "#!/bin/sh\necho \"worker $T2_WORKER_ID ran from $(pwd)\"\nt2 worker barrier >/dev/null\n",
    );
    std::fs::write(job.join("data.bin"), noise(1 << 20, 13)).unwrap();
    job
}

#[test]
fn a_local_job_through_an_uploader_completes_and_its_package_is_gone_afterwards() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let store = dir.path().join("store");
    let up = Uploader::start(&store, &[]);
    let job = pi_like_job(&dir.path().join("src"));
    let mut cmd = submit(&home, &job, &["--uploader", &up.url]);
    cmd.env("T2_UPLOADER_TOKEN", TOKEN);
    // The agents' info lines say where each fetched its package from.
    cmd.env("RUST_LOG", "info");
    let out = run(cmd, LONG);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("package uploaded to http://127.0.0.1:"),
        "{all}"
    );
    assert_eq!(all.matches(" ran from ").count(), 3, "{all}");
    let rec = only_job(&home);
    let id = rec["package_sha256"].as_str().unwrap().to_string();
    let job_id = rec["id"].as_str().unwrap().to_string();
    // Every agent fetched its own copy from the uploader (its download is removed with the
    // worker's unpacked copy when the job ends), and the uploader no longer has the package.
    let job_dir = home.join("jobs").join(&job_id);
    for w in 0..3 {
        let log = job_log(&home, &job_id, &format!("worker-{w}"));
        assert!(
            log.lines()
                .any(|l| l.contains("package fetched") && l.contains(&up.url) && l.contains(&id)),
            "worker {w} did not fetch the package from the uploader:\n{log}"
        );
        assert!(!job_dir
            .join(format!("run/worker-{w}/package.tar.gz"))
            .exists());
    }
    assert_eq!(up.head_status(&id), 404);
    assert!(files_in(&store.join("packages")).is_empty());
    assert!(files_in(&store.join("refs")).is_empty());
}

#[test]
fn a_resubmitted_package_is_not_uploaded_again() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let up = Uploader::start(&dir.path().join("store"), &[]);
    let job = pi_like_job(&dir.path().join("src"));
    // The same package, built and uploaded beforehand.
    let pkg = dir.path().join("pkg.tar.gz");
    let mut cmd = t2(&home);
    cmd.arg("package").arg(&job).arg("-o").arg(&pkg);
    let out = run(cmd, LONG);
    assert!(out.status.success(), "{}", text(&out));
    let data = std::fs::read(&pkg).unwrap();
    let id = sha256(&data);
    assert_eq!(up.put(&id, &data).status, 201);
    let args = ["--uploader", &up.url, "--uploader-token", TOKEN];
    let out = run(submit(&home, &job, &args), LONG);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("already has this package; not uploading it again"),
        "{all}"
    );
    assert_eq!(only_job(&home)["package_sha256"], id.as_str());
    let m = up.req("GET", "/metrics", &[], b"").text();
    assert!(
        m.contains(&format!(
            "t2_uploader_bytes_received_total {}\n",
            data.len()
        )),
        "uploaded twice:\n{m}"
    );
}

#[test]
fn uploader_local_runs_an_uploader_for_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let job = pi_like_job(&dir.path().join("src"));
    let out = run(submit(&home, &job, &["--uploader", "local"]), LONG);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("package uploaded to http://127.0.0.1:"),
        "{all}"
    );
    assert!(files_in(&home.join("uploader/packages")).is_empty());
    assert!(pids_mentioning(&home.join("uploader").display().to_string()).is_empty());
}

#[test]
fn an_unreachable_uploader_fails_the_submit_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let job = pi_like_job(&dir.path().join("src"));
    let free = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let uploader = format!("http://{free}");
    let args = ["--uploader", &uploader, "--uploader-token", "x"];
    let out = run(submit(&home, &job, &args), LONG);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains(&free.to_string()) && line.contains("connection refused"),
        "{line}"
    );
    let out = run(
        submit(
            &home,
            &job,
            &["--uploader", "https://x", "--uploader-token", "x"],
        ),
        LONG,
    );
    // https needs the CA that signed the uploader's certificate (see uploader_tls.rs).
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("an https:// URL needs the CA certificate"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_failed_job_through_an_uploader_also_removes_its_package() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let store = dir.path().join("store");
    let up = Uploader::start(&store, &[]);
    let job = shell_job(
        &dir.path().join("src"),
        "name: failing\nworkers: 2\nmax_restarts: 0\ncommand: [./run.sh]\n",
        "#!/bin/sh\nexit 7\n",
    );
    let args = ["--uploader", &up.url, "--uploader-token", TOKEN];
    let out = run(submit(&home, &job, &args), LONG);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let rec = only_job(&home);
    assert_eq!(rec["state"], "FAILED");
    assert_eq!(up.head_status(rec["package_sha256"].as_str().unwrap()), 404);
    assert!(files_in(&store.join("packages")).is_empty());
}

#[test]
fn a_killed_job_with_its_own_uploader_leaves_no_package_and_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let job = shell_job(
        &dir.path().join("src"),
        "name: sleepy\nworkers: 2\ncommand: [./run.sh]\n",
        "#!/bin/sh\nsleep 60\n",
    );
    let running = RunningJob::submit_detached(&home, &job, &["--uploader", "local"], LONG);
    assert_eq!(files_in(&home.join("uploader/packages")).len(), 1);
    let out = run_t2(&home, &["kill", &running.id], LONG);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(only_job(&home)["state"], "KILLED");
    assert!(files_in(&home.join("uploader/packages")).is_empty());
    let store = home.join("uploader").display().to_string();
    wait_until(
        Duration::from_secs(10),
        || pids_mentioning(&store).is_empty(),
        || "the job's uploader outlived it".to_string(),
    );
}
