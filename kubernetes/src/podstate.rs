//! Reading a job's pods while it starts: what each pod is doing (scheduled, receiving the
//! package, running) and, for the fail-fast path, why a pod cannot start — image pull
//! failures, bad container configuration, a failed init container, a container that crashed
//! more often than the job's `max_restarts` allows — with a hint naming the setting to fix.
//! Pure functions of the pod objects.
//!
//! A crash loop below `max_restarts` is not a failure: the job allows restarts, and the
//! kubelet restarts the container after its back-off ([`kubelet_backoff`]), so the submit
//! keeps waiting (its deadline grows by the back-off those restarts may take,
//! [`crash_loop_allowance`]).
//!
//! Nor is a disruption ([`crate::disruption`]: an eviction, a preemption, the condition
//! `DisruptionTarget`): the pod is not the job's to fix, and the StatefulSet makes it again.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::manifests::labels::{ROLE, ROLE_JOBMASTER};
use super::manifests::pod::{INIT_CONTAINER, JM_CONTAINER};

/// Container waiting reasons that mean the pod will not start by itself.
pub const FATAL_WAITING: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The kubelet's first wait before restarting a crashed container (doubled after every
/// crash, up to [`KUBELET_BACKOFF_MAX`]; the kubelet's defaults).
pub const KUBELET_BACKOFF_FIRST: Duration = Duration::from_secs(10);
/// The kubelet's longest wait before restarting a crashed container.
pub const KUBELET_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// How long the kubelet waits before starting a container again that has crashed after
/// `restarts` restarts: 10 s, 20 s, 40 s … up to 5 min.
pub fn kubelet_backoff(restarts: u32) -> Duration {
    KUBELET_BACKOFF_FIRST
        .saturating_mul(1u32 << restarts.min(16))
        .min(KUBELET_BACKOFF_MAX)
}

/// The back-off a container may spend restarting `max_restarts` times: what a start wait
/// adds to its deadline so that a crash loop the job allows does not outgrow it.
pub fn crash_loop_allowance(max_restarts: u32) -> Duration {
    (0..max_restarts.min(64)).map(kubelet_backoff).sum()
}

/// What a crash loop is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashRules {
    /// Restarts a worker may have (`max_restarts`); one more fails the start.
    pub max_restarts: u32,
    /// Worker containers per pod (worker ID = ordinal × this + container index).
    pub workers_per_pod: u32,
}

impl Default for CrashRules {
    fn default() -> Self {
        Self {
            max_restarts: 3,
            workers_per_pod: 1,
        }
    }
}

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
    /// Why the cluster is taking the pod away (an eviction, a preemption), if it is.
    pub disrupted: Option<String>,
}

/// Summarises `pod`, judging crash loops by `rules`.
pub fn summarize(pod: &Pod, rules: &CrashRules) -> PodSummary {
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
        if let Some(f) = container_failure(c, &who(&name, &c.name, rules), rules.max_restarts) {
            failure = Some(format!("pod {name}: {f}"));
            break;
        }
    }
    let disrupted = super::disruption::disrupted(pod);
    if disrupted.is_some() {
        // Its containers were stopped by the cluster, not by a fault of the job.
        failure = None;
    } else if failure.is_none() && status.phase.as_deref() == Some("Failed") {
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
        disrupted,
    }
}

/// Who container `container` of pod `pod` is, for messages: `worker 3 (container
/// worker-1)`, `the job master`, or the container's name.
fn who(pod: &str, container: &str, rules: &CrashRules) -> String {
    if container == JM_CONTAINER {
        return "the job master".into();
    }
    let id = container
        .strip_prefix("worker-")
        .and_then(|i| i.parse::<u32>().ok())
        .zip(super::incluster::env::ordinal(pod).ok())
        .and_then(|(i, o)| {
            super::incluster::env::worker_id(o, rules.workers_per_pod.max(1), i).ok()
        });
    match id {
        Some(id) => format!("worker {id} (container {container})"),
        None => format!("container {container}"),
    }
}

