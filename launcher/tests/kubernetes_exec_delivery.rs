//! Direct delivery end to end over the exec API: the submit's start wait hands the job's
//! pods to the real `ExecDeliverer`, which talks through a real WebSocket to a fake API
//! server on loopback; the server runs the requested `t2 pod receive` as a real process
//! (the `t2` binary built by cargo) with its package path in a temporary folder.

mod kubernetes_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use kubernetes_support::fake_api::{Behaviour, FakeApi, FakePod, Protocol};
use sha2::{Digest, Sha256};
use t2_kubernetes::deliver::direct::{receive_command, ExecDeliverer, ATTEMPTS};
use t2_kubernetes::wait::{wait_started, StartWait, Started};
use t2_kubernetes::KubeError;
use tempfile::TempDir;

const JOB: &str = "shell-k2j4x9q1";
/// Every test ends within this, whatever the code under test does.
const TEST_DEADLINE: Duration = Duration::from_secs(120);
/// The start's deadline in the tests of failed receives: far above their three quick
/// refusals and two pauses, far below one attempt's deadline.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A package of `size` random bytes in a temporary folder, and the pods' folders.
struct Setup {
    dir: TempDir,
    package: PathBuf,
    data: Vec<u8>,
    sha256: String,
}

impl Setup {
    fn new(size: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..size).map(|_| rand::random::<u8>()).collect();
        let package = dir.path().join("package.tar.gz");
        std::fs::write(&package, &data).unwrap();
        let sha256 = hex::encode(Sha256::digest(&data));
        Self {
            dir,
            package,
            data,
            sha256,
        }
    }

    fn pod_dir(&self, pod: &str) -> PathBuf {
        self.dir.path().join("pods").join(pod)
    }

    /// Pods `<job>-0..n`, all with `behaviour` except those listed in `special`.
    fn pods(&self, n: usize, special: &[(usize, Behaviour)]) -> Vec<FakePod> {
        (0..n)
            .map(|i| {
                let name = format!("{JOB}-{i}");
                FakePod {
                    dest: self.pod_dir(&name).join("package.tar.gz"),
                    name,
                    behaviour: special
                        .iter()
                        .find(|(k, _)| *k == i)
                        .map_or(Behaviour::Run, |(_, b)| b.clone()),
                }
            })
            .collect()
    }

    /// Runs the submit's start wait with direct delivery against `fake`.
    async fn deliver(
        &self,
        fake: &FakeApi,
        pods: usize,
        parallel: usize,
        attempt_deadline: Option<Duration>,
        bar: Arc<ProgressBar>,
    ) -> Result<Started, KubeError> {
        self.deliver_within(
            fake,
            pods,
            parallel,
            attempt_deadline,
            bar,
            Duration::from_secs(90),
        )
        .await
    }

    /// [`Setup::deliver`] with a deadline on the whole start.
    async fn deliver_within(
        &self,
        fake: &FakeApi,
        pods: usize,
        parallel: usize,
        attempt_deadline: Option<Duration>,
        bar: Arc<ProgressBar>,
        deadline: Duration,
    ) -> Result<Started, KubeError> {
        let kube = fake.kube();
        let mut d = ExecDeliverer::new(
            kube.clone(),
            self.package.clone(),
            &self.sha256,
            self.data.len() as u64,
            bar,
        );
        if let Some(t) = attempt_deadline {
            d = d.with_attempt_deadline(t);
        }
        let wait = StartWait {
            job_id: JOB.into(),
            worker_pods: pods,
            unschedulable_deadline: Duration::from_secs(60),
            deadline,
            crash: Default::default(),
            deliverer: Some(Arc::new(d)),
            parallel,
            queue: None,
        };
        tokio::time::timeout(TEST_DEADLINE, wait_started(&kube, &wait, &mut |_| {}))
            .await
            .expect("the start wait did not end within the test's deadline")
    }
}

/// Files (not folders) under `dir`, recursively; none if it does not exist.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() {
                files_under(&p)
            } else {
                vec![p]
            }
        })
        .collect()
}

