//! The worker agent: unpacks the package, registers with the job master, heartbeats, starts
//! the user program once all workers have joined, serves the local API, forwards SIGTERM and
//! reports how the program ended. In an MPI job (`mpi: true`, see [`mpi_role`]) worker 0's
//! agent runs `mpirun` instead, and the others run only the daemons mpirun asks for.

pub mod dial;
pub mod exec;
pub mod fetch;
pub mod finder;
pub mod ft;
pub mod http;
pub mod link;
pub mod mpi;
pub mod mpi_role;
pub mod mpi_ssh;
pub mod offer;
pub mod proctree;
pub mod program;
pub mod relay;
pub mod rsh;
pub mod socket;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use t2_core::package::{unpack_package, UnpackLimits};
use t2_core::spec::JobSpec;
use t2_proto::{NodeInfo, RegisterParams, WorkerInfo, WorkerState, PROTOCOL_VERSION};
use thiserror::Error;
use tracing::{info, warn};

use crate::env;
use crate::local_api::{Identity, WorkerEntry};
use finder::Finder;
pub use finder::JobMasterFinder;
use link::{Link, Pushed};

/// Why an agent could not do its job; each displays as one readable line.
#[derive(Debug, Error)]
pub enum AgentError {
    /// The package could not be downloaded from the uploader.
    #[error(transparent)]
    Fetch(#[from] fetch::FetchError),
    /// The package could not be unpacked.
    #[error("{0}")]
    Package(#[from] t2_core::package::PackageError),
    /// The job master refused this worker (final).
    #[error("{0}")]
    Refused(String),
    /// The job master could not be reached or was lost.
    #[error("{0}")]
    JobMaster(String),
    /// The user program could not be started.
    #[error("{0}")]
    Program(String),
    /// Local I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Everything an agent needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The job.
    pub job_id: String,
    /// This worker's ID.
    pub worker_id: u32,
    /// Restarts so far.
    pub restart_count: u32,
    /// Job master address, `http://host:port`.
    pub job_master: String,
    /// The job token.
    pub token: String,
    /// How the job master is dialled: TLS trusting the job's CA for a job with `tls: true`.
    pub dialer: dial::Dialer,
    /// The agent service's TLS in an MPI job with `tls: true` (`None`: plaintext).
    pub agent_tls: Option<AgentTls>,
    /// The package file.
    pub package: PathBuf,
    /// Its expected sha256.
    pub package_sha256: Option<String>,
    /// Download the package from this URL (an uploader) into `package` first.
    pub package_url: Option<String>,
    /// For an `https://` package URL: the CA certificates trusted.
    pub package_tls: Option<http::HttpTls>,
    /// How long that download may take, retries included.
    pub fetch_timeout: Duration,
    /// Where the package is unpacked; the program's working directory.
    pub work_dir: PathBuf,
    /// Where the agent's socket and worker-list file go.
    pub run_dir: PathBuf,
    /// The merged job spec.
    pub spec: JobSpec,
    /// This worker's address as others see it.
    pub host: String,
    /// Node, rack and datacenter.
    pub node: NodeInfo,
    /// How long to keep trying to reach the job master.
    pub connect_timeout: Duration,
    /// SIGTERM-to-SIGKILL grace for the user program.
    pub term_grace: Duration,
    /// Offer the package to the job master after registering and after every reconnect
    /// (it keeps a copy for pods made later; see [`offer`]).
    pub offer_package: bool,
}

/// The TLS of an MPI job's agent service: the agents' certificate it serves with, and how it
/// dials the other agents (trusting the job's CA, checking the agents' name).
#[derive(Clone)]
pub struct AgentTls {
    /// The server configuration (the agents' certificate and key).
    pub server: std::sync::Arc<t2_core::tls::rustls::ServerConfig>,
    /// How other agents are dialled.
    pub peers: dial::Dialer,
}

impl std::fmt::Debug for AgentTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgentTls(peers: {:?})", self.peers)
    }
}

