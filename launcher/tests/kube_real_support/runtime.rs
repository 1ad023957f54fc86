//! A local container runtime for the pods of one namespace: KWOK writes the pods' status as
//! the kubelet would (tests/k8s/kwok-stages/), and this runs what the containers would run,
//! as local processes of the image's one program (`t2`, linked into KWOK's exec PATH), and
//! reports back through pod annotations:
//! - once KWOK gave a pod its sandbox (an IP), its volumes are made ([`podspec::prepare`]),
//!   KWOK `Exec` and `Logs` rules are created for it (so `exec` — direct package delivery —
//!   runs in its folders and environment, and the API server's `pods/log` reads its
//!   containers' output, kept in the CRI log format by [`super::crilog`]);
//! - its init containers run in order (annotation `runtime.t2.test/init`: `running`, then
//!   `done`, or `failed` with the exit code and the output's last lines, which KWOK turns into
//!   the init container's status);
//! - once KWOK made it Running, each container's command runs; a container that exits is
//!   started again (restartPolicy Always) after the kubelet's back-off (10 s, doubling, at
//!   most 5 min), and the pod's status says so as a kubelet's would (written by the runtime
//!   itself: no KWOK stage matches a Running pod): while it waits the container is waiting
//!   `CrashLoopBackOff` with its last exit code in `lastState.terminated` and its
//!   `restartCount`; once started again it is running with `restartCount` one higher;
//! - a pod that is deleted (or gone) has its processes stopped: SIGTERM to each process
//!   group, SIGKILL after the pod's grace period (at most 10 s).
//!
//! Every start, exit and stop is written to an event list the tests read ([`Runtime::events`]).

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use kube::Client;
use tokio::sync::watch;
use tokio::time::Instant;

use super::crilog::{cri_path, Sink};
use super::podspec::{self, PodFiles};
use super::proxy::Proxies;
use super::Plane;

/// The annotation the runtime reports init containers through.
pub const INIT: &str = "runtime.t2.test/init";

/// The runtime of one namespace.
pub struct Runtime {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
}

/// What the loop and the tests share.
struct Shared {
    /// Process groups alive, to kill on drop.
    groups: Mutex<BTreeSet<i32>>,
    /// What happened, in order.
    events: Mutex<Vec<String>>,
    /// Logs of every container: (pod, container) → file.
    logs: Mutex<BTreeMap<(String, String), PathBuf>>,
}

impl Shared {
    fn note(&self, line: String) {
        if let Ok(mut e) = self.events.lock() {
            // A retried failure is noted once.
            if e.last() != Some(&line) {
                e.push(line);
            }
        }
    }
}

fn kill_group(pgid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), sig);
}

impl Runtime {
    /// Starts the runtime of namespace `ns`.
    pub async fn start(client: Client, ns: &str, plane: &Plane) -> Runtime {
        link_t2(&plane.exec_path);
        let dir = tempfile::Builder::new()
            .prefix(&format!("t2-runtime-{ns}-"))
            .tempdir()
            .expect("runtime folder");
        let shared = Arc::new(Shared {
            groups: Mutex::new(BTreeSet::new()),
            events: Mutex::new(Vec::new()),
            logs: Mutex::new(BTreeMap::new()),
        });
        let (stop, rx) = watch::channel(false);
        let ctx = Ctx {
            client: client.clone(),
            ns: ns.into(),
            root: dir.path().to_path_buf(),
            api_port: plane.api_port(),
            exec_path: plane.exec_path.clone(),
            proxies: Proxies::new(client, ns),
            shared: shared.clone(),
        };
        let task = tokio::spawn(run(ctx, rx));
        Runtime {
            stop,
            task: Some(task),
            shared,
            _dir: dir,
        }
    }

