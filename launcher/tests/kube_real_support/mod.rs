//! The kube_real tests' control plane and helpers: a real etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler and KWOK (scripts/kube-up), a namespace per test
//! with deploy/rbac.yaml applied, the real `t2` binary, and a local container runtime
//! ([`runtime`]) that runs the containers of the pods KWOK made Running as local processes.
//!
//! The control plane is the one `T2_TEST_KUBECONFIG` names (scripts/test starts it); without
//! it the first test starts one with `scripts/kube-up --reuse` in a fixed folder under the
//! temporary directory and leaves it running for the next test binaries (stop it with
//! `scripts/kube-down DIR`). Nothing here skips: no control plane is a failed test.
#![allow(dead_code)]

pub mod crilog;
pub mod mpi;
pub mod podspec;
pub mod procs;
pub mod proxy;
pub mod runtime;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// A running control plane, as scripts/kube-up describes it in `DIR/env`.
#[derive(Debug, Clone)]
pub struct Plane {
    /// The admin kubeconfig (`system:masters`).
    pub kubeconfig: PathBuf,
    /// kube-up's folder.
    pub state: PathBuf,
    /// The real kubectl built with the control plane.
    pub kubectl: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub api: String,
    /// The folder KWOK finds exec'd commands in (the runtime links `t2` there).
    pub exec_path: PathBuf,
}

impl Plane {
    /// The API server's port.
    pub fn api_port(&self) -> u16 {
        self.api
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("T2_KUBE_API has a port")
    }
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo root")
}

static PLANE: OnceLock<Plane> = OnceLock::new();

/// The control plane (started on first use when `T2_TEST_KUBECONFIG` is not set).
pub fn plane() -> &'static Plane {
    PLANE.get_or_init(|| {
        let kubeconfig = match std::env::var_os("T2_TEST_KUBECONFIG").filter(|v| !v.is_empty()) {
            Some(k) => PathBuf::from(k),
            None => start_shared(),
        };
        let state = kubeconfig
            .parent()
            .expect("the kubeconfig's folder")
            .to_path_buf();
        let env_file = state.join("env");
        let text = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
            panic!(
                "T2_TEST_KUBECONFIG={} is not a scripts/kube-up control plane: cannot read {}: {e}",
                kubeconfig.display(),
                env_file.display()
            )
        });
        let vars: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| {
            vars.get(k)
                .map(|v| v.to_string())
                .unwrap_or_else(|| panic!("{} lacks {k}", env_file.display()))
        };
        Plane {
            kubeconfig,
            kubectl: PathBuf::from(get("T2_KUBE_BIN")).join("kubectl"),
            api: get("T2_KUBE_API"),
            exec_path: PathBuf::from(get("T2_KUBE_EXEC_PATH")),
            state,
        }
    })
}

/// Starts (or reuses) a control plane in a fixed folder; returns its admin kubeconfig.
fn start_shared() -> PathBuf {
    let uid = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let state = std::env::temp_dir().join(format!("t2-kube-real-{uid}"));
    eprintln!(
        "T2_TEST_KUBECONFIG is not set: starting (or reusing) a control plane with 'scripts/kube-up --state {} --reuse' (a cold build of the binaries takes a while); stop it with 'scripts/kube-down {}'",
        state.display(),
        state.display()
    );
    let mut c = std::process::Command::new(repo().join("scripts/kube-up"));
    c.arg("--state").arg(&state).arg("--reuse");
    c.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let child = c.spawn().unwrap_or_else(|e| {
        panic!("cannot run scripts/kube-up: {e}; the kube_real tests need a control plane")
    });
    let out = wait_child(child, Duration::from_secs(80 * 60), "scripts/kube-up");
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        panic!(
            "scripts/kube-up failed ({}); the kube_real tests need a control plane: see its output above, or set T2_TEST_KUBECONFIG to the KUBECONFIG kube-up printed",
            out.status
        );
    }
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("KUBECONFIG="))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("scripts/kube-up printed no KUBECONFIG= line: {stdout}"))
}

/// Waits for a child with a deadline (a hang guard); panics after killing it.
pub fn wait_child(mut child: std::process::Child, deadline: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{what} did not finish within {deadline:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A client for `kubeconfig` (optionally impersonating `user`).
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).expect("read the kubeconfig");
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    Client::try_from(cfg).expect("client")
}

/// The admin client.
pub async fn admin() -> Client {
    client_for(&plane().kubeconfig).await
}

