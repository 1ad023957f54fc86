//! `t2`: the one binary that plays every role — CLI, job master, worker agent, supervisor.
//!
//! # Layout
//! - `cli`: the command line. - `prepare`: spec, name, build, package, job folder.
//! - `cluster`: the `Cluster` trait (submit, list, status, logs, kill, scale), its local and
//!   kubernetes implementations, and which cluster a command means.
//! - `local`: the local cluster (supervisor, processes, output). - `commands`: the local
//!   cluster's list, status, logs, kill, scale. - `roles`: `t2 jobmaster`, `t2 worker …`.
//! - `error`: one-line errors. - `jobfiles`: reading a local job's spec and token.
//! - `clock`: RFC 3339 times and kubectl-style ages.
//! - `stdout`: printing results so that a closed pipe ends a command quietly.
//! - `uploader`: `t2 uploader` (the package server) and the launcher's client of it.
//! - `dash`: `t2 dash` (the dashboard, crate `t2-dashboard`).
//! - `kube_cli`: the command line of the kubernetes cluster (its work is in the library,
//!   `t2_kubernetes`): submit, gc, doctor, the in-pod roles.

mod cli;
mod clock;
mod cluster;
mod commands;
mod dash;
mod error;
mod jobfiles;
mod kube_cli;
mod local;
mod prepare;
mod roles;
mod stdout;
mod uploader;

use clap::Parser;
use cli::{Cli, Command, WorkerCommand};
use error::LauncherError;
use t2_core::jobdir::{JobDir, RecordedState};
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = Cli::parse();
    let default_level = match &cli.command {
        Command::Jobmaster(_) | Command::Uploader(_) | Command::Dash(_) => "info",
        Command::Kubernetes(kube_cli::KubeCommand::Pod { .. }) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            // kube-client logs failed requests itself; t2 reports them as one line.
            EnvFilter::new(format!("{default_level},kube_client::client::builder=off"))
        }))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// `t2 version`: this binary's version; the API server's when asked for Kubernetes.
fn version(target: &kube_cli::ClusterTarget) -> i32 {
    stdout::outln!("t2 {} (client)", env!("CARGO_PKG_VERSION"));
    let asked = target.cluster == kube_cli::args::TargetCluster::Kubernetes || target.kube.any();
    if !asked {
        return 0;
    }
    let answer = cluster::kubernetes::connect(&target.kube).and_then(|(rt, kube)| {
        let server = kube.server.clone();
        rt.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                kube.client.apiserver_version(),
            )
            .await
        })
        .map_err(|_| LauncherError::Failed(format!("{server} did not answer within 10s")))?
        .map(|v| format!("{} at {server}", v.git_version))
        .map_err(|e| LauncherError::Failed(format!("{server}: {e}")))
    });
    match answer {
        Ok(v) => {
            stdout::outln!("kubernetes {v}");
            0
        }
        Err(e) => {
            stdout::outln!("kubernetes: not reachable: {e}");
            1
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, LauncherError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(LauncherError::io("cannot start the async runtime"))
}

fn run(cli: Cli) -> Result<i32, LauncherError> {
    match cli.command {
        Command::Submit { target } => {
            let args = target.into_args();
            cluster::for_submit(&args)?.submit(args)
        }
        Command::List {
            output,
            watch,
            target,
        } => cluster::for_list(&target)?.list(output, watch),
        Command::Status {
            job,
            output,
            target,
        } => cluster::for_job(&job, &target)?.status(&job, output),
        Command::Logs {
            job,
            worker,
            jobmaster,
            follow,
            tail,
            since,
            timestamps,
            target,
        } => {
            let since = since
                .map(|s| {
                    let year = std::time::Duration::from_secs(365 * 24 * 3600);
                    t2_core::duration::parse_within(
                        "--since",
                        &s,
                        std::time::Duration::from_secs(1),
                        year,
                    )
                    .map_err(LauncherError::Usage)
                })
                .transpose()?;
            let options = commands::logs::LogOptions {
                worker,
                jobmaster,
                follow,
                tail,
                since,
                timestamps,
            };
            cluster::for_job(&job, &target)?.logs(&job, &options)
        }
        Command::Describe { job, target } => cluster::for_job(&job, &target)?.describe(&job),
        Command::Config {
            command: cli::ConfigCommand::View(args),
        } => commands::config::view(&args).map(|_| 0),
        Command::Kill { job, target } => cluster::for_job(&job, &target)?.kill(&job),
        Command::Scale {
            job,
            workers,
            target,
        } => cluster::for_job(&job, &target)?.scale(&job, workers),
        Command::Version { target } => Ok(version(&target)),
        Command::Delete { job } => {
            t2_core::names::validate_job_id(&job)?;
            commands::delete::delete(&t2_core::jobdir::t2_home()?, &job).map(|_| 0)
        }
        Command::Completion { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            // Into a buffer first: clap_complete panics when its writer fails (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "t2", &mut script);
            stdout::out!("{}", String::from_utf8_lossy(&script));
            Ok(0)
        }
        Command::Kubernetes(c) => kube_cli::commands::run(c),
        Command::Supervise { job_dir } => {
            let id = job_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let home = job_dir
                .parent()
                .and_then(|p| p.parent())
                .map(|p| p.to_path_buf())
                .unwrap_or_default();
            let dir = JobDir::existing(&home, &id)?;
            let record = runtime()?.block_on(local::supervisor::supervise(dir, false))?;
            Ok(if record.state == RecordedState::Completed {
                0
            } else {
                1
            })
        }
        Command::Uploader(args) => runtime()?.block_on(uploader::command::serve(args)),
        Command::Dash(args) => runtime()?.block_on(dash::serve(args)),
        Command::Package { source, out } => commands::package::run(&source, &out),
        Command::Jobmaster(args) => runtime()?.block_on(roles::jobmaster(args)),
        Command::Worker {
            command: WorkerCommand::Agent(args),
        } => Ok(runtime()?.block_on(roles::agent(args))),
        Command::Worker {
            command: WorkerCommand::Rsh { host, command },
        } => Ok(runtime()?.block_on(roles::rsh(host, command))),
        Command::Worker { command } => roles::worker_api(command),
    }
}
