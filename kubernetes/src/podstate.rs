//! Reading a job's pods while it starts: what each pod is doing (scheduled, receiving the
//! package, running) and, for the fail-fast path, why a pod cannot start — image pull
//! failures, crash loops, bad container configuration, a failed init container — with a hint
//! naming the setting to fix. Pure functions of the pod objects.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::manifests::labels::{ROLE, ROLE_JOBMASTER};
use super::manifests::pod::INIT_CONTAINER;

/// Container waiting reasons that mean the pod will not start by itself.
pub const FATAL_WAITING: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// What one pod is doing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodSummary {
    /// The pod's name.
    pub name: String,
    /// True for the job master's pod.
    pub jobmaster: bool,
    /// Placed on a node.
    pub scheduled: bool,
    /// The scheduler's reason when it cannot place the pod.
    pub unschedulable: Option<String>,
    /// The init container is running (waiting for, or fetching, the package).
    pub init_running: bool,
    /// The init container finished successfully (the package is there).
    pub init_done: bool,
    /// Every container runs.
    pub running: bool,
    /// Why the pod cannot start, if it cannot.
    pub failure: Option<String>,
    /// The pod's uid (a recreated pod has a new one).
    pub uid: String,
}

/// Summarises `pod`.
pub fn summarize(pod: &Pod) -> PodSummary {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let jobmaster = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(ROLE))
        .is_some_and(|r| r == ROLE_JOBMASTER);
    let status = pod.status.clone().unwrap_or_default();
    let conditions = status.conditions.clone().unwrap_or_default();
    let scheduled_cond = conditions.iter().find(|c| c.type_ == "PodScheduled");
    let scheduled = scheduled_cond.is_some_and(|c| c.status == "True");
    let unschedulable = scheduled_cond
        .filter(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
        .map(|c| c.message.clone().unwrap_or_else(|| "Unschedulable".into()));
    let inits = status.init_container_statuses.clone().unwrap_or_default();
    let init = inits.iter().find(|c| c.name == INIT_CONTAINER);
    let init_running = init.is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
    let init_done = init.is_some_and(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0)
    }) || (jobmaster && scheduled);
    let containers = status.container_statuses.clone().unwrap_or_default();
    let running = !containers.is_empty()
        && containers
            .iter()
            .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
    let mut failure = None;
    for c in inits.iter().chain(containers.iter()) {
        if let Some(f) = container_failure(c) {
            failure = Some(format!("pod {name}: {f}"));
            break;
        }
    }
    if failure.is_none() && status.phase.as_deref() == Some("Failed") {
        failure = Some(format!(
            "pod {name} failed: {}",
            [status.reason.clone(), status.message.clone()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(": ")
        ));
    }
    PodSummary {
        name,
        jobmaster,
        scheduled,
        unschedulable,
        init_running,
        init_done,
        running,
        failure,
        uid: pod.metadata.uid.clone().unwrap_or_default(),
    }
}

/// Why container `c` cannot start, with a hint; `None` while it may still start.
pub fn container_failure(c: &ContainerStatus) -> Option<String> {
    let state = c.state.as_ref()?;
    if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        if FATAL_WAITING.contains(&reason.as_str()) {
            let msg = w.message.clone().unwrap_or_default();
            let msg = if reason == "CrashLoopBackOff" {
                last_exit(c).unwrap_or(msg)
            } else {
                msg
            };
            return Some(format!(
                "container {}: {reason}{}{}",
                c.name,
                if msg.is_empty() {
                    String::new()
                } else {
                    format!(": {}", one_line(&msg))
                },
                hint(&reason, &c.name)
            ));
        }
    }
    if let Some(t) = &state.terminated {
        if c.name == INIT_CONTAINER && t.exit_code != 0 {
            let msg = t
                .message
                .clone()
                .or_else(|| t.reason.clone())
                .unwrap_or_else(|| format!("exit code {}", t.exit_code));
            return Some(format!(
                "the init container could not get the package: {}",
                one_line(&msg)
            ));
        }
    }
    None
}

/// The last termination of `c`, as text.
fn last_exit(c: &ContainerStatus) -> Option<String> {
    let t = c.last_state.as_ref()?.terminated.as_ref()?;
    let msg = t
        .message
        .clone()
        .map(|m| format!(": {}", one_line(&m)))
        .unwrap_or_default();
    Some(format!("last exit code {}{msg}", t.exit_code))
}

fn hint(reason: &str, container: &str) -> String {
    match reason {
        "ImagePullBackOff" | "ErrImagePull" | "ErrImageNeverPull" => "; check kubernetes.image: is it pushed to a registry the nodes can reach (build and push it as the README says), and does it need kubernetes.image_pull_secrets?".into(),
        "InvalidImageName" => "; fix kubernetes.image".into(),
        "CreateContainerConfigError" => "; does every Secret in kubernetes.secrets (and the job's token Secret) exist in the namespace?".into(),
        "CrashLoopBackOff" if container == INIT_CONTAINER => "; see 'kubectl logs POD -c t2-init'".into(),
        "CrashLoopBackOff" => "; see 't2 logs JOB'".into(),
        _ => String::new(),
    }
}

/// Text on one line, at most 400 characters.
fn one_line(s: &str) -> String {
    let s = super::error::one_line(s);
    if s.chars().count() > 400 {
        format!("{}…", s.chars().take(400).collect::<String>())
    } else {
        s
    }
}

/// Counts over the job's pods, for the progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Pods the job has.
    pub expected: usize,
    /// Pods placed on nodes.
    pub scheduled: usize,
    /// Worker pods holding the package.
    pub packaged: usize,
    /// Worker pods expected.
    pub worker_pods: usize,
    /// Pods whose containers all run.
    pub running: usize,
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pods scheduled {}/{}, package delivered {}/{}, running {}/{}",
            self.scheduled,
            self.expected,
            self.packaged,
            self.worker_pods,
            self.running,
            self.expected
        )
    }
}

/// The counts over `pods` (`worker_pods` workers plus the job master expected).
pub fn progress<'a>(pods: impl Iterator<Item = &'a PodSummary>, worker_pods: usize) -> Progress {
    let mut p = Progress {
        expected: worker_pods + 1,
        worker_pods,
        ..Progress::default()
    };
    for s in pods {
        p.scheduled += usize::from(s.scheduled);
        p.running += usize::from(s.running);
        p.packaged += usize::from(!s.jobmaster && (s.init_done || s.running));
    }
    p
}
