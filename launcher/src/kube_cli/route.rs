//! Which cluster a command means. `t2 submit kubernetes` and the Kubernetes-only commands go
//! to Kubernetes; `t2 status/logs/kill JOB` go to the local cluster when the job is under
//! `$T2_HOME`, else to Kubernetes when there is a kubeconfig (or `--cluster kubernetes`,
//! `-n`, `--context`, `--kubeconfig` say so); `t2 list` lists Kubernetes jobs only when asked.

use t2_core::jobdir::{t2_home, JobDir};

use super::args::{ClusterTarget, TargetCluster};
use super::{commands, submit};
use crate::cli::{ClusterKind, Command};
use crate::error::LauncherError;

/// Where a command went.
pub enum Routed {
    /// Handled here, with this result.
    Done(Result<i32, LauncherError>),
    /// For the local cluster.
    Local(Command),
}

/// True when a kubeconfig (or the in-cluster configuration) is there to use.
fn kubeconfig_available() -> bool {
    std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        || std::env::var_os("HOME")
            .map(|h| std::path::Path::new(&h).join(".kube/config").is_file())
            .unwrap_or(false)
}

/// True when `job` is meant on Kubernetes.
fn on_kubernetes(job: &str, t: &ClusterTarget) -> bool {
    match t.cluster {
        TargetCluster::Local => false,
        TargetCluster::Kubernetes => true,
        TargetCluster::Auto => {
            let local = t2_home()
                .ok()
                .is_some_and(|home| JobDir::existing(&home, job).is_ok());
            !local && (t.kube.any() || kubeconfig_available())
        }
    }
}

/// Routes `cmd`.
pub fn route(cmd: Command) -> Routed {
    match cmd {
        Command::Submit(args) if args.cluster == ClusterKind::Kubernetes => {
            Routed::Done(submit::run(args))
        }
        Command::List { target }
            if target.cluster == TargetCluster::Kubernetes
                || (target.cluster == TargetCluster::Auto && target.kube.any()) =>
        {
            Routed::Done(commands::list(&target.kube))
        }
        Command::Status {
            job,
            output,
            target,
        } if on_kubernetes(&job, &target) => {
            Routed::Done(commands::status(&job, output, &target.kube))
        }
        Command::Logs {
            job,
            worker,
            follow,
            target,
        } if on_kubernetes(&job, &target) => {
            Routed::Done(commands::logs(&job, worker, follow, &target.kube))
        }
        Command::Kill { job, target } if on_kubernetes(&job, &target) => {
            Routed::Done(commands::kill(&job, &target.kube))
        }
        Command::Kubernetes(c) => Routed::Done(commands::run(c)),
        other => Routed::Local(other),
    }
}