impl AgentTls {
    /// From the job's CA and the agents' certificate and key (PEM); `origin` says where
    /// each came from in errors.
    pub fn from_pem(
        ca_pem: &str,
        ca_origin: &str,
        cert_pem: &str,
        key_pem: &str,
        cert_origin: &str,
    ) -> Result<Self, t2_core::tls::TlsError> {
        use t2_core::tls::{server_config, ALPN_H2};
        Ok(Self {
            server: server_config(cert_pem, key_pem, &[ALPN_H2], cert_origin)?,
            peers: dial::Dialer::agents(ca_pem, ca_origin)?,
        })
    }

    /// From the files of [`t2_core::tls`] in `dir` (the CA's PEM given: on Kubernetes it
    /// comes from the environment).
    pub fn read(
        ca_pem: &str,
        ca_origin: &str,
        dir: &std::path::Path,
    ) -> Result<Self, t2_core::tls::TlsError> {
        use t2_core::tls::{read_pem, AGENT_CERT_FILE, AGENT_KEY_FILE};
        let cert = read_pem(&dir.join(AGENT_CERT_FILE))?;
        let key = read_pem(&dir.join(AGENT_KEY_FILE))?;
        let shown = dir.join(AGENT_CERT_FILE).display().to_string();
        Self::from_pem(ca_pem, ca_origin, &cert, &key, &shown)
    }
}

/// How an agent ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentExit {
    /// The program exited 0 and the job master knows.
    Completed,
    /// The program failed.
    Failed {
        /// Its exit code (128+signal when killed by a signal).
        code: i32,
        /// A readable description.
        reason: String,
    },
    /// The job ended while the program ran (it was stopped).
    JobEnded {
        /// Why.
        reason: String,
    },
    /// The agent was told to stop (SIGTERM).
    Killed,
}

impl AgentExit {
    /// The agent's process exit code: 0 completed or job over, 1 failed, 143 killed.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Completed | Self::JobEnded { .. } => 0,
            Self::Failed { .. } => 1,
            Self::Killed => 143,
        }
    }
}

/// The socket path: inside `run_dir` when short enough for a Unix socket, else a short
/// per-worker name in the system temp directory.
fn socket_path(cfg: &AgentConfig) -> PathBuf {
    let p = cfg.run_dir.join("agent.sock");
    if p.as_os_str().len() < 100 {
        p
    } else {
        std::env::temp_dir().join(format!("t2-{}-{}.sock", cfg.job_id, cfg.worker_id))
    }
}

