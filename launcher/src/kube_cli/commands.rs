//! The Kubernetes commands: `t2 gc` (local jobs too), `t2 doctor kubernetes`, and the hidden
//! `t2 pod …` roles. (`t2 list/status/logs/kill/scale` of Kubernetes jobs are `cluster::kubernetes`.)

use t2_kubernetes::incluster::{agent, init, jobmaster, receive};
use t2_kubernetes::{doctor, gc};

use super::args::{KubeCommand, PodRole, TargetCluster};
use super::{err, user};
use crate::cluster::kubernetes::connect;
use crate::error::LauncherError;
use crate::roles::sigterm;

/// The Kubernetes-only commands.
pub fn run(cmd: KubeCommand) -> Result<i32, LauncherError> {
    match cmd {
        KubeCommand::Gc {
            dry_run,
            older_than,
            cluster,
            kube,
        } if cluster == TargetCluster::Local || (cluster == TargetCluster::Auto && !kube.any()) => {
            let age = older_than
                .map(|a| {
                    t2_core::duration::parse_duration(&a)
                        .map_err(|e| LauncherError::Usage(format!("--older-than: {e}")))
                })
                .transpose()?;
            crate::commands::delete::gc(&t2_core::jobdir::t2_home()?, age, dry_run)?;
            Ok(0)
        }
        KubeCommand::Gc {
            older_than: Some(_),
            ..
        } => Err(LauncherError::Usage(
            "--older-than is for local jobs; on Kubernetes 't2 gc' sweeps every ended job".into(),
        )),
        KubeCommand::Gc { dry_run, kube, .. } => {
            let (rt, k) = connect(&kube)?;
            let sweep = rt.block_on(gc::gc(&k, dry_run)).map_err(err)?;
            if sweep.jobs.is_empty() {
                crate::stdout::outln!("nothing to sweep in namespace '{}'", k.namespace);
            }
            for (job, why) in &sweep.jobs {
                crate::stdout::outln!("job {job}: {why}");
            }
            for f in &sweep.deleted {
                crate::stdout::outln!("  {} {f}", if dry_run { "would delete" } else { "deleted" });
            }
            Ok(0)
        }
        KubeCommand::Doctor { kube, .. } => {
            let (rt, k) = connect(&kube)?;
            let checks = rt.block_on(doctor::doctor(&k, &user())).map_err(err)?;
            crate::stdout::outln!("t2 doctor: namespace '{}' on {}", k.namespace, k.server);
            crate::stdout::out!("{}", doctor::render(&checks));
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
                crate::stdout::outln!("t2-init: {line}");
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
            let dest = dest.unwrap_or_else(t2_kubernetes::incluster::env::package_path);
            match rt.block_on(receive::receive(bytes, &sha256, tokio::io::stdin(), &dest)) {
                Ok(line) => {
                    crate::stdout::outln!("{line}");
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
