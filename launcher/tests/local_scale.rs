//! End-to-end tests of `t2 scale` on the local cluster with the real `t2` binary, real
//! processes and real gRPC on loopback: the job master takes the new count, the workers hear
//! of it (JobScaled), and the supervisor starts or stops agents to match.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

const LONG: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(60);

/// Every worker streams its events (to its log and `events.jsonl` in its folder) and sends a
/// ping every 0.2 s, until the file `stop` appears; it says "events live" once its stream has
/// carried a ping from another worker, so the test knows no later event can be missed.
fn elastic_job(home: &Path) -> std::path::PathBuf {
    let stop = home.join("stop");
    shell_job(
        &home.join("src"),
        "name: elastic\nworkers: 2\nmax_restarts: 2\ncommand: [./run.sh]\n",
        &format!(
            r#"#!/usr/bin/env bash
echo "worker $T2_WORKER_ID of $T2_NUM_WORKERS up (restart $T2_RESTART_COUNT)"
t2 worker events | tee -a events.jsonl &
trap 'kill %1 2>/dev/null' EXIT
live=no
for _ in $(seq 1 1200); do
  [ -e '{stop}' ] && break
  t2 worker send "ping from $T2_WORKER_ID" >/dev/null 2>&1 || true
  if [ $live = no ] && grep -q '"message"' events.jsonl 2>/dev/null; then
    echo "events live"
    live=yes
  fi
  sleep 0.2
done
echo "worker $T2_WORKER_ID done; the job has $(t2 worker info | grep -o '"num_workers":[0-9]*' | cut -d: -f2) workers"
"#,
            stop = stop.display()
        ),
    )
}

/// `t2 ARGS` with no kubeconfig anywhere, so that a job not under `$T2_HOME` is local too.
fn t2_run(home: &Path, args: &[&str]) -> Output {
    let mut c = t2(home);
    c.args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST");
    run(c, SHORT)
}

/// Worker `worker`'s log; empty while it does not exist.
fn worker_log(home: &Path, id: &str, worker: u32) -> String {
    job_log(home, id, &format!("worker-{worker}"))
}

/// Waits until worker `worker`'s log has `needle`.
fn wait_for_log(home: &Path, id: &str, worker: u32, needle: &str) {
    wait_until(
        LONG,
        || worker_log(home, id, worker).contains(needle),
        || {
            format!(
                "worker {worker} never logged '{needle}':\n{}",
                worker_log(home, id, worker)
            )
        },
    );
}