    /// Everything that happened so far.
    pub fn events(&self) -> Vec<String> {
        self.shared
            .events
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// The output of container `container` of pod `pod` so far (all its runs).
    pub fn log(&self, pod: &str, container: &str) -> String {
        let path = self
            .shared
            .logs
            .lock()
            .ok()
            .and_then(|l| l.get(&(pod.to_string(), container.to_string())).cloned());
        path.and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// The events and the last lines of every container's output, for failure messages.
    pub fn report(&self) -> String {
        let mut out = self.events().join("\n");
        let logs = self
            .shared
            .logs
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        for ((pod, c), path) in logs {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n");
            out.push_str(&format!("\n--- {pod}/{c} ({}):\n{tail}", path.display()));
        }
        out
    }

    /// Stops the loop and SIGKILLs every process group it started.
    pub fn stop_now(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            t.abort();
        }
        let groups = self
            .shared
            .groups
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default();
        for g in groups {
            kill_group(g, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Links the `t2` under test into KWOK's exec PATH (atomically: several tests do it).
fn link_t2(dir: &Path) {
    let target = PathBuf::from(env!("CARGO_BIN_EXE_t2"));
    let link = dir.join("t2");
    if std::fs::read_link(&link).ok().as_deref() == Some(target.as_path()) {
        return;
    }
    std::fs::create_dir_all(dir).expect("exec PATH folder");
    // Unique per call: tests in one process link at the same time.
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".t2-{}-{serial}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp).expect("symlink t2");
    std::fs::rename(&tmp, &link).expect("link t2 into KWOK's exec PATH");
}

struct Ctx {
    client: Client,
    ns: String,
    root: PathBuf,
    api_port: u16,
    exec_path: PathBuf,
    proxies: Arc<Proxies>,
    shared: Arc<Shared>,
}

/// One container's process.
struct Proc {
    name: String,
    child: Option<tokio::process::Child>,
    pgid: i32,
    starts: u32,
    /// When to start it again after it exited.
    again_at: Option<Instant>,
    /// Where its output goes.
    sink: Sink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitState {
    Pending,
    Running(usize),
    Done,
    Failed,
}

/// One pod the runtime runs.
struct PodRun {
    name: String,
    files: Option<PodFiles>,
    init: InitState,
    procs: Vec<Proc>,
    main_started: bool,
    grace: Duration,
}

fn kwok_api(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", kind),
        plural,
    )
}

async fn run(ctx: Ctx, mut stop: watch::Receiver<bool>) {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let mut runs: BTreeMap<String, PodRun> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        let list = match pods.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) => {
                ctx.shared.note(format!("list pods: {e}"));
                continue;
            }
        };
        let live: BTreeMap<String, &Pod> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| Some((p.metadata.uid.clone()?, p)))
            .collect();
        let gone: Vec<String> = runs
            .keys()
            .filter(|u| !live.contains_key(*u))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(r) = runs.remove(&uid) {
                terminate(&ctx, r);
            }
        }
        for (uid, pod) in live {
            let r = runs.entry(uid.clone()).or_insert_with(|| PodRun {
                name: pod.metadata.name.clone().unwrap_or_default(),
                files: None,
                init: InitState::Pending,
                procs: Vec::new(),
                main_started: false,
                grace: Duration::from_secs(
                    pod.spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                        .unwrap_or(30)
                        .clamp(0, 10) as u64,
                ),
            });
            if let Err(e) = step(&ctx, pod, &uid, r).await {
                ctx.shared
                    .note(format!("pod {}: {e} (trying again)", r.name));
            }
        }
    }
    for (_, r) in runs {
        for p in r.procs {
            kill_group(p.pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Stops a pod's processes (SIGTERM, SIGKILL after its grace period) in the background.
fn terminate(ctx: &Ctx, r: PodRun) {
    ctx.shared
        .note(format!("pod {} deleted: stopping its containers", r.name));
    let shared = ctx.shared.clone();
    tokio::spawn(async move {
        for p in &r.procs {
            if p.child.is_some() {
                kill_group(p.pgid, nix::sys::signal::Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + r.grace;
        for mut p in r.procs {
            if let Some(mut child) = p.child.take() {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, child.wait()).await {
                    Ok(status) => shared.note(format!(
                        "{}/{} stopped: {}",
                        r.name,
                        p.name,
                        status.map(|s| s.to_string()).unwrap_or_default()
                    )),
                    Err(_) => {
                        kill_group(p.pgid, nix::sys::signal::Signal::SIGKILL);
                        let _ = child.wait().await;
                        shared.note(format!(
                            "{}/{} killed after the grace period",
                            r.name, p.name
                        ));
                    }
                }
            }
            kill_group(p.pgid, nix::sys::signal::Signal::SIGKILL);
            if let Ok(mut g) = shared.groups.lock() {
                g.remove(&p.pgid);
            }
        }
        if let Some(f) = r.files {
            let _ = std::fs::remove_dir_all(f.root.join("volumes"));
        }
    });
}

async fn step(ctx: &Ctx, pod: &Pod, uid: &str, r: &mut PodRun) -> Result<(), String> {
    let status = pod.status.clone().unwrap_or_default();
    if status.pod_ip.is_none() {
        return Ok(()); // no sandbox yet (or an image that cannot be pulled)
    }
    let spec = pod.spec.clone().unwrap_or_default();
    if r.files.is_none() {
        let root = ctx
            .root
            .join("pods")
            .join(format!("{}-{}", r.name, &uid[..8.min(uid.len())]));
        let files = podspec::prepare(&ctx.client, pod, &root).await?;
        register_exec_and_logs(ctx, pod, &spec_containers(pod), &files).await?;
        ctx.shared.note(format!(
            "pod {} ({uid}): volumes made in {}",
            r.name,
            root.display()
        ));
        r.files = Some(files);
    }
    let files = r.files.clone().unwrap_or_default();
    let inits = spec.init_containers.clone().unwrap_or_default();
    match r.init {
        InitState::Pending if inits.is_empty() => r.init = InitState::Done,
        InitState::Pending => {
            let p = start(ctx, pod, &inits[0], &files, 0).await?;
            r.procs.push(p);
            annotate(ctx, &r.name, &[(INIT, "running")]).await?;
            r.init = InitState::Running(0);
        }
        InitState::Running(i) => {
            let Some(p) = r.procs.iter_mut().find(|p| p.name == inits[i].name) else {
                return Err("lost the init process".into());
            };
            if let Some(child) = p.child.as_mut() {
                if let Ok(Some(st)) = child.try_wait() {
                    p.child = None;
                    let code = st.code().unwrap_or(128);
                    ctx.shared
                        .note(format!("{}/{} exited {code}", r.name, p.name));
                    if code == 0 && i + 1 < inits.len() {
                        let next = start(ctx, pod, &inits[i + 1], &files, 0).await?;
                        r.procs.push(next);
                        r.init = InitState::Running(i + 1);
                    } else if code == 0 {
                        annotate(ctx, &r.name, &[(INIT, "done")]).await?;
                        r.init = InitState::Done;
                    } else {
                        // Its last lines, once its output reached the log.
                        p.sink.drain(Duration::from_secs(2));
                        let log =
                            ctx.shared.logs.lock().ok().and_then(|l| {
                                l.get(&(r.name.clone(), inits[i].name.clone())).cloned()
                            });
                        let text = log
                            .and_then(|p| std::fs::read_to_string(p).ok())
                            .unwrap_or_default();
                        let lines: Vec<&str> = text.lines().collect();
                        let tail = lines[lines.len().saturating_sub(5)..].join("\n");
                        annotate(
                            ctx,
                            &r.name,
                            &[
                                (INIT, "failed"),
                                ("runtime.t2.test/init-exit-code", &code.to_string()),
                                ("runtime.t2.test/init-message", &tail),
                            ],
                        )
                        .await?;
                        r.init = InitState::Failed;
                    }
                }
            }
        }
        InitState::Done | InitState::Failed => {}
    }
    if r.init != InitState::Done {
        return Ok(());
    }
    if !r.main_started {
        // The containers start once KWOK made the pod Running.
        if status.phase.as_deref() != Some("Running") {
            return Ok(());
        }
        for c in &spec.containers {
            let p = start(ctx, pod, c, &files, 0).await?;
            r.procs.push(p);
        }
        r.main_started = true;
        return Ok(());
    }
    for c in &spec.containers {
        let Some(idx) = r.procs.iter().position(|p| p.name == c.name) else {
            continue;
        };
        let p = &mut r.procs[idx];
        if let Some(child) = p.child.as_mut() {
            if let Ok(Some(st)) = child.try_wait() {
                p.child = None;
                let backoff = kubelet_backoff(p.starts);
                let code = st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
                ctx.shared.note(format!(
                    "{}/{} exited {code} (run {}); restarting in {backoff:?}",
                    r.name, p.name, p.starts
                ));
                p.again_at = Some(Instant::now() + backoff);
                let (name, restarts) = (p.name.clone(), p.starts);
                let waiting = serde_json::json!({"waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": format!("back-off {}s restarting failed container={name} pod={}", backoff.as_secs(), r.name),
                }});
                let last = serde_json::json!({"terminated": {
                    "exitCode": code,
                    "reason": if code == 0 { "Completed" } else { "Error" },
                    "finishedAt": now_rfc3339(),
                }});
                report_container(ctx, pod, &name, restarts, waiting, Some(last)).await?;
            }
        } else if p.again_at.is_some_and(|t| Instant::now() >= t) {
            let starts = p.starts;
            let mut next = start(ctx, pod, c, &files, starts + 1).await?;
            next.starts = starts + 1;
            r.procs[idx] = next;
            let running = serde_json::json!({"running": {"startedAt": now_rfc3339()}});
            report_container(ctx, pod, &c.name, starts + 1, running, None).await?;
        }
    }
    Ok(())
}

/// The kubelet's wait before starting a container again that exited in run `run` (0-based).
fn kubelet_backoff(run: u32) -> Duration {
    Duration::from_secs(10)
        .saturating_mul(1 << run.min(6))
        .min(Duration::from_secs(300))
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Writes container `name`'s status as a kubelet would: `state`, `restart_count` and (when
/// given) `last_state`, the other containers' statuses as they are.
async fn report_container(
    ctx: &Ctx,
    pod: &Pod,
    name: &str,
    restart_count: u32,
    state: serde_json::Value,
    last_state: Option<serde_json::Value>,
) -> Result<(), String> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    // The pod as it is now (another container's status may have changed since the list).
    let pod = pods
        .get(&pod_name)
        .await
        .map_err(|e| format!("get pod {pod_name}: {e}"))?;
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let mut statuses: Vec<serde_json::Value> = current
        .iter()
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .collect();
    let Some(entry) = statuses.iter_mut().find(|c| c["name"] == name) else {
        return Err(format!("pod {pod_name} has no status of container {name}"));
    };
    let running = state.get("running").is_some();
    entry["state"] = state;
    entry["restartCount"] = restart_count.into();
    entry["ready"] = running.into();
    entry["started"] = running.into();
    if let Some(last) = last_state {
        entry["lastState"] = last;
    }
    pods.patch_status(
        &pod_name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"containerStatuses": statuses}})),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("write the status of pod {pod_name}: {e}"))
}

fn spec_containers(pod: &Pod) -> Vec<Container> {
    let spec = pod.spec.clone().unwrap_or_default();
    spec.init_containers
        .unwrap_or_default()
        .into_iter()
        .chain(spec.containers)
        .collect()
}

/// KWOK rules for the pod: `exec` runs in the container's environment and folders, `logs`
/// reads its output; owned by the pod, so garbage collection removes them with it.
async fn register_exec_and_logs(
    ctx: &Ctx,
    pod: &Pod,
    containers: &[Container],
    files: &PodFiles,
) -> Result<(), String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let owner = serde_json::json!([{
        "apiVersion": "v1", "kind": "Pod", "name": name, "uid": pod.metadata.uid,
    }]);
    let mut execs = Vec::new();
    let mut logs = Vec::new();
    for c in containers {
        let env = podspec::container_env(
            &ctx.client,
            pod,
            c,
            files,
            &ctx.proxies,
            ctx.api_port,
            &ctx.exec_path,
        )
        .await?;
        execs.push(serde_json::json!({
            "containers": [c.name],
            "local": {
                "workDir": files.root,
                "envs": env.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect::<Vec<_>>(),
            },
        }));
        let log = files.root.join("logs").join(format!("{}.log", c.name));
        std::fs::create_dir_all(files.root.join("logs")).map_err(|e| e.to_string())?;
        drop(Sink::open(&log)?);
        if let Ok(mut l) = ctx.shared.logs.lock() {
            l.insert((name.clone(), c.name.clone()), log.clone());
        }
        // KWOK reads the CRI-format twin (the kubelet's log reader accepts only that).
        logs.push(
            serde_json::json!({"containers": [c.name], "logsFile": cri_path(&log), "follow": true}),
        );
    }
    for (kind, plural, spec) in [
        ("Exec", "execs", serde_json::json!({"execs": execs})),
        ("Logs", "logs", serde_json::json!({"logs": logs})),
    ] {
        let ar = kwok_api(kind, plural);
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ctx.ns, &ar);
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": ctx.ns, "ownerReferences": owner},
            "spec": spec,
        }))
        .map_err(|e| e.to_string())?;
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // A pod recreated under the same name: replace the old pod's rule.
                let _ = api.delete(&name, &Default::default()).await;
                api.create(&PostParams::default(), &obj)
                    .await
                    .map_err(|e| format!("create KWOK {kind} {name}: {e}"))?;
            }
            Err(e) => return Err(format!("create KWOK {kind} {name}: {e}")),
        }
    }
    Ok(())
}

