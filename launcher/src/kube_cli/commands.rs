//! `t2 list/status/logs/kill` for Kubernetes jobs, `t2 scale`, `t2 gc`, `t2 doctor
//! kubernetes`, and the hidden `t2 pod …` roles.

use std::io::Write;
use std::time::Duration;

use t2_launcher::kubernetes::incluster::{agent, init, jobmaster, receive};
use t2_launcher::kubernetes::{client, doctor, gc, jobs, kill, logs, scale, Kube};

use super::args::{KubeCommand, KubeFlags, PodRole};
use super::{err, user};
use crate::cli::Output;
use crate::error::LauncherError;
use crate::roles::sigterm;

/// How long `t2 kill` waits for a job's objects to go.
const KILL_WAIT: Duration = Duration::from_secs(60);

fn connect(flags: &KubeFlags) -> Result<(tokio::runtime::Runtime, Kube), LauncherError> {
    let rt = crate::runtime()?;
    let kube = rt
        .block_on(client::connect(&flags.options()))
        .map_err(err)?;
    Ok((rt, kube))
}

/// `t2 list` (Kubernetes).
pub fn list(flags: &KubeFlags) -> Result<i32, LauncherError> {
    let (rt, kube) = connect(flags)?;
    let rows = rt.block_on(jobs::list_jobs(&kube)).map_err(err)?;
    print!("{}", jobs::render_list(&rows, &kube.namespace));
    Ok(0)
}

/// `t2 status JOB` (Kubernetes).
pub fn status(job: &str, output: Output, flags: &KubeFlags) -> Result<i32, LauncherError> {
    let (rt, kube) = connect(flags)?;
    let s = rt.block_on(jobs::job_status(&kube, job)).map_err(err)?;
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&s).map_err(|e| LauncherError::Cluster(e.to_string()))?
        ),
        Output::Text => print!("{}", jobs::render_status(&s)),
    }
    Ok(0)
}

/// `t2 logs JOB` (Kubernetes).
pub fn logs(
    job: &str,
    worker: Option<u32>,
    follow: bool,
    flags: &KubeFlags,
) -> Result<i32, LauncherError> {
    let (rt, kube) = connect(flags)?;
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

/// `t2 kill JOB` (Kubernetes).
pub fn kill(job: &str, flags: &KubeFlags) -> Result<i32, LauncherError> {
    let (rt, kube) = connect(flags)?;
    let r = rt
        .block_on(kill::kill(&kube, job, &user(), KILL_WAIT))
        .map_err(err)?;
    if r.leftovers.is_empty() {
        println!("job {job} killed; all its objects are gone");
        Ok(0)
    } else {
        Err(LauncherError::Cluster(format!(
            "job {job} was killed, but after {}s these are still there: {}; Kubernetes may still be removing them (check with 'kubectl -n {} get all -l t2.io/job={job}', or run 't2 gc' later)",
            KILL_WAIT.as_secs(),
            kill::describe(&r.leftovers),
            kube.namespace
        )))
    }
}

/// The Kubernetes-only commands.
pub fn run(cmd: KubeCommand) -> Result<i32, LauncherError> {
    match cmd {
        KubeCommand::Scale { job, workers, kube } => {
            let (rt, k) = connect(&kube)?;
            let pods = rt.block_on(scale::scale(&k, &job, workers)).map_err(err)?;
            println!("job {job}: {workers} workers in {pods} pods");
            Ok(0)
        }
        KubeCommand::Gc { dry_run, kube } => {
            let (rt, k) = connect(&kube)?;
            let sweep = rt.block_on(gc::gc(&k, dry_run)).map_err(err)?;
            if sweep.jobs.is_empty() {
                println!("nothing to sweep in namespace '{}'", k.namespace);
            }
            for (job, why) in &sweep.jobs {
                println!("job {job}: {why}");
            }
            for f in &sweep.deleted {
                println!("  {} {f}", if dry_run { "would delete" } else { "deleted" });
            }
            Ok(0)
        }
        KubeCommand::Doctor { kube, .. } => {
            let (rt, k) = connect(&kube)?;
            let checks = rt.block_on(doctor::doctor(&k, &user())).map_err(err)?;
            println!("t2 doctor: namespace '{}' on {}", k.namespace, k.server);
            print!("{}", doctor::render(&checks));
            Ok(if checks.iter().all(|c| c.ok) { 0 } else { 1 })
        }
        KubeCommand::Pod { role } => pod(role),
    }
}

fn pod(role: PodRole) -> Result<i32, LauncherError> {
    let rt = crate::runtime()?;
    match role {
        PodRole::Init => match rt.block_on(init::run_init()) {
            Ok(line) => {
                println!("t2-init: {line}");
                Ok(0)
            }
            Err(e) => {
                eprintln!("t2-init: {e}");
                Ok(1)
            }
        },
        PodRole::Receive {
            bytes,
            sha256,
            dest,
        } => {
            let dest = dest.unwrap_or_else(t2_launcher::kubernetes::incluster::env::package_path);
            match rt.block_on(receive::receive(bytes, &sha256, tokio::io::stdin(), &dest)) {
                Ok(line) => {
                    println!("{line}");
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("t2-receive: {e}");
                    Ok(1)
                }
            }
        }
        PodRole::Agent => Ok(rt.block_on(agent::run_agent(sigterm))),
        PodRole::Jobmaster => match rt.block_on(jobmaster::run_jobmaster(sigterm())) {
            Ok(code) => Ok(code),
            Err(e) => {
                eprintln!("t2-jobmaster: {e}");
                Ok(1)
            }
        },
    }
}