/// Ends the job (if it still runs) when the test ends, passed or not.
struct KillOnDrop(std::path::PathBuf, String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("stop"), "");
        let mut c = t2(&self.0);
        c.args(["kill", &self.1])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // No panic here (it may run while unwinding): give up quietly after the deadline.
        let Ok(mut child) = c.spawn() else { return };
        let start = Instant::now();
        while matches!(child.try_wait(), Ok(None)) && start.elapsed() < SHORT {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The JSON line `t2 worker events` prints for JobScaled.
fn scaled_event(num_workers: u32, previous: u32) -> String {
    format!(r#"{{"event":"job_scaled","num_workers":{num_workers},"previous":{previous}}}"#)
}

/// The agent PIDs of the record's workers.
fn agent_pids(rec: &serde_json::Value) -> Vec<u32> {
    rec["workers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["pid"].as_u64())
        .map(|p| p as u32)
        .collect()
}

#[test]
fn a_running_job_scales_up_then_down_and_still_completes() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let job = elastic_job(h);
    // In the foreground, so that the supervisor's own lines are there to check; into files,
    // as a pipe nobody reads would fill up.
    let (stdout, stderr) = (h.join("submit.out"), h.join("submit.err"));
    let mut cmd = t2(h);
    cmd.args(["submit", "local"])
        .arg(&job)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let submit = cmd.spawn().unwrap();
    let id = RunningJob::wait(h, LONG).id;
    let _cleanup = KillOnDrop(h.to_path_buf(), id.clone());
    for w in 0..2 {
        wait_for_log(h, &id, w, "events live");
    }
    let before = only_job(h);
    let old_agents = agent_pids(&before);
    assert_eq!(old_agents.len(), 2, "{before}");

    // Up: 2 -> 4.
    let out = t2_run(h, &["scale", &id, "4"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("job {id}: 4 workers (was 2)")
    );
    let rec = wait_for_record(h, LONG, |r| {
        r["num_workers"] == 4 && agent_pids(r).len() == 4
    });
    let agents = agent_pids(&rec);
    assert!(agents.iter().all(|&p| pid_alive(p)), "{rec}");
    assert_eq!(
        &agents[..2],
        &old_agents[..],
        "the old agents were replaced: {rec}"
    );
    for w in 2..4 {
        wait_for_log(h, &id, w, &format!("worker {w} of 4 up (restart 0)"));
    }
    for w in 0..2 {
        wait_for_log(h, &id, w, &scaled_event(4, 2));
    }
    let status = t2_run(h, &["status", &id]);
    let st = text(&status);
    assert!(status.status.success(), "{st}");
    assert!(st.contains("/4 joined"), "{st}");
    for w in 0..4 {
        assert!(
            st.lines().any(|l| l.starts_with(&format!("{w:<8} "))),
            "no row for worker {w}:\n{st}"
        );
    }

    // Down: 4 -> 1.
    let out = t2_run(h, &["scale", &id, "1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("job {id}: 1 worker (was 4)")
    );
    wait_all_gone(&agents[1..], SHORT, "agents of removed workers");
    let rec = wait_for_record(h, LONG, |r| r["num_workers"] == 1);
    assert_eq!(rec["workers"].as_array().unwrap().len(), 1, "{rec}");
    assert!(pid_alive(agents[0]), "worker 0's agent went too: {rec}");
    wait_for_log(h, &id, 0, &scaled_event(1, 4));

    // Worker 0 finishes; the job completes, and nothing was restarted.
    std::fs::write(h.join("stop"), "").unwrap();
    let out = wait(submit, LONG);
    let all = format!(
        "{}{}",
        std::fs::read_to_string(&stdout).unwrap(),
        std::fs::read_to_string(&stderr).unwrap()
    );
    assert!(out.status.success(), "{all}");
    assert!(all.contains(&format!("job {id} COMPLETED")), "{all}");
    assert!(all.contains("job scaled from 2 to 4 workers"), "{all}");
    assert!(all.contains("job scaled from 4 to 1 workers"), "{all}");
    assert!(!all.contains("restarting it"), "{all}");
    assert!(
        all.contains("[worker-0] worker 0 done; the job has 1 workers"),
        "{all}"
    );
    let rec = only_job(h);
    assert_eq!(rec["state"], "COMPLETED", "{rec}");
    assert_eq!(rec["num_workers"], 1, "{rec}");
    assert_eq!(rec["workers"][0]["restart_count"], 0, "{rec}");
    for w in 1..4 {
        let log = worker_log(h, &id, w);
        assert!(!log.contains("restarted (restart"), "worker {w}:\n{log}");
        assert!(
            log.contains("stopped: the job was scaled to 1 workers"),
            "{log}"
        );
    }
    // The removed workers' output is still there for `t2 logs`.
    let logs = t2_run(h, &["logs", &id]);
    let l = text(&logs);
    assert!(logs.status.success(), "{l}");
    assert!(l.contains("[worker-3] worker 3 of 4 up"), "{l}");
    assert_nothing_left(h, &id);
}

/// `t2 scale` refuses with one line and a non-zero exit.
fn refuses(home: &Path, args: &[&str], want: &str) {
    let out = t2_run(home, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded: {}", text(&out));
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(want), "{args:?}: want '{want}' in: {err}");
}

#[test]
fn bad_scale_requests_are_one_line() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    refuses(
        h,
        &["scale", "nope-12345678", "3"],
        "no job 'nope-12345678'",
    );
    refuses(
        h,
        &["scale", "../../etc", "3"],
        "invalid job ID '../../etc'",
    );
    let job = shell_job(
        &h.join("src"),
        "name: short\nworkers: 2\ncommand: [./run.sh]\n",
        "#!/usr/bin/env bash\necho hi\n",
    );
    let out = t2_run(h, &["submit", "local", job.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let id = only_job(h)["id"].as_str().unwrap().to_string();
    refuses(
        h,
        &["scale", &id, "0"],
        &format!("job {id}: the number of workers must be 1-100000, got 0"),
    );
    refuses(
        h,
        &["scale", &id, "4"],
        &format!("job {id} has ended (COMPLETED); only a running job can be scaled"),
    );
    let rec = only_job(h);
    assert_eq!(rec["num_workers"], 2, "{rec}");
}

#[test]
fn scale_of_a_job_that_is_not_here_goes_to_kubernetes() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    // A kubeconfig whose API server is not listening: the scale is tried there.
    let kc = h.join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters:\n- name: t\n  cluster: {server: 'https://127.0.0.1:1'}\ncontexts:\n- name: t\n  context: {cluster: t, user: u, namespace: jobs}\nusers:\n- name: u\n  user: {token: abc}\n",
    )
    .unwrap();
    for args in [
        vec!["scale", "pi-12345678", "4"],
        vec!["scale", "pi-12345678", "4", "--cluster", "kubernetes"],
    ] {
        let mut c = t2(h);
        c.args(&args).env("HOME", h).env("KUBECONFIG", &kc);
        let out = run(c, SHORT);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("cannot reach the Kubernetes API server https://127.0.0.1:1"),
            "{args:?}: {err}"
        );
    }
    // --cluster local keeps it here, whatever the kubeconfig says.
    let mut c = t2(h);
    c.args(["scale", "pi-12345678", "4", "--cluster", "local"])
        .env("HOME", h)
        .env("KUBECONFIG", &kc);
    let out = run(c, SHORT);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no job 'pi-12345678'"),
        "{}",
        text(&out)
    );
}
