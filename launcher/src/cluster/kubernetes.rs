//! The Kubernetes cluster behind the [`Cluster`] trait: each command connects with the
//! kubectl-style flags and calls the library (`t2_kubernetes`).

use std::io::Write;
use std::time::Duration;

use t2_kubernetes::{client, jobs, kill, logs, scale, Kube};

use super::{print_as, Cluster};
use crate::cli::{Output, SubmitArgs};
use crate::error::LauncherError;
use crate::kube_cli::args::KubeFlags;
use crate::kube_cli::{err, user};

/// How long `t2 kill` waits for a job's objects to go.
const KILL_WAIT: Duration = Duration::from_secs(60);

/// A Kubernetes cluster, reached with these flags.
pub struct KubernetesCluster {
    flags: KubeFlags,
}

impl KubernetesCluster {
    /// The cluster `flags` (kubeconfig, context, namespace) name.
    pub fn new(flags: KubeFlags) -> Self {
        Self { flags }
    }

    fn connect(&self) -> Result<(tokio::runtime::Runtime, Kube), LauncherError> {
        connect(&self.flags)
    }
}

/// A runtime and a client of the cluster `flags` name.
pub fn connect(flags: &KubeFlags) -> Result<(tokio::runtime::Runtime, Kube), LauncherError> {
    let rt = crate::runtime()?;
    let kube = rt
        .block_on(client::connect(&flags.options()))
        .map_err(err)?;
    Ok((rt, kube))
}

impl Cluster for KubernetesCluster {
    fn submit(&self, args: SubmitArgs) -> Result<i32, LauncherError> {
        crate::kube_cli::submit::run(args)
    }

    fn list(&self) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let rows = rt.block_on(jobs::list_jobs(&kube)).map_err(err)?;
        crate::stdout::out!("{}", jobs::render_list(&rows, &kube.namespace));
        Ok(0)
    }

    fn status(&self, job: &str, output: Output) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let s = rt.block_on(jobs::job_status(&kube, job)).map_err(err)?;
        print_as(output, &s, jobs::render_status)?;
        Ok(0)
    }

    fn logs(&self, job: &str, worker: Option<u32>, follow: bool) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        rt.block_on(async {
            let targets = logs::log_targets(&kube, job, worker).await?;
            logs::print_logs(&kube, &targets, follow, &mut |line| {
                let _ = writeln!(std::io::stdout(), "{line}");
            })
            .await
        })
        .map_err(err)?;
        Ok(0)
    }

    fn kill(&self, job: &str) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let r = rt
            .block_on(kill::kill(&kube, job, &user(), KILL_WAIT))
            .map_err(err)?;
        if r.leftovers.is_empty() {
            crate::stdout::outln!("job {job} killed; all its objects are gone");
            Ok(0)
        } else {
            Err(LauncherError::Failed(format!(
                "job {job} was killed, but after {}s these are still there: {}; Kubernetes may still be removing them (check with 'kubectl -n {} get all -l t2.io/job={job}', or run 't2 gc' later)",
                KILL_WAIT.as_secs(),
                kill::describe(&r.leftovers),
                kube.namespace
            )))
        }
    }

    fn scale(&self, job: &str, workers: u32) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let pods = rt
            .block_on(scale::scale(&kube, job, workers))
            .map_err(err)?;
        crate::stdout::outln!("job {job}: {workers} workers in {pods} pods");
        Ok(0)
    }
}