fn expected_command(s: &Setup) -> Vec<String> {
    receive_command(s.data.len() as u64, &s.sha256)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_pods_receive_the_exact_package_over_exec_in_parallel() {
    let s = Setup::new(3 * 1024 * 1024 + 12_345);
    let fake = FakeApi::start(JOB, s.pods(3, &[]), Protocol::V5, false).await;
    let bar = Arc::new(ProgressBar::hidden());
    let started = s.deliver(&fake, 3, 8, None, bar.clone()).await.unwrap();
    assert!(
        matches!(started, Started::Running(p) if p.running == 4),
        "{started:?}"
    );
    for i in 0..3 {
        let pod = format!("{JOB}-{i}");
        let dest = s.pod_dir(&pod).join("package.tar.gz");
        let got = std::fs::read(&dest).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
        assert_eq!(hex::encode(Sha256::digest(&got)), s.sha256, "{pod}");
        assert!(got == s.data, "{pod}: the bytes differ");
        assert_eq!(
            files_under(&s.pod_dir(&pod)),
            vec![dest],
            "{pod}: only the package"
        );
    }
    let execs = fake.execs();
    assert_eq!(execs.len(), 3, "{execs:#?}");
    let mut pods: Vec<&str> = execs.iter().map(|e| e.pod.as_str()).collect();
    pods.sort();
    assert_eq!(pods, [0, 1, 2].map(|i| format!("{JOB}-{i}")));
    for e in &execs {
        assert_eq!(e.command, expected_command(&s));
        assert_eq!(e.container.as_deref(), Some("t2-init"));
        assert_eq!(e.streams, (true, true, true));
        assert!(e.protocols.contains("v5.channel.k8s.io"), "{}", e.protocols);
    }
    assert_eq!(
        bar.position(),
        3 * s.data.len() as u64,
        "every byte counted once"
    );
    assert_eq!(fake.unexpected(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivery_works_when_the_api_server_speaks_v4_without_half_close() {
    // With v4, closing stdin closes the whole session: the launcher must keep it open until
    // the pod has answered.
    let s = Setup::new(1024 * 1024);
    let fake = FakeApi::start(JOB, s.pods(2, &[]), Protocol::V4, false).await;
    let bar = Arc::new(ProgressBar::hidden());
    s.deliver(&fake, 2, 8, None, bar).await.unwrap();
    for i in 0..2 {
        let got = std::fs::read(s.pod_dir(&format!("{JOB}-{i}")).join("package.tar.gz")).unwrap();
        assert!(got == s.data, "pod {i}: the bytes differ");
    }
    assert_eq!(fake.execs().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_truncated_stream_is_retried_then_fails_naming_the_pod_and_the_receivers_message() {
    let size = 2 * 1024 * 1024;
    let s = Setup::new(size);
    let cut = 1024 * 1024 + 7;
    let fake = FakeApi::start(
        JOB,
        s.pods(3, &[(1, Behaviour::TruncateAfter(cut))]),
        Protocol::V5,
        false,
    )
    .await;
    let bar = Arc::new(ProgressBar::hidden());
    // Every attempt must end with the pod's answer: one that waited for its deadline instead
    // would outlast the whole start's.
    let e = s
        .deliver_within(
            &fake,
            3,
            8,
            Some(Duration::from_secs(60)),
            bar,
            START_DEADLINE,
        )
        .await
        .unwrap_err()
        .to_string();
    let bad = format!("{JOB}-1");
    assert_eq!(
        e,
        format!(
            "cannot deliver the package to pod {bad}: t2-receive: the stream ended after {cut} of {size} bytes (after {ATTEMPTS} attempts)"
        )
    );
    let tries = fake.execs().iter().filter(|c| c.pod == bad).count();
    assert_eq!(tries, ATTEMPTS as usize, "one exec per attempt");
    assert_eq!(
        files_under(&s.pod_dir(&bad)),
        Vec::<PathBuf>::new(),
        "nothing half-written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pod_refusing_at_once_is_reported_with_its_reason_not_a_timeout() {
    // The receiver fails before reading anything (its package folder cannot be created):
    // the launcher must stop sending and report the pod's line, well within the deadline
    // of an attempt (which would otherwise be the error).
    let s = Setup::new(2 * 1024 * 1024);
    let blocker = s.dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let mut pods = s.pods(2, &[]);
    pods[0].dest = blocker.join("package.tar.gz");
    let fake = FakeApi::start(JOB, pods, Protocol::V5, false).await;
    let bar = Arc::new(ProgressBar::hidden());
    let e = s
        .deliver_within(
            &fake,
            2,
            8,
            Some(Duration::from_secs(60)),
            bar,
            START_DEADLINE,
        )
        .await
        .unwrap_err()
        .to_string();
    let bad = format!("{JOB}-0");
    assert!(
        e.starts_with(&format!(
            "cannot deliver the package to pod {bad}: t2-receive: cannot create {}: ",
            blocker.display()
        )) && e.ends_with(&format!("(after {ATTEMPTS} attempts)")),
        "{e}"
    );
    assert!(!e.contains('\n'), "one line: {e}");
    let tries = fake.execs().iter().filter(|c| c.pod == bad).count();
    assert_eq!(tries, ATTEMPTS as usize);
    assert_eq!(std::fs::read(&blocker).unwrap(), b"x", "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_dropped_right_after_the_answer_still_ends_the_attempt_at_once() {
    // The server drops the connection while the launcher is still sending: kube's stream
    // task then fails, maybe before it read the answer, and leaves its output pipes
    // unclosed. Each attempt must still end at once (the start's deadline is far below an
    // attempt's), with the pod's message when it got through.
    let s = Setup::new(8 * 1024 * 1024);
    let blocker = s.dir.path().join("not-a-folder");
    std::fs::write(&blocker, b"x").unwrap();
    let mut pods = s.pods(1, &[(0, Behaviour::RunThenDrop)]);
    pods[0].dest = blocker.join("package.tar.gz");
    let fake = FakeApi::start(JOB, pods, Protocol::V5, false).await;
    let bar = Arc::new(ProgressBar::hidden());
    let e = s
        .deliver_within(
            &fake,
            1,
            8,
            Some(Duration::from_secs(60)),
            bar,
            START_DEADLINE,
        )
        .await
        .unwrap_err()
        .to_string();
    let bad = format!("{JOB}-0");
    assert!(
        e.starts_with(&format!("cannot deliver the package to pod {bad}: "))
            && e.ends_with(&format!("(after {ATTEMPTS} attempts)"))
            && !e.contains("did not confirm the package within"),
        "{e}"
    );
    assert_eq!(fake.execs().len(), ATTEMPTS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_more_than_the_bound_of_pods_receive_at_once() {
    let s = Setup::new(512 * 1024);
    // Gated: a session that is done waits for a permit before it answers, so the first two
    // stay open together, and any session let in beyond the bound would overlap them.
    let fake = FakeApi::start(JOB, s.pods(5, &[]), Protocol::V5, true).await;
    let bar = Arc::new(ProgressBar::hidden());
    let run = s.deliver(&fake, 5, 2, None, bar);
    let watch = async {
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        while fake.active() < 2 {
            assert!(
                tokio::time::Instant::now() < until,
                "two sessions never opened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        fake.release(5);
    };
    let (started, ()) = tokio::join!(run, watch);
    started.unwrap();
    assert_eq!(fake.execs().len(), 5);
    assert_eq!(fake.max_active(), 2, "the bound is 2, and 2 ran together");
    for i in 0..5 {
        let got = std::fs::read(s.pod_dir(&format!("{JOB}-{i}")).join("package.tar.gz")).unwrap();
        assert!(got == s.data, "pod {i}");
    }
}

async fn hanging(behaviour: Behaviour) -> (String, FakeApi, Setup) {
    let s = Setup::new(256 * 1024);
    let fake = FakeApi::start(JOB, s.pods(1, &[(0, behaviour)]), Protocol::V5, false).await;
    let bar = Arc::new(ProgressBar::hidden());
    let e = s
        .deliver(&fake, 1, 8, Some(Duration::from_secs(1)), bar.clone())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        bar.position(),
        0,
        "failed attempts are taken off the progress bar"
    );
    (e, fake, s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exec_that_never_answers_fails_at_the_attempt_deadline() {
    let (e, fake, s) = hanging(Behaviour::HangAfterUpgrade).await;
    let pod = format!("{JOB}-0");
    let (head, tail) = (
        format!("cannot deliver the package to pod {pod}: 't2 pod receive' did not confirm the package within 1s ("),
        format!(
            " of {} bytes sent); check the pod with 'kubectl describe pod {pod}' (after {ATTEMPTS} attempts)",
            s.data.len()
        ),
    );
    assert!(e.starts_with(&head) && e.ends_with(&tail), "{e}");
    assert_eq!(fake.execs().len(), ATTEMPTS as usize);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_exec_request_that_is_never_upgraded_fails_at_the_attempt_deadline() {
    let (e, fake, s) = hanging(Behaviour::HangBeforeUpgrade).await;
    let pod = format!("{JOB}-0");
    assert_eq!(
        e,
        format!(
            "cannot deliver the package to pod {pod}: 't2 pod receive' did not confirm the package within 1s (0 of {} bytes sent); check the pod with 'kubectl describe pod {pod}' (after {ATTEMPTS} attempts)",
            s.data.len()
        )
    );
    assert_eq!(fake.execs().len(), ATTEMPTS as usize);
}
