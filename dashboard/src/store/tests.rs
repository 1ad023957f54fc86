//! The store on a real SQLite file: reports are idempotent, an ended job keeps its end, kill
//! requests reach the next report's answer, and queries filter, search and page.

use t2_jobmaster::reporters::wire::{EventReport, JobReport, Report, WorkerReport};

use super::*;

fn report(id: &str, state: &str, started: i64, workers: u32) -> Report {
    Report {
        job: JobReport {
            job_id: id.into(),
            name: format!("name-of-{id}"),
            cluster: "local".into(),
            namespace: String::new(),
            user: "me".into(),
            spec: Default::default(),
            state: state.into(),
            reason: String::new(),
            num_workers: workers,
            started_ms: started,
            ended_ms: None,
        },
        workers: (0..workers)
            .map(|w| WorkerReport {
                worker_id: w,
                host: "127.0.0.1".into(),
                port: 9000 + w,
                node: "n1".into(),
                rack: "r1".into(),
                datacenter: "dc1".into(),
                state: "STARTED".into(),
                restart_count: 0,
                heartbeat_ms: started,
                exit_code: None,
            })
            .collect(),
        events: vec![EventReport {
            epoch: started,
            seq: 1,
            at_ms: started,
            kind: "JOINED".into(),
            worker_id: Some(0),
            message: "worker 0 joined".into(),
        }],
        full: true,
    }
}

fn open() -> (tempfile::TempDir, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db")).unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
    (dir, conn)
}

#[test]
fn reports_are_idempotent_and_an_ended_job_keeps_its_end() {
    let (_dir, mut c) = open();
    let r = report("job-aaaa1111", "RUNNING", 1000, 2);
    let first = apply(&mut c, &r, 5).unwrap();
    assert!(!first.known);
    assert_eq!(first.events, 1);
    let again = apply(&mut c, &r, 6).unwrap();
    assert!(again.known);
    assert_eq!(again.events, 0, "the same event is stored once");
    let mut done = report("job-aaaa1111", "COMPLETED", 1000, 2);
    done.job.ended_ms = Some(2000);
    apply(&mut c, &done, 7).unwrap();
    // A late RUNNING report cannot bring it back.
    assert_eq!(apply(&mut c, &r, 8).unwrap().state, "COMPLETED");
    let (job, workers, events) = query::job(&c, "job-aaaa1111").unwrap().unwrap();
    assert_eq!(
        (job.state.as_str(), job.ended_ms),
        ("COMPLETED", Some(2000))
    );
    assert_eq!(workers.len(), 2);
    assert_eq!(events.len(), 1);
}

#[test]
fn a_kill_request_comes_back_in_the_next_answer_until_the_job_ends() {
    let (_dir, mut c) = open();
    assert_eq!(
        ask_kill(&mut c, "job-bbbb2222", "x", 1).unwrap(),
        KillAsked::Unknown
    );
    let r = report("job-bbbb2222", "RUNNING", 1000, 1);
    apply(&mut c, &r, 2).unwrap();
    assert_eq!(
        ask_kill(&mut c, "job-bbbb2222", "because", 3).unwrap(),
        KillAsked::Recorded
    );
    assert_eq!(
        apply(&mut c, &r, 4).unwrap().kill.as_deref(),
        Some("because")
    );
    let killed = report("job-bbbb2222", "KILLED", 1000, 1);
    assert_eq!(apply(&mut c, &killed, 5).unwrap().kill, None);
    assert_eq!(
        ask_kill(&mut c, "job-bbbb2222", "again", 6).unwrap(),
        KillAsked::Ended("KILLED".into())
    );
}

#[test]
fn jobs_are_filtered_searched_and_paged_newest_first() {
    let (_dir, mut c) = open();
    for i in 0..30 {
        let state = if i % 3 == 0 { "FAILED" } else { "COMPLETED" };
        apply(
            &mut c,
            &report(&format!("job-{i:02}-abcd"), state, 1000 + i, 1),
            1,
        )
        .unwrap();
    }
    let q = |states: &[&str], search: &str, page, per_page| JobQuery {
        states: states.iter().map(|s| s.to_string()).collect(),
        search: search.into(),
        page,
        per_page,
    };
    let all = query::jobs(&c, &q(&[], "", 1, 25)).unwrap();
    assert_eq!((all.total, all.jobs.len()), (30, 25));
    assert_eq!(all.jobs[0].job_id, "job-29-abcd");
    let second = query::jobs(&c, &q(&[], "", 2, 25)).unwrap();
    assert_eq!(second.jobs.len(), 5);
    assert_eq!(second.jobs[4].job_id, "job-00-abcd");
    assert_eq!(
        query::jobs(&c, &q(&["FAILED"], "", 1, 25)).unwrap().total,
        10
    );
    assert_eq!(
        query::jobs(&c, &q(&[], "NAME-OF-JOB-1", 1, 25))
            .unwrap()
            .total,
        10
    );
    assert_eq!(
        query::jobs(&c, &q(&["FAILED"], "job-2", 1, 25))
            .unwrap()
            .total,
        3
    );
    assert_eq!(all.jobs[0].workers_running, 1);
}

#[test]
fn bad_reports_are_named() {
    let mut r = report("job-cccc3333", "RUNNING", 1, 1);
    assert!(validate(&r).is_ok());
    r.workers[0].state = "DANCING".into();
    assert!(validate(&r).unwrap_err().contains("workers[0].state"));
    let mut r = report("Bad ID", "RUNNING", 1, 1);
    assert!(validate(&r).unwrap_err().contains("job.job_id"));
    r.job.job_id = "job-ok".into();
    r.job.name = "x".repeat(5000);
    assert!(validate(&r).unwrap_err().contains("job.name"));
}
