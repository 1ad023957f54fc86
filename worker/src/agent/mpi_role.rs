//! What an agent of an MPI job does beyond a plain one: it is a child subreaper, serves the
//! agent service (so mpirun's daemons can be started on its worker), and then either runs
//! `mpirun` (worker 0) or only what mpirun asks of it (every other worker). Whatever way it
//! ends, nothing it started is left running.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use t2_proto::WorkerInfo;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::watch;
use tracing::{info, warn};

use super::exec::{ExecEnv, ExecService, Known};
use super::mpi::{self, LastLines};
use super::mpi_ssh::{self, SshFiles};
use super::{program, AgentConfig, AgentError};

/// How long worker 0 waits for the other workers' sshd (Twister2's mode) before mpirun.
const SSHD_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The MPI side of one agent.
pub struct MpiRole {
    known: Arc<Known>,
    ready: watch::Sender<Option<Arc<ExecEnv>>>,
    service: tokio::task::JoinHandle<()>,
    /// The port of the agent service.
    pub port: u16,
    scratch: PathBuf,
    scratch_outside: bool,
    last_lines: Arc<Mutex<LastLines>>,
    stderr_pump: Option<tokio::task::JoinHandle<()>>,
    /// Twister2's mode: the files of this worker's sshd (started once all workers joined).
    ssh: Option<SshFiles>,
    /// That sshd, once started.
    sshd: Option<Child>,
}

impl MpiRole {
    /// Becomes a subreaper and starts serving the agent service on the worker's host.
    pub async fn start(cfg: &AgentConfig) -> Result<Self, AgentError> {
        if !super::proctree::become_subreaper() {
            warn!("cannot become a child subreaper; orphaned MPI processes may escape cleanup");
        }
        let listener = tokio::net::TcpListener::bind((cfg.host.as_str(), 0))
            .await
            .map_err(|source| AgentError::Io {
                what: format!("cannot serve the agent service on {}", cfg.host),
                source,
            })?;
        let port = listener
            .local_addr()
            .map(|a| a.port())
            .map_err(|source| AgentError::Io {
                what: "cannot read the agent service's port".into(),
                source,
            })?;
        let known = Arc::new(Known::default());
        let (ready, ready_rx) = watch::channel(None);
        let service = ExecService::new(
            &cfg.job_id,
            &cfg.token,
            cfg.worker_id,
            ready_rx,
            known.clone(),
        )
        .serve(listener, cfg.agent_tls.as_ref().map(|t| t.server.clone()));
        let (scratch, scratch_outside) = mpi::scratch_dir(&cfg.run_dir, &cfg.job_id, cfg.worker_id);
        std::fs::create_dir_all(&scratch).map_err(|source| AgentError::Io {
            what: format!("cannot create {}", scratch.display()),
            source,
        })?;
        info!(job_id = %cfg.job_id, worker_id = cfg.worker_id, port, tls = cfg.agent_tls.is_some(), "serving the agent service for mpirun");
        let ssh = match std::env::var_os(mpi::SSH_DIR_ENV) {
            Some(dir) => Some(mpi_ssh::prepare(std::path::Path::new(&dir), &scratch)?),
            None => None,
        };
        Ok(Self {
            ssh,
            sshd: None,
            known,
            ready,
            service,
            port,
            scratch,
            scratch_outside,
            last_lines: Arc::default(),
            stderr_pump: None,
        })
    }

    /// All workers joined: commands for other workers may run now, with the worker's `env`
    /// (in Twister2's mode: this worker's sshd starts, giving that environment to its sessions).
    pub async fn ready(
        &mut self,
        cfg: &AgentConfig,
        env: &BTreeMap<String, String>,
    ) -> Result<(), AgentError> {
        let mut env = env.clone();
        env.entry("PATH".into())
            .or_insert_with(program::path_with_t2);
        env.extend(mpi::daemon_env(&self.scratch));
        if let Some(files) = &self.ssh {
            self.sshd = Some(mpi_ssh::start_sshd(files, &cfg.host, &env, &self.known).await?);
        }
        let _ = self.ready.send(Some(Arc::new(ExecEnv {
            dir: cfg.work_dir.clone(),
            env,
        })));
        Ok(())
    }

    /// Worker 0: writes the hostfile and starts mpirun over every worker (in Twister2's mode
    /// once every worker's sshd listens), its stderr kept (and passed on) for the failure
    /// reason.
    pub async fn start_mpirun(
        &mut self,
        cfg: &AgentConfig,
        workers: &[WorkerInfo],
        env: &BTreeMap<String, String>,
    ) -> Result<Child, AgentError> {
        if let Some(host) = mpi::shared_host(workers) {
            return Err(AgentError::Program(format!(
                "workers share the host {host}, but every worker of an MPI job must be a host of its own (on Kubernetes: workers_per_pod: 1)"
            )));
        }
        let hostfile = cfg.run_dir.join("hostfile");
        std::fs::write(
            &hostfile,
            mpi::hostfile(workers, cfg.spec.mpi.slots_per_worker),
        )
        .map_err(|source| AgentError::Io {
            what: format!("cannot write {}", hostfile.display()),
            source,
        })?;
        if self.ssh.is_some() {
            let hosts: Vec<String> = workers.iter().map(|w| w.host.clone()).collect();
            mpi_ssh::wait_for_sshds(&hosts, SSHD_WAIT).await?;
        }
        let t2 = std::env::current_exe().unwrap_or_else(|_| "t2".into());
        let rsh = mpi::rsh_agent(&t2, self.ssh.as_ref().map(|f| f.key.as_path()));
        let mut program_words = cfg.spec.command.clone();
        program_words.extend(cfg.spec.args.iter().cloned());
        let command = mpi::mpirun_command(
            &cfg.spec.mpi,
            &hostfile,
            workers.len() as u32,
            mpi::all_loopback(workers),
            &rsh,
            &program_words,
        );
        let mut env = env.clone();
        env.extend(mpi::base_env(&self.scratch));
        eprintln!("t2: {}", command.join(" "));
        let (mut cmd, resolved) = program::prepare(&command, &cfg.work_dir, &env)?;
        cmd.stderr(std::process::Stdio::piped());
        let mut child = self.known.spawn(&mut cmd).map_err(|e| {
            AgentError::Program(format!(
                "cannot start '{}' (is OpenMPI installed?): {e}",
                resolved.display()
            ))
        })?;
        if let Some(stderr) = child.stderr.take() {
            let last = self.last_lines.clone();
            self.stderr_pump = Some(tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("{line}");
                    if let Ok(mut l) = last.lock() {
                        l.push(&line);
                    }
                }
            }));
        }
        Ok(child)
    }

    /// mpirun's own message about why it failed (once its stderr has been read to the end).
    pub async fn mpirun_message(&mut self) -> Option<String> {
        if let Some(pump) = self.stderr_pump.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), pump).await;
        }
        self.last_lines.lock().ok().and_then(|l| l.message())
    }

    /// Forgets the program (it exited and was waited for).
    pub fn program_ended(&self, pid: Option<u32>) {
        if let Some(pid) = pid {
            self.known.remove(pid);
        }
    }

    /// Ends everything this agent started that is still running, and stops serving.
    pub async fn finish(mut self) {
        let _ = self.ready.send(None);
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.start_kill();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), sshd.wait()).await;
        }
        self.service.abort();
        let killed = self.known.sweep_all().await;
        if killed > 0 {
            warn!(
                killed,
                "ended MPI processes still running when the worker ended"
            );
        }
        if self.scratch_outside {
            let _ = std::fs::remove_dir_all(&self.scratch);
        }
    }
}