fn free_port(host: &str) -> Result<u16, AgentError> {
    let l = std::net::TcpListener::bind((host, 0)).map_err(|source| AgentError::Io {
        what: format!("cannot reserve a worker port on {host}"),
        source,
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|source| AgentError::Io {
            what: "cannot read the reserved port".into(),
            source,
        })
}

/// Runs the agent until the program ends, the job ends or `shutdown` fires. A lost job
/// master is found again through ZooKeeper for fault-tolerant jobs, and is fatal otherwise.
pub async fn run(
    cfg: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<AgentExit, AgentError> {
    run_with(cfg, JobMasterFinder::default(), shutdown).await
}

/// [`run`], choosing how a job that is not fault-tolerant finds a lost job master again.
pub async fn run_with(
    mut cfg: AgentConfig,
    finder: JobMasterFinder,
    shutdown: impl Future<Output = ()>,
) -> Result<AgentExit, AgentError> {
    let io = |what: String| move |source| AgentError::Io { what, source };
    // A fresh copy of the package on every (re)start, like a fresh container.
    if cfg.work_dir.exists() {
        std::fs::remove_dir_all(&cfg.work_dir)
            .map_err(io(format!("cannot clean {}", cfg.work_dir.display())))?;
    }
    if let Some(url) = &cfg.package_url {
        let sha256 = cfg.package_sha256.clone();
        let spec = fetch::FetchSpec {
            url: url.clone(),
            dest: cfg.package.clone(),
            sha256: sha256
                .unwrap_or_else(|| url.rsplit('/').next().unwrap_or_default().to_string()),
            deadline: cfg.fetch_timeout,
            max_bytes: cfg.spec.max_package_bytes,
            tls: cfg.package_tls.clone(),
        };
        fetch::fetch(&spec).await?;
    }
    let limits = UnpackLimits {
        max_package_bytes: cfg.spec.max_package_bytes,
        max_unpacked_bytes: cfg.spec.max_package_bytes.saturating_mul(4),
        ..UnpackLimits::default()
    };
    // Unpacking reads and writes the whole package: off the async threads, so that the
    // runtime stays free for the job master's stream meanwhile.
    let (package, work_dir, sha256) = (
        cfg.package.clone(),
        cfg.work_dir.clone(),
        cfg.package_sha256.clone(),
    );
    tokio::task::spawn_blocking(move || {
        unpack_package(&package, &work_dir, sha256.as_deref(), &limits)
    })
    .await
    .map_err(|e| AgentError::Io {
        what: "the package's unpacking task ended abnormally".into(),
        source: std::io::Error::other(e),
    })??;
    std::fs::create_dir_all(&cfg.run_dir)
        .map_err(io(format!("cannot create {}", cfg.run_dir.display())))?;

    let port = free_port(&cfg.host)?;
    let mut mpi = if cfg.spec.mpi.enabled {
        Some(mpi_role::MpiRole::start(&cfg).await?)
    } else {
        None
    };
    // Fault-tolerant jobs: ZooKeeper knows the restart count and where the job master is.
    let ft = if cfg.spec.fault_tolerant {
        let ft = ft::FaultTolerance::connect(&cfg).await?;
        cfg.restart_count = ft.restart_count(cfg.worker_id, cfg.restart_count).await?;
        ft.announce_alive(cfg.worker_id, cfg.restart_count).await?;
        Some(ft)
    } else {
        None
    };
    let info = WorkerInfo {
        worker_id: cfg.worker_id,
        host: cfg.host.clone(),
        port: port as u32,
        node: Some(cfg.node.clone()),
        restart_count: cfg.restart_count,
        state: WorkerState::Started as i32,
        agent_port: mpi.as_ref().map_or(0, |m| u32::from(m.port)),
    };
    let params = RegisterParams {
        job_id: cfg.job_id.clone(),
        token: cfg.token.clone(),
        protocol_version: PROTOCOL_VERSION,
        info: Some(info),
        reconnect: false,
    };
    let finder = match (&ft, finder) {
        (Some(ft), _) => Finder::ZooKeeper(ft),
        (None, JobMasterFinder::FixedAddress) => Finder::FixedAddress(&cfg.job_master),
        (None, JobMasterFinder::ZooKeeper) => Finder::None,
    };
    let link = match &ft {
        Some(ft) => ft.connect_link(params, cfg.connect_timeout).await?,
        None => {
            Link::connect_with(
                &cfg.dialer,
                &cfg.job_master,
                params,
                cfg.connect_timeout,
                finder.reconnects(),
            )
            .await?
        }
    };
    info!(job_id = %cfg.job_id, worker_id = cfg.worker_id, restart_count = cfg.restart_count, "registered with the job master");
    let offering = match (&cfg.package_sha256, cfg.offer_package) {
        (Some(sha256), true) => Some(offer::spawn(
            offer::Offer {
                job_master: cfg.job_master.clone(),
                dialer: cfg.dialer.clone(),
                token: cfg.token.clone(),
                package: cfg.package.clone(),
                sha256: sha256.clone(),
            },
            link.events.subscribe(),
        )),
        _ => None,
    };

    let sock = socket_path(&cfg);
    let served = socket::Served {
        link: link.clone(),
        identity: Identity {
            job_id: cfg.job_id.clone(),
            worker_id: cfg.worker_id,
            num_workers: link.num_workers(),
            restart_count: cfg.restart_count,
        },
        barrier_timeouts: (cfg.spec.barrier_timeout, cfg.spec.init_barrier_timeout),
        join_timeout: cfg.spec.join_timeout,
        token: cfg.token.clone(),
        peers: cfg
            .agent_tls
            .as_ref()
            .map_or_else(dial::Dialer::plain, |t| t.peers.clone()),
    };
    let server =
        socket::serve(&sock, served).map_err(io(format!("cannot serve {}", sock.display())))?;
    let result = supervise(&cfg, &link, &finder, port, &sock, mpi.as_mut(), shutdown).await;
    if let Some(mpi) = mpi {
        mpi.finish().await;
    }
    server.abort();
    if let Some(o) = offering {
        o.abort();
    }
    let _ = std::fs::remove_file(&sock);
    result
}

/// Waits for `child`, or forever when there is none (an MPI worker other than 0).
async fn wait_for(child: &mut Option<tokio::process::Child>) -> std::io::Result<ExitStatus> {
    match child {
        Some(c) => c.wait().await,
        None => std::future::pending().await,
    }
}

async fn terminate(child: &mut Option<tokio::process::Child>, grace: Duration) {
    if let Some(c) = child {
        program::terminate(c, grace).await;
    }
}

/// Reports COMPLETED until a job master acknowledges it. A fault-tolerant job's job master
/// that dies before it does is waited for and its successor told (it would otherwise wait for
/// this worker to reconnect, and fail the job when it never does); a live one is asked again.
/// Bounded by `timeout` (the job's `join_timeout`, as long as the successor waits).
async fn report_completion(
    link: &Link,
    finder: &Finder<'_>,
    closed: &mut tokio::sync::watch::Receiver<Option<String>>,
    timeout: Duration,
) {
    const ACK_WAIT: Duration = Duration::from_secs(5);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if link
            .report(WorkerState::Completed, 0, String::new(), ACK_WAIT)
            .await
        {
            return;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !finder.reconnects() || left.is_zero() {
            warn!("the job master did not acknowledge completion");
            return;
        }
        let why = match tokio::time::timeout(ACK_WAIT.min(left), link::closed_reason(closed)).await
        {
            Ok(why) => why,
            // The link is up: ask again.
            Err(_) => continue,
        };
        if why.starts_with("job ended: ") {
            return;
        }
        warn!(reason = %why, "the job master went away before acknowledging completion; telling its successor");
        if let Err(e) = finder.reconnect(link, left).await {
            warn!(error = %e, "no job master acknowledged completion");
            return;
        }
    }
}

async fn supervise(
    cfg: &AgentConfig,
    link: &Link,
    finder: &Finder<'_>,
    port: u16,
    sock: &std::path::Path,
    mut mpi: Option<&mut mpi_role::MpiRole>,
    shutdown: impl Future<Output = ()>,
) -> Result<AgentExit, AgentError> {
    tokio::pin!(shutdown);
    let mut events = link.events.subscribe();
    let mut closed = link.closed.clone();
    // Wait for everyone before starting the program.
    let mut workers_rx = link.workers.clone();
    let join_deadline = tokio::time::Instant::now() + cfg.spec.join_timeout;
    let workers = loop {
        tokio::select! {
            w = tokio::time::timeout_at(join_deadline, workers_rx.wait_for(|w| w.is_some())) => break match w {
                Ok(Ok(w)) => w.clone().unwrap_or_default(),
                Ok(Err(_)) => return Err(AgentError::JobMaster("the job master link closed before all workers joined".into())),
                Err(_) => return Err(AgentError::JobMaster(format!("not all workers joined within {:?}", cfg.spec.join_timeout))),
            },
            why = link::closed_reason(&mut closed) => {
                if finder.reconnects() && !why.starts_with("job ended: ") {
                    warn!(reason = %why, "lost the job master before starting; waiting for it to come back");
                    if finder.reconnect(link, cfg.spec.join_timeout).await.is_ok() {
                        continue;
                    }
                }
                return match why.strip_prefix("job ended: ") {
                    Some(r) => Ok(AgentExit::JobEnded { reason: r.to_string() }),
                    None => Err(AgentError::JobMaster(format!("lost the job master before starting: {why}"))),
                };
            }
            _ = &mut shutdown => return Ok(AgentExit::Killed),
        }
    };
    let workers_file = cfg.run_dir.join("workers.json");
    let entries: Vec<WorkerEntry> = workers.iter().map(socket::entry).collect();
    let text = serde_json::to_string_pretty(&entries).unwrap_or_else(|_| "[]".into());
    std::fs::write(&workers_file, text).map_err(|source| AgentError::Io {
        what: format!("cannot write {}", workers_file.display()),
        source,
    })?;

    let mut env: BTreeMap<String, String> = cfg.spec.env.clone();
    let ours = [
        (env::JOB_ID, cfg.job_id.clone()),
        (env::WORKER_ID, cfg.worker_id.to_string()),
        // The job may have been scaled since it was submitted.
        (env::NUM_WORKERS, link.num_workers().to_string()),
        (env::RESTART_COUNT, cfg.restart_count.to_string()),
        (env::WORKER_PORT, port.to_string()),
        (env::WORKER_HOST, cfg.host.clone()),
        (env::JOB_MASTER, cfg.job_master.clone()),
        (env::WORKERS_FILE, workers_file.display().to_string()),
        (env::AGENT_SOCKET, sock.display().to_string()),
        (
            env::CONFIG,
            serde_json::to_string(&cfg.spec.config).unwrap_or_else(|_| "{}".into()),
        ),
        (env::WORK_DIR, cfg.work_dir.display().to_string()),
    ];
    for (k, v) in ours {
        env.insert(k.to_string(), v);
    }
    let mut child = match mpi.as_deref_mut() {
        // MPI: worker 0 runs mpirun; the others run only what it asks (their agent service).
        Some(m) => {
            m.ready(cfg, &env).await?;
            if cfg.worker_id == 0 {
                Some(m.start_mpirun(cfg, &workers, &env).await?)
            } else {
                None
            }
        }
        None => {
            let mut command = cfg.spec.command.clone();
            command.extend(cfg.spec.args.iter().cloned());
            Some(program::start(&command, &cfg.work_dir, &env)?)
        }
    };
    loop {
        tokio::select! {
            status = wait_for(&mut child) => {
                let status = status.map_err(|source| AgentError::Io { what: "cannot wait for the program".into(), source })?;
                let (code, mut how) = program::describe(&status);
                if let Some(m) = mpi.as_deref_mut() {
                    m.program_ended(child.as_ref().and_then(|c| c.id()));
                    how = format!("(mpirun) {how}");
                    if !status.success() {
                        if let Some(message) = m.mpirun_message().await {
                            how = format!("{how}: {message}");
                        }
                    }
                }
                return Ok(if status.success() {
                    report_completion(link, finder, &mut closed, cfg.spec.join_timeout).await;
                    AgentExit::Completed
                } else {
                    let reason = format!("worker {} {how}", cfg.worker_id);
                    link.report(WorkerState::Failed, code, reason.clone(), Duration::from_secs(2)).await;
                    AgentExit::Failed { code, reason }
                });
            }
            ev = events.recv() => {
                if let Ok(Pushed::JobEnded(e)) = ev {
                    terminate(&mut child, cfg.term_grace).await;
                    return Ok(AgentExit::JobEnded { reason: e.reason });
                }
            }
            why = link::closed_reason(&mut closed) => {
                if finder.reconnects() && !why.starts_with("job ended: ") {
                    // The program keeps running while we find the new job master.
                    warn!(reason = %why, "lost the job master; waiting for its successor");
                    match finder.reconnect(link, cfg.spec.join_timeout).await {
                        Ok(()) => continue,
                        Err(e) => warn!(error = %e, "the job master did not come back"),
                    }
                }
                terminate(&mut child, cfg.term_grace).await;
                if let Some(r) = why.strip_prefix("job ended: ") {
                    return Ok(AgentExit::JobEnded { reason: r.to_string() });
                }
                return Err(AgentError::JobMaster(format!("lost the job master at {}: {why}", cfg.job_master)));
            }
            _ = &mut shutdown => {
                terminate(&mut child, cfg.term_grace).await;
                link.report(WorkerState::Killed, 143, format!("worker {} was stopped", cfg.worker_id), Duration::from_secs(1)).await;
                return Ok(AgentExit::Killed);
            }
        }
    }
}