/// stdout and stderr together.
pub fn text(out: &Output) -> String {
    format!(
        "exit: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the real kubectl as admin (`args`, optional stdin), with a deadline.
pub async fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    kubectl_as(&plane().kubeconfig, args, stdin).await
}

/// Runs the real kubectl with `kubeconfig`.
pub async fn kubectl_as(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt;
    let mut c = tokio::process::Command::new(&plane().kubectl);
    c.arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().expect("spawn kubectl");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        w.write_all(input.as_bytes()).await.expect("write stdin");
        drop(w);
    }
    match tokio::time::timeout(Duration::from_secs(120), child.wait_with_output()).await {
        Ok(out) => out.expect("kubectl output"),
        Err(_) => panic!("kubectl {args:?} did not finish within 120s"),
    }
}

/// Polls `f` every 200 ms until it gives `Some`, for at most `deadline` (a hang guard);
/// panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("{what}: not within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One test's namespace on the control plane, with deploy/rbac.yaml applied and the local
/// runtime running its pods; dropped, it stops the runtime's processes and deletes the
/// namespace.
pub struct TestNs {
    /// The namespace.
    pub name: String,
    /// Admin client.
    pub client: Client,
    /// `$T2_HOME` and `$HOME` of the `t2` commands.
    pub home: tempfile::TempDir,
    /// The runtime.
    pub runtime: runtime::Runtime,
}

