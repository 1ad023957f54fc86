//! The output commands on a real control plane (issue 12's "Output" convention, Kubernetes
//! side), each run as the real `t2` binary by a user bound only to deploy/rbac.yaml's
//! `t2-submitter` Role (impersonation): `t2 logs` through the API server's pod log API
//! (served by KWOK from the CRI-format logs the test runtime writes, see
//! kube_real_support/crilog.rs) — workers' lines merged in time order and prefixed,
//! `--worker`, `--tail`, `--since`, `--timestamps`, `--jobmaster`, `-f` until the job ends —
//! `t2 status` and `t2 list` in every `-o` format with their AGE, `t2 describe` (spec, pods,
//! the recorded workers, the reason and since when, the namespace's events of the job's
//! objects) and `t2 list --watch` from before the submit to after the job's end.

mod kube_real_support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube_real_support::{job_id, kubectl, plane, text, TestNs};
use tokio::io::AsyncBufReadExt;

/// Hang guard of one command, and of each wait.
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

/// A 2-worker job whose workers take turns: after each barrier, worker `step % 2` prints
/// `step STEP from worker W` (a second after the barrier, so that the lines of the two
/// workers are far apart in time, in a known order); then each waits for `go`, prints a late
/// line, waits for `stop` and ends.
fn turns_job(dir: &Path, go: &Path, stop: &Path) -> PathBuf {
    let job = dir.join("turns");
    std::fs::create_dir_all(&job).unwrap();
    std::fs::write(
        job.join("job.yaml"),
        format!(
            "name: turns\nworkers: 2\nmax_restarts: 0\nenv:\n  GO_FILE: {}\n  STOP_FILE: {}\ncommand: [./run.sh]\n",
            go.display(),
            stop.display()
        ),
    )
    .unwrap();
    let script = job.join("run.sh");
    std::fs::write(
        &script,
        r#"#!/usr/bin/env bash
set -euo pipefail
w=$T2_WORKER_ID
t2 worker barrier --timeout 120s >/dev/null
for step in 0 1 2 3; do
  sleep 1
  if [ $((step % 2)) -eq "$w" ]; then echo "step $step from worker $w"; fi
  t2 worker barrier --timeout 120s >/dev/null
done
echo "worker $w waits for the go file"
while [ ! -e "$GO_FILE" ]; do sleep 0.2; done
echo "late line from worker $w"
while [ ! -e "$STOP_FILE" ]; do sleep 0.2; done
echo "worker $w: stop file seen"
"#,
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    job
}

/// Runs `t2 ARGS -n NS` with `kubeconfig`; asserts it succeeded; its stdout.
async fn t2_ok(ns: &TestNs, kubeconfig: &Path, args: &[&str]) -> String {
    let out = t2_out(ns, kubeconfig, args).await;
    assert!(
        out.status.success(),
        "t2 {args:?}: {}\nruntime:\n{}",
        text(&out),
        ns.runtime.report()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn t2_out(ns: &TestNs, kubeconfig: &Path, args: &[&str]) -> Output {
    let mut c = ns.t2_with(kubeconfig);
    c.args(args).args(["-n", &ns.name]);
    ns.finish(c, args, DEADLINE).await
}

fn lines(s: &str) -> Vec<String> {
    s.lines().map(String::from).collect()
}

/// The `step …` lines of a log.
fn steps(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| l.contains(" step ") || l.starts_with("step "))
        .map(String::from)
        .collect()
}

/// A running `t2` command whose stdout lines are collected as they come.
struct Running {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(ns: &TestNs, kubeconfig: &Path, args: &[&str]) -> Running {
        let mut c = ns.t2_with(kubeconfig);
        c.args(args).args(["-n", &ns.name]);
        let mut child = c.spawn().expect("spawn t2");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().expect("stdout");
        let err = child.stderr.take().expect("stderr");
        for (pipe, sink) in [
            (
                Box::new(out) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                lines.clone(),
            ),
            (Box::new(err), stderr.clone()),
        ] {
            tokio::spawn(async move {
                let mut r = tokio::io::BufReader::new(pipe).lines();
                while let Ok(Some(l)) = r.next_line().await {
                    sink.lock().unwrap().push(l);
                }
            });
        }
        Running {
            child,
            lines,
            stderr,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn report(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            self.lines().join("\n"),
            self.stderr.lock().unwrap().join("\n")
        )
    }
}

/// True for a kubectl-style AGE (`42s`, `3m12s`, `12m`, `5h`, …).
fn is_age(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric())
        && s.chars().next().is_some_and(|c| c.is_ascii_digit())
        && s.chars().last().is_some_and(|c| "smhd".contains(c))
}

/// True for an RFC 3339 UTC time with a fraction of a second, as the pod log API stamps lines.
fn is_stamp(s: &str) -> bool {
    s.len() >= 21 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.contains('.')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_status_list_describe_and_watch_of_a_running_job_as_a_t2_submitter() {
    let ns = TestNs::new("cli").await;
    // carol may do what deploy/rbac.yaml's t2-submitter Role allows, and nothing more.
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
    let carol = impersonating(ns.home.path(), "carol");
    let admin = plane().kubeconfig.clone();

    // Watching from before the submit: JSON lines, and the wide table.
    let watch_json = Running::start(&ns, &carol, &["list", "--watch", "-o", "json"]);
    let watch_text = Running::start(&ns, &carol, &["list", "-w", "-o", "wide"]);
    ns.until("the watches' first output", DEADLINE, || async {
        (!watch_text.lines().is_empty()).then_some(())
    })
    .await;
    assert!(
        watch_text.lines()[0].starts_with("JOB ") && watch_text.lines()[0].contains(" AGE"),
        "{}",
        watch_text.report()
    );

    let go = ns.home.path().join("go");
    let stop = ns.home.path().join("stop");
    let job = turns_job(ns.home.path(), &go, &stop);
    let out = t2_out(
        &ns,
        &admin,
        &["submit", "kubernetes", job.to_str().unwrap(), "--detach"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}\nruntime:\n{}",
        text(&out),
        ns.runtime.report()
    );
    let id = job_id(&out);
    let worker_log = |w: u32| ns.runtime.log(&format!("{id}-{w}"), "worker-0");
    ns.until("both workers took their turns", DEADLINE, || async {
        (0..2)
            .all(|w| worker_log(w).contains("waits for the go file"))
            .then_some(())
    })
    .await;

    // t2 logs: both workers' lines through the pod log API, merged in time order, prefixed.
    let all = t2_ok(&ns, &carol, &["logs", &id]).await;
    assert_eq!(
        steps(&all),
        vec![
            "[worker-0] step 0 from worker 0",
            "[worker-1] step 1 from worker 1",
            "[worker-0] step 2 from worker 0",
            "[worker-1] step 3 from worker 1",
        ],
        "t2 logs:\n{all}"
    );
    assert!(
        all.lines()
            .all(|l| l.starts_with("[worker-0] ") || l.starts_with("[worker-1] ")),
        "every line prefixed:\n{all}"
    );
    // What the runtime kept of each worker is what the API gave, line for line.
    for w in 0..2 {
        let prefix = format!("[worker-{w}] ");
        let via_api: Vec<String> = all
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(String::from)
            .collect();
        assert_eq!(via_api, lines(&worker_log(w)), "worker {w}");
    }

    // --worker: one worker, no prefix.
    let one = t2_ok(&ns, &carol, &["logs", &id, "--worker", "1"]).await;
    assert_eq!(
        steps(&one),
        vec!["step 1 from worker 1", "step 3 from worker 1"],
        "{one}"
    );
    assert!(!one.contains("[worker-"), "{one}");
    assert_eq!(lines(&one), lines(&worker_log(1)));

    // --timestamps: every line carries the API server's time, in order.
    let stamped = t2_ok(&ns, &carol, &["logs", &id, "--timestamps"]).await;
    let mut times = Vec::new();
    for l in stamped.lines() {
        let rest = l.split_once("] ").map(|(_, r)| r).unwrap_or_default();
        let (stamp, _) = rest.split_once(' ').unwrap_or((rest, ""));
        assert!(is_stamp(stamp), "no time in {l:?}:\n{stamped}");
        times.push(stamp.to_string());
    }
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "lines in time order:\n{stamped}");
    let unstamped: Vec<String> = stamped
        .lines()
        .map(|l| {
            let (prefix, rest) = l.split_once("] ").unwrap();
            format!("{prefix}] {}", rest.split_once(' ').map_or("", |(_, t)| t))
        })
        .collect();
    assert_eq!(steps(&unstamped.join("\n")), steps(&all), "{stamped}");

    // --tail N: the last N lines of all the workers together (read while nothing is written:
    // the whole log is the same before and after).
    let mut tries = 0;
    loop {
        let before = t2_ok(&ns, &carol, &["logs", &id]).await;
        let tail = t2_ok(&ns, &carol, &["logs", &id, "--tail", "3"]).await;
        let after = t2_ok(&ns, &carol, &["logs", &id]).await;
        if before != after && tries < 5 {
            tries += 1;
            continue;
        }
        let all = lines(&after);
        assert!(all.len() > 3, "{after}");
        assert_eq!(
            lines(&tail),
            all[all.len() - 3..].to_vec(),
            "t2 logs:\n{after}"
        );
        break;
    }

    // --since: 5m is everything; a short window only what came in it.
    let recent = t2_ok(&ns, &carol, &["logs", &id, "--since", "5m"]).await;
    assert_eq!(steps(&recent), steps(&all), "{recent}");
    tokio::time::sleep(Duration::from_secs(15)).await;
    std::fs::write(&go, "").unwrap();
    ns.until("both late lines", DEADLINE, || async {
        (0..2)
            .all(|w| worker_log(w).contains("late line"))
            .then_some(())
    })
    .await;
    let late = t2_ok(&ns, &carol, &["logs", &id, "--since", "8s"]).await;
    assert!(steps(&late).is_empty(), "old lines in --since 8s:\n{late}");
    for w in 0..2 {
        assert!(
            late.contains(&format!("[worker-{w}] late line from worker {w}")),
            "{late}"
        );
    }

    // --jobmaster: the job master's own log.
    let jm = t2_ok(&ns, &carol, &["logs", &id, "--jobmaster"]).await;
    assert!(jm.contains("all workers joined"), "{jm}");
    assert!(!jm.contains("[worker-"), "{jm}");

    // t2 status: text with AGE, wide with IPs, JSON and YAML documents.
    let status = t2_ok(&ns, &carol, &["status", &id]).await;
    assert!(
        status.starts_with(&format!("job {id} ({}) RUNNING\n", ns.name)),
        "{status}"
    );
    let header = status
        .lines()
        .find(|l| l.starts_with("POD "))
        .unwrap_or_else(|| panic!("no pod table:\n{status}"));
    assert!(header.contains(" AGE "), "{status}");
    for pod in [format!("{id}-jm-0"), format!("{id}-0"), format!("{id}-1")] {
        let row = status
            .lines()
            .find(|l| l.starts_with(&format!("{pod} ")))
            .unwrap_or_else(|| panic!("no row for {pod}:\n{status}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols[2], "Running", "{row}");
        assert!(is_age(cols[5]), "AGE of {pod}: {row}");
        assert!(cols[6].starts_with("kwok-node-"), "{row}");
    }
    let wide = t2_ok(&ns, &carol, &["status", &id, "-o", "wide"]).await;
    assert!(
        wide.lines()
            .any(|l| l.starts_with("POD ") && l.ends_with(" IP")),
        "{wide}"
    );
    assert!(
        wide.lines().filter(|l| l.starts_with(&id)).all(|l| l
            .split_whitespace()
            .nth(7)
            .is_some_and(|ip| ip.starts_with("127."))),
        "each pod's IP:\n{wide}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&t2_ok(&ns, &carol, &["status", &id, "-o", "json"]).await).unwrap();
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["state"], "RUNNING");
    assert_eq!(json["pods"].as_array().map(Vec::len), Some(3), "{json}");
    assert!(
        json["pods"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["created_at"]
                .as_str()
                .is_some_and(|t| t.len() == 20 && t.ends_with('Z'))),
        "each pod's creation time: {json}"
    );
    assert_eq!(
        json["worker_records"].as_array().map(Vec::len),
        Some(2),
        "{json}"
    );
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&t2_ok(&ns, &carol, &["status", &id, "-o", "yaml"]).await).unwrap();
    assert_eq!(yaml["id"].as_str(), Some(id.as_str()));
    assert_eq!(yaml["state"].as_str(), Some("RUNNING"));

    // t2 list: AGE in the table; wide adds submitted, since and reason; JSON and YAML.
    let list = t2_ok(&ns, &carol, &["list"]).await;
    let mut rows = list.lines();
    let header = rows.next().unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        vec!["JOB", "STATE", "WORKERS", "OWNER", "AGE"],
        "{list}"
    );
    let row: Vec<&str> = rows
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{list}"))
        .split_whitespace()
        .collect();
    assert_eq!(row[1..3], ["RUNNING", "2"], "{list}");
    assert!(is_age(row[4]), "{list}");
    let wide = t2_ok(&ns, &carol, &["list", "-o", "wide"]).await;
    assert!(
        wide.lines().next().is_some_and(|h| h.contains(" AGE ")
            && h.contains("SUBMITTED")
            && h.contains("SINCE")
            && h.ends_with("REASON")),
        "{wide}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&t2_ok(&ns, &carol, &["list", "-o", "json"]).await).unwrap();
    let jobs = json["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 1, "{json}");
    assert_eq!(jobs[0]["id"], id.as_str());
    assert_eq!(jobs[0]["state"], "RUNNING");
    assert!(
        jobs[0]["state_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{json}"
    );
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(&t2_ok(&ns, &carol, &["list", "-o", "yaml"]).await).unwrap();
    assert_eq!(yaml["jobs"][0]["id"].as_str(), Some(id.as_str()));

    // t2 describe: the spec in short, the pods and workers, the reason and since when, and
    // the events of the job's objects that the controllers and the scheduler wrote.
    let events_seen = ns
        .until(
            "the scheduler's and the controllers' events",
            DEADLINE,
            || async {
                let d = t2_ok(&ns, &carol, &["describe", &id]).await;
                (d.contains("Scheduled") && d.contains("SuccessfulCreate")).then_some(d)
            },
        )
        .await;
    let d = events_seen;
    for want in [
        format!("Job:          {id}\n"),
        format!("Cluster:      kubernetes (namespace {})\n", ns.name),
        "State:        RUNNING\n".to_string(),
        "Reason:       every worker joined\n".to_string(),
        "  Name:         turns\n".to_string(),
        "  Workers:      2 (1 per pod)\n".to_string(),
        "  Command:      ./run.sh\n".to_string(),
        "  Max restarts: 0\n".to_string(),
        "  Env:          GO_FILE, STOP_FILE\n".to_string(),
    ] {
        assert!(d.contains(&want), "{want:?} in:\n{d}");
    }
    assert!(
        d.lines()
            .any(|l| l.starts_with("Since:        ") && l.ends_with(" ago)")),
        "{d}"
    );
    for pod in [format!("{id}-jm-0"), format!("{id}-0"), format!("{id}-1")] {
        assert!(
            d.lines().any(|l| l.starts_with(&format!("  {pod} "))),
            "{pod} in:\n{d}"
        );
    }
    let events: Vec<&str> = d.lines().skip_while(|l| *l != "Events:").skip(2).collect();
    assert!(
        events.iter().any(|l| l.contains(" Scheduled ")
            && l.contains(&format!("Pod/{id}-0 "))
            && l.contains("default-scheduler")),
        "{d}"
    );
    assert!(
        events.iter().any(|l| l.contains(" SuccessfulCreate ")
            && l.contains(&format!("StatefulSet/{id} "))
            && l.contains("statefulset-controller")),
        "{d}"
    );

    // t2 logs -f: what is there, then what comes, until the job ended and its pods went.
    let follow = Running::start(&ns, &carol, &["logs", &id, "-f"]);
    ns.until("-f printed what was there", DEADLINE, || async {
        (follow
            .lines()
            .iter()
            .filter(|l| l.contains("late line"))
            .count()
            == 2)
            .then_some(())
    })
    .await;
    std::fs::write(&stop, "").unwrap();
    let Running {
        child,
        lines: followed,
        stderr,
    } = follow;
    let out = match tokio::time::timeout(DEADLINE, child.wait_with_output()).await {
        Ok(o) => o.expect("t2 logs -f"),
        Err(_) => panic!(
            "t2 logs -f did not end after the job ended\n{}\n{}\nruntime:\n{}",
            followed.lock().unwrap().join("\n"),
            stderr.lock().unwrap().join("\n"),
            ns.runtime.report()
        ),
    };
    // Let the readers take the last lines.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let followed = followed.lock().unwrap().join("\n");
    assert!(
        out.status.success(),
        "{followed}\n{}",
        stderr.lock().unwrap().join("\n")
    );
    for w in 0..2 {
        assert!(
            followed.contains(&format!("[worker-{w}] worker {w}: stop file seen")),
            "{followed}"
        );
    }
    assert_eq!(steps(&followed).len(), 4, "{followed}");
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;

    // The watches saw the job from its start to its end (its last state, recorded just
    // before the job master deleted the root).
    ns.until("the watches saw COMPLETED", DEADLINE, || async {
        let json = watch_json.lines();
        let text = watch_text.lines();
        (json.iter().any(|l| l.contains("\"COMPLETED\""))
            && text
                .iter()
                .any(|l| l.starts_with(&id) && l.contains(" COMPLETED ")))
        .then_some(())
    })
    .await;
    let states: Vec<String> = watch_json
        .lines()
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{l}: {e}"))
        })
        .filter(|v| v["id"] == id.as_str())
        .map(|v| v["state"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        states.first().map(String::as_str),
        Some("STARTING"),
        "{states:?}"
    );
    assert_eq!(
        states.last().map(String::as_str),
        Some("COMPLETED"),
        "{states:?}"
    );
    assert!(states.iter().any(|s| s == "RUNNING"), "{states:?}");
    let done = watch_text
        .lines()
        .into_iter()
        .find(|l| l.starts_with(&id) && l.contains(" COMPLETED "))
        .unwrap();
    // The wide row carries when the final state was recorded (SINCE).
    let cols: Vec<&str> = done.split_whitespace().collect();
    assert!(
        cols.len() >= 7 && cols[6].ends_with('Z') && cols[6] >= cols[5],
        "SUBMITTED and SINCE in the wide row: {done}"
    );
    for w in [watch_json, watch_text] {
        let mut child = w.child;
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