/// Why container `c` (described as `who`) cannot start, with a hint; `None` while it may
/// still start. A crash loop is a failure only past `max_restarts` restarts (the init
/// container's at once: t2's own, it fails only for reasons a restart does not change).
pub fn container_failure(c: &ContainerStatus, who: &str, max_restarts: u32) -> Option<String> {
    let state = c.state.as_ref()?;
    if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        if reason == "CrashLoopBackOff" {
            let restarts = u32::try_from(c.restart_count).unwrap_or(0);
            if c.name != INIT_CONTAINER && restarts <= max_restarts {
                return None; // the job allows this restart; the kubelet will make it
            }
            let last = last_exit(c)
                .or_else(|| w.message.clone().map(|m| one_line(&m)))
                .unwrap_or_default();
            let times = match restarts {
                1 => "once".to_string(),
                n => format!("{n} times"),
            };
            return Some(format!(
                "{who} crashed and was restarted {times}, past max_restarts = {max_restarts} (CrashLoopBackOff){}{}",
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                },
                hint(&reason, &c.name)
            ));
        }
        if FATAL_WAITING.contains(&reason.as_str()) {
            let msg = w.message.clone().unwrap_or_default();
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

/// The last termination of `c`, as text (exit code, reason, message).
fn last_exit(c: &ContainerStatus) -> Option<String> {
    let t = c.last_state.as_ref()?.terminated.as_ref()?;
    let reason = t
        .reason
        .clone()
        .filter(|r| !r.is_empty() && r != "Error")
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    let msg = t
        .message
        .clone()
        .map(|m| format!(": {}", one_line(&m)))
        .unwrap_or_default();
    Some(format!("last exit code {}{reason}{msg}", t.exit_code))
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStateWaiting, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn crash_looping(container: &str, restarts: i32) -> ContainerStatus {
        ContainerStatus {
            name: container.into(),
            restart_count: restarts,
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".into()),
                    message: Some("back-off 40s restarting failed container".into()),
                }),
                ..ContainerState::default()
            }),
            last_state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 3,
                    reason: Some("Error".into()),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }

    fn pod(name: &str, containers: Vec<ContainerStatus>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            status: Some(PodStatus {
                container_statuses: Some(containers),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn a_crash_loop_within_max_restarts_is_waited_for() {
        let rules = CrashRules {
            max_restarts: 3,
            workers_per_pod: 2,
        };
        for restarts in 1..=3 {
            let s = summarize(
                &pod("job-ab-2", vec![crash_looping("worker-1", restarts)]),
                &rules,
            );
            assert_eq!(s.failure, None, "restart {restarts} of 3 allowed");
            assert!(!s.running);
        }
    }

    #[test]
    fn a_crash_loop_past_max_restarts_names_the_worker_exit_code_and_restarts() {
        let rules = CrashRules {
            max_restarts: 3,
            workers_per_pod: 2,
        };
        let s = summarize(&pod("job-ab-2", vec![crash_looping("worker-1", 4)]), &rules);
        assert_eq!(
            s.failure.as_deref(),
            Some("pod job-ab-2: worker 5 (container worker-1) crashed and was restarted 4 times, past max_restarts = 3 (CrashLoopBackOff): last exit code 3; see 't2 logs JOB'")
        );
        let s = summarize(
            &pod("job-ab-jm-0", vec![crash_looping("jobmaster", 1)]),
            &CrashRules {
                max_restarts: 0,
                workers_per_pod: 1,
            },
        );
        assert!(
            s.failure.as_deref().is_some_and(|f| f
                .contains("the job master crashed and was restarted once, past max_restarts = 0")),
            "{s:?}"
        );
    }

    #[test]
    fn an_evicted_pod_is_not_a_failure() {
        let mut p = pod("job-ab-1", vec![crash_looping("worker-0", 9)]);
        if let Some(st) = p.status.as_mut() {
            st.phase = Some("Failed".into());
            st.reason = Some("Evicted".into());
        }
        let s = summarize(&p, &CrashRules::default());
        assert_eq!(s.failure, None, "{s:?}");
        assert_eq!(s.disrupted.as_deref(), Some("Evicted"));
    }

    #[test]
    fn the_init_containers_crash_loop_fails_at_once() {
        let c = crash_looping(INIT_CONTAINER, 1);
        let f = container_failure(&c, "container t2-init", 3).expect("a failure");
        assert!(f.contains("kubectl logs POD -c t2-init"), "{f}");
    }

    #[test]
    fn the_kubelets_backoff_and_the_allowance_for_max_restarts() {
        assert_eq!(kubelet_backoff(0), Duration::from_secs(10));
        assert_eq!(kubelet_backoff(1), Duration::from_secs(20));
        assert_eq!(kubelet_backoff(4), Duration::from_secs(160));
        assert_eq!(kubelet_backoff(5), Duration::from_secs(300));
        assert_eq!(kubelet_backoff(40), Duration::from_secs(300));
        assert_eq!(crash_loop_allowance(0), Duration::ZERO);
        assert_eq!(crash_loop_allowance(3), Duration::from_secs(70));
    }
}
