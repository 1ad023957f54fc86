//! The hidden roles the `t2` binary plays for the local cluster (and inside containers):
//! `t2 jobmaster`, `t2 worker agent`, and the local-API commands job scripts call.

use std::path::Path;
use std::time::Duration;

use t2_core::jobdir::JobDir;
use t2_jobmaster::JobMasterConfig;
use t2_proto::NodeInfo;
use t2_worker::agent::{AgentConfig, AgentError, AgentExit};
use t2_worker::WorkerContext;
use tracing::{info_span, Instrument};

use crate::cli::{AgentArgs, JobmasterArgs, WorkerCommand};
use crate::error::LauncherError;
use crate::jobfiles::{read_spec, read_token};
use crate::local::supervisor::AGENT_FATAL;

fn job_dir(path: &Path) -> Result<(JobDir, String), LauncherError> {
    let id = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| LauncherError::Usage(format!("{} is not a job directory", path.display())))?
        .to_string();
    let home = path
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    Ok((JobDir::new(home, &id), id))
}

/// Completes on SIGTERM (never, if the handler cannot be installed).
pub async fn sigterm() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending::<()>().await,
    }
}

/// Connections a listener keeps waiting to be accepted: thousands of workers connect at once
/// (the kernel caps it at `net.core.somaxconn`, 4096 by default).
const LISTEN_BACKLOG: u32 = 8192;

/// Binds a TCP listener on `listen` (e.g. `127.0.0.1:0`) and returns it with its address.
pub async fn listen(
    listen: &str,
) -> Result<(tokio::net::TcpListener, std::net::SocketAddr), LauncherError> {
    if let Some(port) = listen.strip_prefix(':') {
        return Err(LauncherError::Usage(format!(
            "--listen {listen}: give the address too, e.g. 127.0.0.1:{port} (this machine only) or 0.0.0.0:{port} (every interface)"
        )));
    }
    let (host, port) = listen.rsplit_once(':').unwrap_or((listen, ""));
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(LauncherError::Usage(format!(
            "--listen {listen}: must be HOST:PORT, e.g. 127.0.0.1:8080"
        )));
    }
    let wanted = tokio::net::lookup_host(listen)
        .await
        .map_err(|e| {
            LauncherError::Usage(format!(
                "--listen {listen}: cannot resolve '{host}' ({e}); use an IP address such as 127.0.0.1"
            ))
        })?
        .next()
        .ok_or_else(|| {
            LauncherError::Usage(format!("cannot listen on {listen}: no such address"))
        })?;
    let socket = if wanted.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(LauncherError::io(format!("cannot listen on {listen}")))?;
    socket
        .set_reuseaddr(true)
        .map_err(LauncherError::io(format!("cannot listen on {listen}")))?;
    socket
        .bind(wanted)
        .map_err(LauncherError::io(format!("cannot listen on {listen}")))?;
    let listener = socket
        .listen(LISTEN_BACKLOG)
        .map_err(LauncherError::io(format!("cannot listen on {listen}")))?;
    let addr = listener
        .local_addr()
        .map_err(LauncherError::io("cannot read the listening address"))?;
    Ok((listener, addr))
}

