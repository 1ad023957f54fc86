//! One [`Cluster`] trait for the local and the Kubernetes cluster (DESIGN §2), and which
//! cluster a command means. `t2 submit` goes where its first argument says; `t2
//! status/logs/kill/scale JOB` go to the local cluster when the job is under `$T2_HOME`, else
//! to Kubernetes when there is a kubeconfig (or `--cluster kubernetes`, `-n`, `--context`,
//! `--kubeconfig` say so); `t2 list` lists Kubernetes jobs only when asked.

pub mod kubernetes;
pub mod local;

use serde::Serialize;
use t2_core::jobdir::{t2_home, JobDir};
use t2_core::names::validate_job_id;

use crate::cli::{ClusterKind, Output, SubmitArgs};
use crate::commands::logs::LogOptions;
use crate::error::LauncherError;
use crate::kube_cli::args::{ClusterTarget, TargetCluster};

pub use kubernetes::KubernetesCluster;
pub use local::LocalCluster;

/// What every cluster backend does for the command line. Each method prints its result and
/// returns the process exit code; errors are one line.
pub trait Cluster {
    /// `t2 submit CLUSTER PKG`.
    fn submit(&self, args: SubmitArgs) -> Result<i32, LauncherError>;
    /// `t2 list [-o FORMAT] [--watch]`.
    fn list(&self, output: Output, watch: bool) -> Result<i32, LauncherError>;
    /// `t2 status JOB [-o FORMAT]` (`job` is a valid job ID).
    fn status(&self, job: &str, output: Output) -> Result<i32, LauncherError>;
    /// `t2 logs JOB …` (`job` is a valid job ID).
    fn logs(&self, job: &str, options: &LogOptions) -> Result<i32, LauncherError>;
    /// `t2 describe JOB` (`job` is a valid job ID).
    fn describe(&self, job: &str) -> Result<i32, LauncherError>;
    /// `t2 kill JOB` (`job` is a valid job ID).
    fn kill(&self, job: &str) -> Result<i32, LauncherError>;
    /// `t2 scale JOB N` (`job` is a valid job ID).
    fn scale(&self, job: &str, workers: u32) -> Result<i32, LauncherError>;
}

/// The cluster a new job goes to.
pub fn for_submit(args: &SubmitArgs) -> Result<Box<dyn Cluster>, LauncherError> {
    Ok(match args.cluster {
        ClusterKind::Local => Box::new(LocalCluster::new()?),
        ClusterKind::Kubernetes => Box::new(KubernetesCluster::new(args.kube.kube.clone())),
    })
}

/// The cluster `t2 list` lists: Kubernetes only when asked.
pub fn for_list(target: &ClusterTarget) -> Result<Box<dyn Cluster>, LauncherError> {
    let kubernetes = target.cluster == TargetCluster::Kubernetes
        || (target.cluster == TargetCluster::Auto && target.kube.any());
    Ok(if kubernetes {
        Box::new(KubernetesCluster::new(target.kube.clone()))
    } else {
        Box::new(LocalCluster::new()?)
    })
}

/// The cluster job `job` is on; refuses an invalid job ID first, whichever cluster.
pub fn for_job(job: &str, target: &ClusterTarget) -> Result<Box<dyn Cluster>, LauncherError> {
    validate_job_id(job)?;
    Ok(if on_kubernetes(job, target) {
        Box::new(KubernetesCluster::new(target.kube.clone()))
    } else {
        Box::new(LocalCluster::new()?)
    })
}

/// True when `job` is meant on Kubernetes.
fn on_kubernetes(job: &str, t: &ClusterTarget) -> bool {
    match t.cluster {
        TargetCluster::Local => false,
        TargetCluster::Kubernetes => true,
        TargetCluster::Auto => {
            // A local job's folder, with a local record (not another cluster's staged job).
            let local = t2_home().ok().is_some_and(|home| {
                JobDir::existing(&home, job)
                    .and_then(|d| d.read_record())
                    .is_ok_and(|r| r.cluster == "local")
            });
            !local && (t.kube.any() || kubeconfig_available())
        }
    }
}

/// True when a kubeconfig (or the in-cluster configuration) is there to use.
fn kubeconfig_available() -> bool {
    std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty())
        || std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
        || std::env::var_os("HOME")
            .map(|h| std::path::Path::new(&h).join(".kube/config").is_file())
            .unwrap_or(false)
}

/// Prints `value` as `-o json` (pretty, one document) or `-o yaml` do, else `text(value,
/// wide)`.
pub fn print_as<T: Serialize>(
    output: Output,
    value: &T,
    text: impl FnOnce(&T, bool) -> String,
) -> Result<(), LauncherError> {
    match output {
        Output::Json => crate::stdout::outln!(
            "{}",
            serde_json::to_string_pretty(value)
                .map_err(LauncherError::json("cannot encode the status"))?
        ),
        Output::Yaml => crate::stdout::out!("{}", to_yaml(value)?),
        Output::Text => crate::stdout::out!("{}", text(value, false)),
        Output::Wide => crate::stdout::out!("{}", text(value, true)),
    }
    Ok(())
}

/// `value` as one YAML document.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, LauncherError> {
    serde_yaml::to_string(value)
        .map_err(|e| LauncherError::Failed(format!("cannot encode as YAML: {e}")))
}
