//! Bad input to the real `t2 dash`: each request gets a clear HTTP error (a JSON
//! `{"error": ...}` naming what is wrong) and the history is exactly as before — malformed
//! JSON, unknown fields and values, unknown jobs, oversized bodies, and reports or kills
//! without or with a wrong token.

mod common;

use common::dash::{request, Dash, TOKEN};

fn report(job_id: &str, state: &str) -> String {
    serde_json::json!({
        "job": {
            "job_id": job_id, "name": "seed", "cluster": "local", "state": state,
            "num_workers": 1, "started_ms": 1_700_000_000_000i64,
        },
        "workers": [{
            "worker_id": 0, "host": "127.0.0.1", "port": 9000, "state": "STARTED",
            "heartbeat_ms": 1_700_000_000_000i64,
        }],
        "events": [{
            "epoch": 1, "seq": 1, "at_ms": 1_700_000_000_000i64, "kind": "JOINED",
            "worker_id": 0, "message": "worker 0 joined",
        }],
        "full": true,
    })
    .to_string()
}

/// One bad request: what it is, path, headers, body, the status wanted and what the error says.
type Case<'a> = (
    &'a str,
    String,
    Vec<(&'a str, &'a str)>,
    Vec<u8>,
    u16,
    &'a str,
);

/// Everything the dashboard shows, for before/after comparisons.
fn history(d: &Dash) -> String {
    let mut jobs = d.get("/api/jobs?per_page=500");
    jobs.as_object_mut().unwrap().remove("now_ms");
    let mut all = vec![jobs.to_string()];
    for j in jobs["jobs"].as_array().unwrap() {
        all.push(d.job(j["job_id"].as_str().unwrap()).unwrap().to_string());
    }
    let mut nodes = d.get("/api/nodes?all=true");
    nodes.as_object_mut().unwrap().remove("now_ms");
    all.push(nodes.to_string());
    all.join("\n")
}

#[test]
fn bad_requests_get_clear_errors_and_leave_the_history_unchanged() {
    let home = tempfile::tempdir().unwrap();
    let dash = Dash::start(home.path(), &home.path().join("dash.db"), "127.0.0.1:0");
    let url = |p: &str| format!("{}{p}", dash.url);
    let bearer = format!("Bearer {TOKEN}");
    let auth: &[(&str, &str)] = &[
        ("Authorization", &bearer),
        ("Content-Type", "application/json"),
    ];
    let (status, body) = request(
        "POST",
        &url("/api/report"),
        auth,
        report("seed-abc123", "RUNNING").as_bytes(),
    );
    assert_eq!(status, 200, "{body}");
    let before = history(&dash);
    assert!(before.contains("seed-abc123"));

    let big = "x".repeat(5 << 20);
    let cases: Vec<Case> = vec![
        (
            "report without a token",
            "/api/report".into(),
            vec![],
            report("seed-abc123", "FAILED").into_bytes(),
            401,
            "dashboard token",
        ),
        (
            "report with a wrong token",
            "/api/report".into(),
            vec![("Authorization", "Bearer nope")],
            report("seed-abc123", "FAILED").into_bytes(),
            403,
            "wrong dashboard token",
        ),
        (
            "malformed JSON",
            "/api/report".into(),
            auth.to_vec(),
            b"{\"job\": ".to_vec(),
            400,
            "malformed report",
        ),
        (
            "an unknown field",
            "/api/report".into(),
            auth.to_vec(),
            report("seed-abc123", "FAILED")
                .replace("\"full\"", "\"fulll\"")
                .into_bytes(),
            400,
            "unknown field",
        ),
        (
            "an unknown state",
            "/api/report".into(),
            auth.to_vec(),
            report("seed-abc123", "EXPLODED").into_bytes(),
            400,
            "job.state",
        ),
        (
            "a bad job ID",
            "/api/report".into(),
            auth.to_vec(),
            report("Not A Job ID!", "RUNNING").into_bytes(),
            400,
            "job.job_id",
        ),
        (
            "an oversized report",
            "/api/report".into(),
            auth.to_vec(),
            big.clone().into_bytes(),
            413,
            "larger than",
        ),
        (
            "a kill without a token",
            "/api/jobs/seed-abc123/kill".into(),
            vec![],
            vec![],
            401,
            "dashboard token",
        ),
        (
            "a kill with a wrong token",
            "/api/jobs/seed-abc123/kill".into(),
            vec![("X-T2-Dashboard-Token", "nope")],
            vec![],
            403,
            "wrong dashboard token",
        ),
        (
            "a kill of an unknown job",
            "/api/jobs/nobody-zzz999/kill".into(),
            auth.to_vec(),
            vec![],
            404,
            "no job nobody-zzz999",
        ),
        (
            "a malformed kill",
            "/api/jobs/seed-abc123/kill".into(),
            auth.to_vec(),
            b"{reason".to_vec(),
            400,
            "malformed kill request",
        ),
        (
            "an oversized kill",
            "/api/jobs/seed-abc123/kill".into(),
            auth.to_vec(),
            big.into_bytes(),
            413,
            "larger than",
        ),
    ];
    for (what, path, headers, body, want, says) in cases {
        let (status, answer) = request("POST", &url(&path), &headers, &body);
        assert_eq!(status, want, "{what}: {answer}");
        let v: serde_json::Value =
            serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{what}: {e}: {answer}"));
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {answer}"));
        assert!(msg.contains(says), "{what}: '{msg}' should say '{says}'");
        assert!(!msg.contains('\n'), "{what}: one line: {msg}");
        assert_eq!(history(&dash), before, "{what} changed the history");
    }
    for (path, want, says) in [
        ("/api/jobs/nobody-zzz999", 404, "no job nobody-zzz999"),
        ("/api/jobs?state=BOGUS", 400, "not one of"),
        ("/api/jobs?per_page=0", 400, "per_page"),
        ("/api/jobs?colour=red", 400, "unknown parameter"),
        ("/api/nodes?all=maybe", 400, "all must be"),
        ("/api/nothing", 404, "no such page"),
    ] {
        let (status, answer) = request("GET", &url(path), &[], b"");
        assert_eq!(status, want, "{path}: {answer}");
        assert!(answer.contains(says), "{path}: {answer}");
    }
    assert_eq!(history(&dash), before);
    let (_, metrics) = request("GET", &url("/metrics"), &[], b"");
    assert!(
        metrics.contains("t2_dashboard_reports_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("t2_dashboard_reports_refused_total 7\n"),
        "{metrics}"
    );
}