async fn annotate(ctx: &Ctx, pod: &str, kv: &[(&str, &str)]) -> Result<(), String> {
    let ann: serde_json::Map<String, serde_json::Value> = kv
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    pods.patch(
        pod,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"annotations": ann}})),
    )
    .await
    .map(|_| ())
    .map_err(|e| format!("annotate pod {pod}: {e}"))
}

/// Starts container `c` of `pod` as a local process group; output appended to its log.
async fn start(
    ctx: &Ctx,
    pod: &Pod,
    c: &Container,
    files: &PodFiles,
    run: u32,
) -> Result<Proc, String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let env = podspec::container_env(
        &ctx.client,
        pod,
        c,
        files,
        &ctx.proxies,
        ctx.api_port,
        &ctx.exec_path,
    )
    .await?;
    let mut argv: Vec<String> = c.command.clone().unwrap_or_default();
    argv.extend(c.args.clone().unwrap_or_default());
    let Some(program) = argv.first().cloned() else {
        return Err(format!(
            "container {} has no command (the image's entrypoint is not known here)",
            c.name
        ));
    };
    let program = if program.contains('/') {
        PathBuf::from(program)
    } else {
        ctx.exec_path
            .join(&program)
            .canonicalize()
            .unwrap_or_else(|_| PathBuf::from(program))
    };
    let log_path = files.root.join("logs").join(format!("{}.log", c.name));
    let sink = Sink::open(&log_path)?;
    if let Ok(mut l) = ctx.shared.logs.lock() {
        l.insert((name.clone(), c.name.clone()), log_path.clone());
    }
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(env)
        .current_dir(&files.root)
        .stdin(Stdio::null())
        .stdout(sink.spawn_reader("stdout")?)
        .stderr(sink.spawn_reader("stderr")?)
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("start {name}/{}: {}: {e}", c.name, program.display()))?;
    let pgid = child.id().map(|p| p as i32).unwrap_or(0);
    if let Ok(mut g) = ctx.shared.groups.lock() {
        g.insert(pgid);
    }
    ctx.shared.note(format!(
        "{name}/{} started (run {run}, pid {pgid}): {argv:?}",
        c.name
    ));
    Ok(Proc {
        name: c.name.clone(),
        child: Some(child),
        pgid,
        starts: run,
        again_at: None,
        sink,
    })
}
