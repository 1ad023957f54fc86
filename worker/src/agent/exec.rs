//! The agent's own gRPC service (`t2.agent.v1.Agent`): runs a command on this worker for
//! another agent of the same job — OpenMPI's remote daemons, asked for by `mpirun` through
//! `t2 worker rsh`. Each request presents the job ID and token. The command runs under
//! `/bin/sh -c` (as a remote shell would run it) in a process group of its own, with the
//! worker's environment; its stdout and stderr stream back, stdin and signals stream in. When
//! the stream ends or breaks before the command does, the command's whole process tree is
//! ended (SIGTERM, then SIGKILL), so a lost `mpirun` leaves no daemon behind.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use t2_proto::agent::agent_server::{Agent, AgentServer};
use t2_proto::agent::{
    exec_input::Body as In, exec_output::Body as Out, ExecExit, ExecInput, ExecOutput, ExecStarted,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use super::proctree;

/// Most commands running at once for other agents (OpenMPI starts one daemon per worker).
pub const MAX_SESSIONS: usize = 64;
/// Frames buffered per direction of a session.
const QUEUE: usize = 64;
/// Largest output chunk sent at once.
const CHUNK: usize = 32 * 1024;
/// How long the first message may take.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for this worker to be ready to run commands (all joined).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// SIGTERM-to-SIGKILL grace when a session is ended from here.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long output may keep flowing after the command exited (a grandchild may hold a pipe).
const DRAIN: Duration = Duration::from_secs(1);

/// What commands run with, set once the worker is ready (all workers joined).
#[derive(Debug, Clone)]
pub struct ExecEnv {
    /// The working directory.
    pub dir: PathBuf,
    /// The environment (added to the agent's own).
    pub env: BTreeMap<String, String>,
}

/// The processes this agent started and waits for itself (its program and the commands it
/// runs for other workers): everything else below the agent is a stray to end.
#[derive(Debug, Default)]
pub struct Known(Mutex<BTreeSet<u32>>);

impl Known {
    /// Spawns `cmd` and remembers it, under the lock a sweep takes (so a sweep never sees a
    /// process that is started but not yet known).
    pub fn spawn(
        &self,
        cmd: &mut tokio::process::Command,
    ) -> std::io::Result<tokio::process::Child> {
        let mut known = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let child = cmd.spawn()?;
        if let Some(pid) = child.id() {
            known.insert(pid);
        }
        Ok(child)
    }

    /// Forgets `pid` (it exited and was waited for).
    pub fn remove(&self, pid: u32) {
        if let Ok(mut s) = self.0.lock() {
            s.remove(&pid);
        }
    }

    /// Ends every process below this agent that is not a known process or below one:
    /// the daemons and ranks an ended command left behind. Returns how many were killed.
    pub async fn sweep(self: &Arc<Self>) -> usize {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let known = me.0.lock().unwrap_or_else(|p| p.into_inner());
            let keep: Vec<u32> = known.iter().copied().collect();
            proctree::kill_all_below_me(&keep, Duration::from_millis(300))
        })
        .await
        .unwrap_or(0)
    }

    /// Ends every process below this agent, known or not (the worker is ending).
    pub async fn sweep_all(self: &Arc<Self>) -> usize {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let _known = me.0.lock().unwrap_or_else(|p| p.into_inner());
            proctree::kill_all_below_me(&[], Duration::from_secs(1))
        })
        .await
        .unwrap_or(0)
    }
}

/// The service.
#[derive(Clone)]
pub struct ExecService {
    job_id: String,
    token: String,
    worker_id: u32,
    ready: watch::Receiver<Option<Arc<ExecEnv>>>,
    permits: Arc<Semaphore>,
    known: Arc<Known>,
}

impl ExecService {
    /// A service of worker `worker_id` of `job_id`; commands wait until `ready` holds their
    /// environment, and are recorded in `known`.
    pub fn new(
        job_id: &str,
        token: &str,
        worker_id: u32,
        ready: watch::Receiver<Option<Arc<ExecEnv>>>,
        known: Arc<Known>,
    ) -> Self {
        Self {
            job_id: job_id.into(),
            token: token.into(),
            worker_id,
            ready,
            permits: Arc::new(Semaphore::new(MAX_SESSIONS)),
            known,
        }
    }

    /// Serves on `listener` until the returned task is aborted; over TLS with `tls` (the
    /// agents' certificate), so the token other agents present is never in the clear.
    pub fn serve(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<Arc<t2_core::tls::rustls::ServerConfig>>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut server = tonic::transport::Server::builder();
            let router = server.add_service(AgentServer::new(self));
            let served = match tls {
                Some(config) => {
                    router
                        .serve_with_incoming(t2_core::grpc_tls::incoming(
                            listener,
                            config,
                            "agent service",
                        ))
                        .await
                }
                None => {
                    router
                        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                            listener,
                        ))
                        .await
                }
            };
            if let Err(e) = served {
                warn!(error = %e, "the agent service stopped");
            }
        })
    }

    fn check(&self, job_id: &str, token: &str) -> Result<(), Status> {
        let same = t2_core::secret::constant_time_eq(token.as_bytes(), self.token.as_bytes());
        if job_id != self.job_id || !same {
            return Err(Status::unauthenticated(format!(
                "worker {} of job '{}' refuses to run a command for a caller without this job's ID and token",
                self.worker_id, self.job_id
            )));
        }
        Ok(())
    }
}