impl TestNs {
    /// [`eventually`], with the runtime's report in the panic message.
    pub async fn until<T, F, Fut>(&self, what: &str, deadline: Duration, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if start.elapsed() > deadline {
                panic!(
                    "{what}: not within {deadline:?}\nruntime:\n{}",
                    self.runtime.report()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A fresh namespace `kr-PREFIX-xxxxx`.
    pub async fn new(prefix: &str) -> TestNs {
        let plane = plane();
        let client = admin().await;
        let suffix: String = {
            use rand::Rng;
            let mut r = rand::rng();
            (0..5)
                .map(|_| char::from(b'a' + r.random_range(0..26u8)))
                .collect()
        };
        let name = format!("kr-{prefix}-{suffix}");
        let out = kubectl(&["create", "namespace", &name], None).await;
        assert!(out.status.success(), "create namespace: {}", text(&out));
        let rbac = repo().join("deploy/rbac.yaml");
        let out = kubectl(
            &[
                "apply",
                "-n",
                &name,
                "-f",
                rbac.to_str().expect("utf-8 path"),
            ],
            None,
        )
        .await;
        assert!(
            out.status.success(),
            "apply deploy/rbac.yaml: {}",
            text(&out)
        );
        let runtime = runtime::Runtime::start(client.clone(), &name, plane).await;
        TestNs {
            name,
            client,
            home: tempfile::tempdir().expect("tempdir"),
            runtime,
        }
    }

    /// A `t2` command with this test's home, the repo's conf/ and the admin kubeconfig; run
    /// in the repository root.
    pub fn t2(&self) -> tokio::process::Command {
        self.t2_with(&plane().kubeconfig)
    }

    /// A `t2` command with `kubeconfig`.
    pub fn t2_with(&self, kubeconfig: &Path) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_t2"));
        c.env("T2_HOME", self.home.path())
            .env("HOME", self.home.path())
            .env("T2_CONF_DIR", test_conf(self.home.path()))
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs `t2 ARGS -n NS` to its end (hang guard `deadline`).
    pub async fn run(&self, args: &[&str], deadline: Duration) -> Output {
        let mut c = self.t2();
        c.args(args).args(["-n", &self.name]);
        self.finish(c, args, deadline).await
    }

    /// Runs a prepared `t2` command (hang guard `deadline`), printing the runtime's log on a
    /// hang.
    pub async fn finish(
        &self,
        mut c: tokio::process::Command,
        args: &[&str],
        deadline: Duration,
    ) -> Output {
        let child = c.spawn().expect("spawn t2");
        match tokio::time::timeout(deadline, child.wait_with_output()).await {
            Ok(out) => out.expect("t2 output"),
            Err(_) => panic!(
                "t2 {args:?} did not finish within {deadline:?}\nruntime:\n{}",
                self.runtime.report()
            ),
        }
    }

    /// `t2 submit kubernetes JOB --detach EXTRA…` (hang guard `deadline`), which must succeed;
    /// returns the job's ID.
    pub async fn submit_detached(&self, job: &Path, extra: &[&str], deadline: Duration) -> String {
        let mut args = vec![
            "submit",
            "kubernetes",
            job.to_str().expect("a UTF-8 job path"),
            "--detach",
        ];
        args.extend_from_slice(extra);
        let out = self.run(&args, deadline).await;
        assert!(
            out.status.success(),
            "{}\nruntime:\n{}",
            text(&out),
            self.runtime.report()
        );
        job_id(&out)
    }

    /// Waits (hang guard `deadline`) for a `t2 submit` of job `id` running in the background
    /// and checks that it ended well: exit 0, the job's ID on stdout, `job ID COMPLETED`.
    /// Returns its output for the test's own checks.
    pub async fn completed(
        &self,
        submit: tokio::task::JoinHandle<std::io::Result<Output>>,
        id: &str,
        deadline: Duration,
    ) -> Output {
        let out = match tokio::time::timeout(deadline, submit).await {
            Ok(o) => o.expect("the submit's task").expect("t2 output"),
            Err(_) => panic!(
                "the submit did not end within {deadline:?}\n{}",
                self.runtime.report()
            ),
        };
        let all = text(&out);
        assert!(
            out.status.success(),
            "{all}\nruntime:\n{}",
            self.runtime.report()
        );
        assert_eq!(job_id(&out), id);
        assert!(all.contains(&format!("job {id} COMPLETED")), "{all}");
        out
    }

    /// Every object in the namespace labelled with job `id`, of every namespaced kind the API
    /// server lists (`kubectl api-resources`), as `kind/name`.
    pub async fn leftovers(&self, id: &str) -> Vec<String> {
        let out = kubectl(
            &[
                "api-resources",
                "--verbs=list",
                "--namespaced",
                "-o",
                "name",
            ],
            None,
        )
        .await;
        assert!(out.status.success(), "api-resources: {}", text(&out));
        let kinds: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|k| !k.is_empty() && *k != "events" && *k != "events.events.k8s.io")
            .map(String::from)
            .collect();
        let selector = format!("t2.io/job={id}");
        let out = kubectl(
            &[
                "get",
                &kinds.join(","),
                "-n",
                &self.name,
                "-l",
                &selector,
                "-o",
                "name",
                "--ignore-not-found",
            ],
            None,
        )
        .await;
        assert!(out.status.success(), "get every kind: {}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Waits until nothing labelled with job `id` is left, or panics listing what is.
    pub async fn assert_all_gone(&self, id: &str, deadline: Duration) {
        let start = Instant::now();
        loop {
            let left = self.leftovers(id).await;
            if left.is_empty() {
                return;
            }
            if start.elapsed() > deadline {
                panic!(
                    "job {id}: still there after {deadline:?}: {left:?}\nruntime:\n{}",
                    self.runtime.report()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        self.runtime.stop_now();
        // The namespace controller removes the rest; nobody waits for it.
        let _ = std::process::Command::new(&plane().kubectl)
            .arg("--kubeconfig")
            .arg(&plane().kubeconfig)
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The repository's conf/ copied under `home`, with `kubernetes.ttl_after_finished: 0s`: a
/// finished job is removed at once, as the tests that check that nothing is left expect (the
/// tests of the stay itself set it with -D).
pub fn test_conf(home: &Path) -> PathBuf {
    let dir = home.join("test-conf");
    let job_yaml = dir.join("kubernetes").join("job.yaml");
    if job_yaml.is_file() {
        return dir;
    }
    for cluster in ["local", "kubernetes"] {
        let from = repo().join("conf").join(cluster);
        let to = dir.join(cluster);
        std::fs::create_dir_all(&to).expect("test conf folder");
        for e in std::fs::read_dir(&from).expect("conf folder") {
            let e = e.expect("conf entry");
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy conf");
        }
    }
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&job_yaml).expect("conf job.yaml"))
            .expect("conf job.yaml is YAML");
    doc["kubernetes"]["ttl_after_finished"] = serde_yaml::Value::String("0s".into());
    std::fs::write(&job_yaml, serde_yaml::to_string(&doc).expect("YAML")).expect("write conf");
    dir
}

/// The job ID from a submit's output (`job ID submitted to namespace …`).
pub fn job_id(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| {
            l.strip_prefix("t2: job ")
                .and_then(|r| r.split_once(" submitted to namespace"))
                .map(|(id, _)| id.to_string())
        })
        .unwrap_or_else(|| panic!("no 'job ID submitted' line in:\n{}", text(out)))
}