/// The HTTPS configuration of `--tls-cert FILE --tls-key FILE` (`t2 uploader`, `t2 dash`):
/// both or neither. Returns it with the URL scheme to print.
pub fn https_flags(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<
    (
        Option<std::sync::Arc<t2_core::tls::rustls::ServerConfig>>,
        &'static str,
    ),
    LauncherError,
> {
    use t2_core::tls::{read_pem, server_config, ALPN_HTTP1};
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok((None, "http")),
        (Some(c), Some(k)) => (c, k),
        (Some(_), None) => {
            return Err(LauncherError::Usage(
                "--tls-cert needs --tls-key (the certificate's private key, PEM)".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(LauncherError::Usage(
                "--tls-key needs --tls-cert (the certificate, PEM)".into(),
            ))
        }
    };
    let usage = |e: t2_core::tls::TlsError| LauncherError::Usage(e.to_string());
    let config = server_config(
        &read_pem(cert).map_err(usage)?,
        &read_pem(key).map_err(usage)?,
        &[ALPN_HTTP1],
        &format!(
            "--tls-cert {} / --tls-key {}",
            cert.display(),
            key.display()
        ),
    )
    .map_err(usage)?;
    Ok((Some(config), "https"))
}

/// How long a job master or agent tries to reach ZooKeeper at start.
const ZK_CONNECT_DEADLINE: Duration = Duration::from_secs(15);

/// The stdout line in which `t2 jobmaster` reports how the job ended: `T2_JOB_OUTCOME=STATE reason`.
pub const OUTCOME_PREFIX: &str = "T2_JOB_OUTCOME=";

/// `t2 jobmaster`: serves the job; prints `T2_JOBMASTER_ADDR=…` as its first stdout line and
/// `T2_JOB_OUTCOME=STATE reason` as its last.
pub async fn jobmaster(args: JobmasterArgs) -> Result<i32, LauncherError> {
    let (dir, id) = job_dir(&args.job_dir)?;
    let spec = read_spec(&dir)?;
    let token = read_token(&dir)?;
    let tls = crate::jobfiles::server_tls(&dir, &spec)?;
    let scheme = crate::jobfiles::scheme(&spec);
    let (listener, addr) = crate::roles::listen(&args.listen).await?;
    crate::stdout::outln!("T2_JOBMASTER_ADDR={scheme}://{addr}");
    // A local cluster: every agent and program runs on this machine, beside the job master.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let mut cfg = JobMasterConfig::from_spec(&id, &token, &spec).sharing_machine(cores);
    cfg.tls = tls;
    // Test hook (see JobMasterConfig::final_status_delay).
    if let Some(ms) = std::env::var("T2_TEST_DELAY_FINAL_STATUS_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        cfg.final_status_delay = Duration::from_millis(ms);
    }
    let shutdown = sigterm();
    let span = info_span!("jobmaster", job_id = %id);
    let outcome = async {
        Ok::<_, LauncherError>(if spec.fault_tolerant {
            let zk = &spec.zookeeper;
            let session =
                t2_core::zk::Zk::connect(&zk.addresses, zk.session_timeout, ZK_CONNECT_DEADLINE)
                    .await?;
            let store = t2_jobmaster::zkstore::ZkStore::new(
                session,
                &zk.root,
                &id,
                &format!("{scheme}://{addr}"),
            );
            t2_jobmaster::server::run_with_store(
                listener,
                cfg,
                std::sync::Arc::new(store),
                shutdown,
            )
            .await?
        } else {
            t2_jobmaster::run(listener, cfg, shutdown).await?
        })
    }
    .instrument(span)
    .await?;
    tracing::info!(job_id = %id, state = t2_jobmaster::master::state_name(outcome.state), reason = %outcome.reason, "job master done");
    // The supervisor reads this before it sees the process exit, so how the job ended never
    // depends on the last status over the watch stream arriving first.
    // Nobody may be reading any more (a closed pipe): that is no reason to fail.
    use std::io::Write;
    let _ = writeln!(
        std::io::stdout(),
        "{OUTCOME_PREFIX}{} {}",
        t2_jobmaster::master::state_name(outcome.state),
        outcome.reason.replace(['\n', '\r'], " ")
    );
    Ok(0)
}

/// `t2 worker agent`.
pub async fn agent(args: AgentArgs) -> i32 {
    match agent_inner(args).await {
        Ok(exit) => {
            if let AgentExit::Failed { reason, .. } = &exit {
                eprintln!("t2-agent: {reason}");
            }
            exit.exit_code()
        }
        Err(e) => {
            eprintln!("t2-agent: {e}");
            AGENT_FATAL
        }
    }
}

async fn agent_inner(args: AgentArgs) -> Result<AgentExit, LauncherError> {
    let (dir, id) = job_dir(&args.job_dir)?;
    let spec = read_spec(&dir)?;
    let token = match args.token {
        Some(t) => t,
        None => read_token(&dir)?,
    };
    let record = dir.read_record()?;
    // An MPI job's workers are hosts of their own for mpirun (their --host); otherwise the
    // worker's (simulated) node from the topology.
    let node = if spec.mpi.enabled {
        NodeInfo {
            node_ip: args.host.clone(),
            rack: "rack-0".into(),
            datacenter: "local".into(),
        }
    } else {
        local_node(&spec, args.worker_id)
    };
    let cfg = AgentConfig {
        job_id: id.clone(),
        worker_id: args.worker_id,
        restart_count: args.restart_count,
        job_master: args.job_master,
        token,
        dialer: crate::jobfiles::dialer(&dir, &spec)?,
        agent_tls: crate::jobfiles::agent_tls(&dir, &spec)?,
        // A downloaded package goes to the worker's own folder (agents share the job folder).
        package: match &args.package_url {
            Some(_) => dir
                .root()
                .join("run")
                .join(format!("worker-{}", args.worker_id))
                .join("package.tar.gz"),
            None => dir.package_path(),
        },
        package_sha256: Some(record.package_sha256),
        package_url: args.package_url.clone(),
        package_tls: crate::uploader::job::package_tls(&dir)?,
        fetch_timeout: t2_core::duration::parse_within(
            "--fetch-timeout",
            &args.fetch_timeout,
            Duration::from_millis(1),
            t2_core::duration::MAX_WAIT,
        )
        .map_err(LauncherError::Usage)?,
        work_dir: dir.worker_dir(args.worker_id),
        run_dir: dir
            .root()
            .join("run")
            .join(format!("worker-{}", args.worker_id)),
        host: node.node_ip.clone(),
        node,
        spec,
        connect_timeout: Duration::from_secs(30),
        term_grace: Duration::from_secs(2),
        // The local job master keeps no copies: agents read the job folder or the uploader.
        offer_package: false,
    };
    let shutdown = sigterm();
    let span = info_span!("agent", job_id = %id, worker_id = args.worker_id);
    t2_worker::agent::run(cfg, shutdown)
        .instrument(span)
        .await
        .map_err(|e: AgentError| e.into())
}

/// `t2 worker rsh HOST CMD…` (run by mpirun in MPI jobs): the command's exit code, or 255.
pub async fn rsh(host: String, command: Vec<String>) -> i32 {
    match std::env::var_os(t2_worker::env::AGENT_SOCKET) {
        Some(socket) => t2_worker::agent::rsh::run(Path::new(&socket), &host, &command).await,
        None => {
            eprintln!(
                "t2 worker rsh: {} is not set; this command runs inside a t2 MPI job (mpirun calls it)",
                t2_worker::env::AGENT_SOCKET
            );
            t2_worker::agent::rsh::RSH_FAILED
        }
    }
}

/// Worker `id`'s node on this machine: its simulated node when the job's topology lists
/// loopback addresses (the job master fills in rack and datacenter from the lists), else
/// 127.0.0.1 in `rack-0` of datacenter `local`.
fn local_node(spec: &t2_core::spec::JobSpec, id: u32) -> NodeInfo {
    match spec
        .topology
        .local_node(id, spec.workers, spec.workers_per_pod)
    {
        Some(place) => NodeInfo {
            node_ip: place.node,
            rack: String::new(),
            datacenter: String::new(),
        },
        // Lists without loopback addresses: this machine is a node they do not name.
        None if spec.topology.from_config() => NodeInfo {
            node_ip: "127.0.0.1".into(),
            rack: String::new(),
            datacenter: String::new(),
        },
        None => NodeInfo {
            node_ip: "127.0.0.1".into(),
            rack: "rack-0".into(),
            datacenter: "local".into(),
        },
    }
}

/// `t2 worker barrier|list|info|send|events`.
pub fn worker_api(cmd: WorkerCommand) -> Result<i32, LauncherError> {
    let ctx = WorkerContext::from_env()?;
    match cmd {
        WorkerCommand::Agent(_) | WorkerCommand::Rsh { .. } => Err(LauncherError::Usage(
            "internal: agent or rsh dispatched as API".into(),
        )),
        WorkerCommand::Barrier { timeout, init } => {
            let timeout = match timeout {
                Some(t) => t2_core::duration::parse_within(
                    "--timeout",
                    &t,
                    Duration::from_millis(1),
                    t2_core::duration::MAX_WAIT,
                )
                .map_err(LauncherError::Usage)?,
                None => Duration::ZERO,
            };
            let result = if init {
                ctx.init_barrier()
            } else {
                ctx.barrier_timeout(timeout)
            };
            match result {
                Ok(()) => {
                    crate::stdout::outln!("SUCCESS");
                    Ok(0)
                }
                Err(t2_worker::WorkerError::BarrierTimedOut(msg)) => {
                    crate::stdout::outln!("TIMED_OUT");
                    eprintln!("t2: {msg}");
                    Ok(3)
                }
                Err(t2_worker::WorkerError::JobFaulty(msg)) => {
                    crate::stdout::outln!("JOB_FAULTY");
                    eprintln!("t2: {msg}");
                    Ok(4)
                }
                Err(e) => Err(e.into()),
            }
        }
        WorkerCommand::List { now } => {
            let workers = if now {
                ctx.joined_workers()?
            } else {
                ctx.all_workers()?
            };
            let text = serde_json::to_string(&workers)
                .map_err(LauncherError::json("cannot encode the worker list"))?;
            crate::stdout::outln!("{text}");
            Ok(0)
        }
        WorkerCommand::Info => {
            crate::stdout::outln!(
                "{}",
                serde_json::json!({
                    "job_id": ctx.job_id(), "worker_id": ctx.worker_id(),
                    "num_workers": ctx.current_num_workers()?, "restart_count": ctx.restart_count(),
                    "port": ctx.port(), "host": ctx.host(),
                })
            );
            Ok(0)
        }
        WorkerCommand::Send { message } => {
            ctx.send_message(&message)?;
            Ok(0)
        }
        WorkerCommand::Events => {
            for ev in ctx.events()? {
                let text = serde_json::to_string(&ev)
                    .map_err(LauncherError::json("cannot encode an event"))?;
                crate::stdout::outln!("{text}");
            }
            Ok(0)
        }
    }
}
