//! The dashboard's REST API against the real `t2 dash` on loopback, fed by real local jobs
//! (`t2 submit local --dashboard …`): jobs and workers appear, history survives a restart, a
//! job completes when its dashboard is SIGKILLed, a dashboard started late shows the whole
//! job, and a kill asked for on the dashboard ends the job KILLED with nothing left.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::dash::{event_kinds, free_port, https_get, request, workers_in, Dash, TOKEN};
use common::*;

const LONG: Duration = Duration::from_secs(90);

/// A job of `workers` workers whose programs wait (at most a minute) for the file `go`.
fn waiting_job(root: &Path, name: &str, workers: u32, go: &Path) -> PathBuf {
    shell_job(
        root,
        &format!("name: {name}\nworkers: {workers}\ncommand: [./run.sh]\n"),
        &format!(
            "#!/usr/bin/env bash\nfor i in $(seq 600); do [ -f '{}' ] && exit 0; sleep 0.1; done\nexit 7\n",
            go.display()
        ),
    )
}

fn dash_args(url: &str) -> Vec<String> {
    vec![
        "--dashboard".into(),
        url.into(),
        "--dashboard-token".into(),
        TOKEN.into(),
    ]
}

#[test]
fn local_jobs_and_workers_appear_and_the_history_survives_a_dashboard_restart() {
    let home = tempfile::tempdir().unwrap();
    let db = home.path().join("dash.db");
    let mut dash = Dash::start(home.path(), &db, "127.0.0.1:0");
    let job = shell_job(
        &home.path().join("src"),
        "name: dash-hello\nworkers: 3\ncommand: [./run.sh]\n",
        "#!/usr/bin/env bash\necho \"worker $T2_WORKER_ID\"; sleep 0.2\n",
    );
    let out = run(submit(home.path(), &job, &dash_args(&dash.url)), LONG);
    assert!(out.status.success(), "{}", text(&out));
    let id = only_job(home.path())["id"].as_str().unwrap().to_string();

    let j = dash.wait_job(&id, Duration::from_secs(20), |j| {
        j["state"] == "COMPLETED" && workers_in(j, "COMPLETED") == 3
    });
    assert_eq!(j["name"], "dash-hello");
    assert_eq!(j["cluster"], "local");
    assert_eq!(j["num_workers"], 3);
    assert!(j["ended_ms"].as_i64().unwrap() >= j["started_ms"].as_i64().unwrap());
    assert_eq!(j["spec"]["command"], "./run.sh");
    for w in j["workers"].as_array().unwrap() {
        assert_eq!(w["host"], "127.0.0.1");
        assert_eq!(w["rack"], "rack-0");
        assert_eq!(w["datacenter"], "local");
        assert_eq!(w["exit_code"], 0);
        assert!(w["port"].as_u64().unwrap() > 0);
    }
    let kinds = event_kinds(&j);
    for w in 0..3 {
        assert!(kinds.contains(&("JOINED".into(), Some(w))), "{kinds:?}");
        assert!(kinds.contains(&("COMPLETED".into(), Some(w))), "{kinds:?}");
    }
    assert!(
        j["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "JOB" && e["message"].as_str().unwrap().contains("COMPLETED")),
        "{j}"
    );

    // The list: filters, search, newest first.
    let list = dash.get("/api/jobs");
    assert_eq!(list["total"], 1);
    assert_eq!(list["jobs"][0]["job_id"], id.as_str());
    assert_eq!(list["jobs"][0]["workers_running"], 0);
    assert_eq!(dash.get("/api/jobs?state=COMPLETED")["total"], 1);
    assert_eq!(dash.get("/api/jobs?state=RUNNING,FAILED")["total"], 0);
    assert_eq!(dash.get("/api/jobs?q=HELLO")["total"], 1);
    assert_eq!(dash.get("/api/jobs?q=nothing-like-it")["total"], 0);
    assert_eq!(
        dash.get("/api/jobs?page=2")["jobs"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // Nodes: only running jobs unless asked for all.
    assert_eq!(dash.get("/api/nodes")["datacenters"], serde_json::json!([]));
    let nodes = dash.get("/api/nodes?all=true");
    let dc = &nodes["datacenters"][0];
    assert_eq!(dc["datacenter"], "local");
    assert_eq!(dc["racks"][0]["rack"], "rack-0");
    assert_eq!(dc["racks"][0]["nodes"][0]["node"], "127.0.0.1");
    assert_eq!(
        dc["racks"][0]["nodes"][0]["workers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let (status, metrics) = request("GET", &format!("{}/metrics", dash.url), &[], b"");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("t2_dashboard_jobs{state=\"COMPLETED\"} 1"),
        "{metrics}"
    );
    let (status, health) = request("GET", &format!("{}/healthz", dash.url), &[], b"");
    assert_eq!((status, health.trim()), (200, "ok"));

    // A restart on the same database shows the same history.
    let before = dash.job(&id).unwrap();
    assert!(dash.stop(), "t2 dash did not exit cleanly on SIGTERM");
    let again = Dash::start(home.path(), &db, "127.0.0.1:0");
    assert_eq!(again.job(&id).unwrap(), before);
    assert_eq!(again.get("/api/jobs")["total"], 1);
}

#[test]
fn a_job_completes_when_its_dashboard_is_sigkilled_mid_job() {
    let home = tempfile::tempdir().unwrap();
    let mut dash = Dash::start(home.path(), &home.path().join("dash.db"), "127.0.0.1:0");
    let go = home.path().join("go");
    let job = waiting_job(&home.path().join("src"), "dash-orphan", 2, &go);
    let child = spawn_submit(home.path(), &job, &dash_args(&dash.url));
    let running = RunningJob::wait(home.path(), LONG);
    dash.wait_job(&running.id, Duration::from_secs(20), |j| {
        j["state"] == "RUNNING" && workers_in(j, "STARTED") == 2
    });
    let pid = dash.pid();
    dash.sigkill();
    assert!(!pid_alive(pid));

    std::fs::write(&go, "").unwrap();
    let out = wait(child, LONG);
    assert!(out.status.success(), "{}", text(&out));
    assert!(last_line(&out).contains("COMPLETED"), "{}", text(&out));
    assert_eq!(only_job(home.path())["state"], "COMPLETED");
    running.assert_nothing_left();
}

#[test]
fn a_dashboard_started_late_shows_the_whole_job() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let go = home.path().join("go");
    let job = waiting_job(&home.path().join("src"), "dash-late", 2, &go);
    let child = spawn_submit(home.path(), &job, &dash_args(&url));
    let running = RunningJob::wait(home.path(), LONG);

    // Nobody listened while the job started; now the dashboard comes up.
    let dash = Dash::start(
        home.path(),
        &home.path().join("dash.db"),
        &format!("127.0.0.1:{port}"),
    );
    let j = dash.wait_job(&running.id, Duration::from_secs(30), |j| {
        j["state"] == "RUNNING" && workers_in(j, "STARTED") == 2
    });
    let kinds = event_kinds(&j);
    assert!(kinds.contains(&("JOINED".into(), Some(0))), "{kinds:?}");
    assert!(kinds.contains(&("JOINED".into(), Some(1))), "{kinds:?}");
    assert_eq!(j["name"], "dash-late");

    std::fs::write(&go, "").unwrap();
    let out = wait(child, LONG);
    assert!(out.status.success(), "{}", text(&out));
    dash.wait_job(&running.id, Duration::from_secs(20), |j| {
        j["state"] == "COMPLETED" && workers_in(j, "COMPLETED") == 2
    });
}

#[test]
fn a_kill_asked_on_the_dashboard_ends_the_job_killed_and_nothing_is_left() {
    let home = tempfile::tempdir().unwrap();
    let dash = Dash::start(home.path(), &home.path().join("dash.db"), "127.0.0.1:0");
    let go = home.path().join("never");
    let job = waiting_job(&home.path().join("src"), "dash-victim", 2, &go);
    let child = spawn_submit(home.path(), &job, &dash_args(&dash.url));
    let running = RunningJob::wait(home.path(), LONG);
    dash.wait_job(&running.id, Duration::from_secs(20), |j| {
        j["state"] == "RUNNING"
    });
    let kill_url = format!("{}/api/jobs/{}/kill", dash.url, running.id);

    // Without the token, or with a wrong one: refused, and the job runs on.
    let (status, body) = request("POST", &kill_url, &[], b"");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("dashboard token"), "{body}");
    let (status, body) = request("POST", &kill_url, &[("Authorization", "Bearer wrong")], b"");
    assert_eq!(status, 403, "{body}");
    assert_eq!(dash.job(&running.id).unwrap()["kill_requested"], false);
    assert_eq!(running.record().unwrap()["state"], "RUNNING");

    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = request(
        "POST",
        &kill_url,
        &[("Authorization", &bearer)],
        br#"{"reason": "from the test"}"#,
    );
    assert_eq!(status, 202, "{body}");
    let out = wait(child, LONG);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(last_line(&out).contains("KILLED"), "{}", text(&out));
    let rec = only_job(home.path());
    assert_eq!(rec["state"], "KILLED");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("killed from the dashboard: from the test"),
        "{rec}"
    );
    running.assert_nothing_left();
    // The workers end with the job: KILLED, not left STARTED.
    let j = dash.wait_job(&running.id, Duration::from_secs(20), |j| {
        j["state"] == "KILLED"
            && workers_in(j, "KILLED") == j["num_workers"].as_u64().unwrap_or(0) as usize
    });
    assert!(event_kinds(&j).contains(&("KILL_REQUESTED".into(), None)));
    // Once ended, a second kill is refused.
    let (status, body) = request("POST", &kill_url, &[("Authorization", &bearer)], b"");
    assert_eq!(status, 409, "{body}");
}

/// Issue 14's topology on the nodes view: a local job on 3 racks × 2 nodes × 2 workers in two
/// datacenters shows every worker under its own datacenter, rack and node.
#[test]
fn the_nodes_view_groups_a_topology_job_by_datacenter_rack_and_node() {
    let home = tempfile::tempdir().unwrap();
    let dash = Dash::start(home.path(), &home.path().join("dash.db"), "127.0.0.1:0");
    let job = shell_job(
        &home.path().join("src"),
        "name: dash-racks\nworkers: 12\ncommand: [./run.sh]\ntopology:\n  datacenters:\n    east: [rack-1, rack-2]\n    west: [rack-3]\n  racks:\n    rack-1: [127.0.0.11, 127.0.0.12]\n    rack-2: [127.0.0.21, 127.0.0.22]\n    rack-3: [127.0.0.31, 127.0.0.32]\n",
        "#!/usr/bin/env bash\nsleep 0.2\n",
    );
    let out = run(submit(home.path(), &job, &dash_args(&dash.url)), LONG);
    assert!(out.status.success(), "{}", text(&out));
    let id = only_job(home.path())["id"].as_str().unwrap().to_string();
    dash.wait_job(&id, Duration::from_secs(20), |j| {
        j["state"] == "COMPLETED" && workers_in(j, "COMPLETED") == 12
    });

    let nodes = dash.get("/api/nodes?all=true");
    // (datacenter, rack, node, worker IDs), in the order the dashboard gives them.
    let mut seen = Vec::new();
    for dc in nodes["datacenters"].as_array().unwrap() {
        for rack in dc["racks"].as_array().unwrap() {
            for node in rack["nodes"].as_array().unwrap() {
                let ids: Vec<u64> = node["workers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| w["worker_id"].as_u64().unwrap())
                    .collect();
                seen.push((
                    dc["datacenter"].as_str().unwrap().to_string(),
                    rack["rack"].as_str().unwrap().to_string(),
                    node["node"].as_str().unwrap().to_string(),
                    ids,
                ));
            }
        }
    }
    let want: Vec<(String, String, String, Vec<u64>)> = (0..6u64)
        .map(|n| {
            let rack = n / 2 + 1;
            let dc = if rack < 3 { "east" } else { "west" };
            (
                dc.to_string(),
                format!("rack-{rack}"),
                format!("127.0.0.{}{}", rack, n % 2 + 1),
                vec![2 * n, 2 * n + 1],
            )
        })
        .collect();
    assert_eq!(seen, want, "{nodes}");
}

#[test]
fn a_job_master_reports_to_an_https_dashboard_trusting_only_the_ca_given() {
    let home = tempfile::tempdir().unwrap();
    let certs = t2_core::tls::mint("dash", &t2_core::tls::local_names()).unwrap();
    let (cert, key, ca) = (
        home.path().join("dash.crt"),
        home.path().join("dash.key"),
        home.path().join("dash-ca.crt"),
    );
    std::fs::write(&cert, &certs.cert_pem).unwrap();
    std::fs::write(&key, &certs.key_pem).unwrap();
    std::fs::write(&ca, &certs.ca_pem).unwrap();
    let dash = Dash::start_with(
        home.path(),
        &home.path().join("dash.db"),
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(dash.url.starts_with("https://127.0.0.1:"), "{}", dash.url);
    let job = shell_job(
        &home.path().join("src"),
        "name: dash-tls\nworkers: 2\ncommand: [./run.sh]\n",
        "#!/usr/bin/env bash\necho \"worker $T2_WORKER_ID\"\n",
    );

    // Without the CA the submit is refused before anything is made.
    let out = run(submit(home.path(), &job, &dash_args(&dash.url)), LONG);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out)
            .contains("no CA to check its certificate against was given; pass --dashboard-ca FILE"),
        "{}",
        text(&out)
    );
    assert!(
        jobs_in(home.path()).is_empty(),
        "a refused submit made a job"
    );

    // With it, the job is reported over TLS.
    let mut args = dash_args(&dash.url);
    args.extend(["--dashboard-ca".into(), ca.to_str().unwrap().into()]);
    let out = run(submit(home.path(), &job, &args), LONG);
    assert!(out.status.success(), "{}", text(&out));
    let id = only_job(home.path())["id"].as_str().unwrap().to_string();
    let start = std::time::Instant::now();
    let shown = loop {
        let (status, body) = https_get(&format!("{}/api/jobs/{id}", dash.url), &certs.ca_pem);
        if status == 200 {
            let j: serde_json::Value = serde_json::from_str(&body).unwrap();
            if j["state"] == "COMPLETED" && workers_in(&j, "COMPLETED") == 2 {
                break j;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the https dashboard did not show job {id} COMPLETED: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(shown["name"], "dash-tls");

    // A CA that did not sign the dashboard's certificate: the job still completes, its job
    // master refuses to send the token to that dashboard and says why, and nothing is shown.
    let other = t2_core::tls::mint("other", &t2_core::tls::local_names()).unwrap();
    let wrong = home.path().join("other-ca.crt");
    std::fs::write(&wrong, &other.ca_pem).unwrap();
    let mut args = dash_args(&dash.url);
    args.extend(["--dashboard-ca".into(), wrong.to_str().unwrap().into()]);
    let before = jobs_in(home.path());
    let out = run(submit(home.path(), &job, &args), LONG);
    assert!(out.status.success(), "{}", text(&out));
    let after = jobs_in(home.path());
    let new: Vec<&String> = after.iter().filter(|j| !before.contains(j)).collect();
    assert_eq!(new.len(), 1, "{after:?}");
    let (status, _) = https_get(&format!("{}/api/jobs/{}", dash.url, new[0]), &certs.ca_pem);
    assert_eq!(
        status, 404,
        "a job master that does not trust the dashboard reported to it"
    );
    let log = jobmaster_log_of(home.path(), new[0]);
    assert!(
        log.contains("is not signed by dashboard_ca"),
        "the job master's log does not say why: {log}"
    );
}

/// The IDs of the jobs under `home` (none when it has no jobs folder).
fn jobs_in(home: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(home.join("jobs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// The job master's log of local job `id`.
fn jobmaster_log_of(home: &Path, id: &str) -> String {
    std::fs::read_to_string(
        home.join("jobs")
            .join(id)
            .join("logs")
            .join("jobmaster.log"),
    )
    .unwrap_or_else(|e| format!("(no job master log: {e})"))
}