type OutStream = Pin<Box<dyn Stream<Item = Result<ExecOutput, Status>> + Send + 'static>>;

fn out(body: Out) -> Result<ExecOutput, Status> {
    Ok(ExecOutput { body: Some(body) })
}

#[tonic::async_trait]
impl Agent for ExecService {
    type ExecStream = OutStream;

    async fn exec(
        &self,
        request: Request<Streaming<ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(START_TIMEOUT, inbound.next())
            .await
            .map_err(|_| Status::deadline_exceeded("no start message within 10s"))?;
        let start = match first {
            Some(Ok(ExecInput {
                body: Some(In::Start(s)),
            })) => s,
            Some(Err(e)) => return Err(e),
            _ => {
                return Err(Status::invalid_argument(
                    "the first message of an exec stream must be `start`",
                ))
            }
        };
        self.check(&start.job_id, &start.token)?;
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "worker {} already runs {MAX_SESSIONS} commands for other workers",
                self.worker_id
            ))
        })?;
        let mut ready = self.ready.clone();
        let env = match tokio::time::timeout(READY_TIMEOUT, ready.wait_for(|e| e.is_some())).await {
            Ok(Ok(e)) => e
                .clone()
                .ok_or_else(|| Status::internal("no environment"))?,
            Ok(Err(_)) => return Err(Status::unavailable("the worker is stopping")),
            Err(_) => {
                return Err(Status::unavailable(format!(
                    "worker {} was not ready to run commands within {READY_TIMEOUT:?}",
                    self.worker_id
                )))
            }
        };
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&start.command)
            .current_dir(&env.dir)
            .envs(&env.env)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .process_group(0);
        let mut child = self
            .known
            .spawn(&mut cmd)
            .map_err(|e| Status::internal(format!("cannot start /bin/sh: {e}")))?;
        let pid = child.id().unwrap_or_default();
        info!(worker_id = self.worker_id, from_worker = start.from_worker, pid, command = %start.command, "running a command for another worker");
        let (tx, rx) = mpsc::channel(QUEUE);
        let _ = tx.send(out(Out::Started(ExecStarted { pid }))).await;
        let stdout = child
            .stdout
            .take()
            .map(|r| pump(r, tx.clone(), Out::Stdout));
        let stderr = child
            .stderr
            .take()
            .map(|r| pump(r, tx.clone(), Out::Stderr));
        let mut stdin = child.stdin.take();
        let known = self.known.clone();
        let worker_id = self.worker_id;
        tokio::spawn(async move {
            let _permit = permit;
            let status = loop {
                tokio::select! {
                    status = child.wait() => break status.ok(),
                    msg = inbound.next() => match msg {
                        Some(Ok(ExecInput { body: Some(In::Stdin(data)) })) => {
                            if let Some(w) = stdin.as_mut() {
                                if w.write_all(&data).await.is_err() {
                                    stdin = None;
                                }
                            }
                        }
                        Some(Ok(ExecInput { body: Some(In::StdinClosed(_)) })) => stdin = None,
                        Some(Ok(ExecInput { body: Some(In::Signal(n)) })) => {
                            if let Ok(sig) = Signal::try_from(n) {
                                let _ = killpg(Pid::from_raw(pid as i32), sig);
                            }
                        }
                        Some(Ok(_)) => {}
                        // The caller is gone: end the command and everything it started.
                        Some(Err(_)) | None => {
                            warn!(worker_id, pid, "the caller went away; ending its command");
                            break terminate(&mut child, pid).await;
                        }
                    },
                }
            };
            // What the command left running (its group; a daemon's orphaned ranks, which this
            // subreaper adopted) goes with it.
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            known.remove(pid);
            let strays = known.sweep().await;
            if strays > 0 {
                warn!(
                    worker_id,
                    pid, strays, "ended processes the command left behind"
                );
            }
            for pump in [stdout, stderr].into_iter().flatten() {
                let _ = tokio::time::timeout(DRAIN, pump).await;
            }
            let (code, description) = match status {
                Some(s) => super::program::describe(&s),
                None => (-1, "could not be waited for".into()),
            };
            let _ = tx
                .send(out(Out::Exit(ExecExit { code, description })))
                .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Ends a session's command: SIGTERM to its group and tree, then SIGKILL after a grace.
async fn terminate(
    child: &mut tokio::process::Child,
    pid: u32,
) -> Option<std::process::ExitStatus> {
    let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
    proctree::signal_tree(pid, Signal::SIGTERM);
    match tokio::time::timeout(TERM_GRACE, child.wait()).await {
        Ok(s) => s.ok(),
        Err(_) => {
            proctree::signal_tree(pid, Signal::SIGKILL);
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            child.wait().await.ok()
        }
    }
}

fn pump(
    mut r: impl AsyncRead + Unpin + Send + 'static,
    tx: mpsc::Sender<Result<ExecOutput, Status>>,
    wrap: fn(Vec<u8>) -> Out,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send(out(wrap(buf[..n].to_vec()))).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
}
