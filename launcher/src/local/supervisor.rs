//! The local cluster's supervisor: starts the job master and one agent process per worker,
//! restarts failed workers (same ID, restart count + 1, up to `max_restarts`), mirrors the job
//! master's view into the job record, follows its worker count when the job is scaled
//! (`t2 scale`: starts agents for new worker IDs, stops those with IDs >= N without counting
//! it as a failure), and tears everything down when the job ends or is killed.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nix::sys::signal::Signal;
use t2_core::jobdir::{now_rfc3339, JobDir, JobRecord, RecordedState, WorkerRecord};
use t2_core::spec::JobSpec;
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::{JobState, JobStatus, KillParams, WatchParams, WorkerState};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::output::{self, LogFile, Terminal};
use super::process::{group_alive, signal_group, t2_exe};
use crate::error::LauncherError;

/// Exit code of an agent that hit an error restarting cannot fix (bad package, refused).
pub const AGENT_FATAL: i32 = 2;

/// How long the job master may take to start listening.
const JM_START_DEADLINE: Duration = Duration::from_secs(10);
/// How long processes may take to leave on their own after the job ended.
const END_GRACE: Duration = Duration::from_secs(3);
/// How long the end of a job waits for the exit codes of agents it signalled.
const EXIT_WAIT: Duration = Duration::from_secs(2);
/// SIGTERM-to-SIGKILL grace when killing.
const KILL_GRACE: Duration = Duration::from_millis(800);

/// How long an agent whose worker the job master declared lost may linger before it is killed
/// (so that a hung worker is replaced, not waited for).
const REAP_AFTER: Duration = Duration::from_secs(2);
/// SIGTERM-to-SIGKILL grace for the agents of workers a scale-down removes (an agent gives its
/// program 2 s after SIGTERM, then reports and leaves).
const SCALE_DOWN_GRACE: Duration = Duration::from_secs(4);

enum Ev {
    /// Kill worker `id`'s agent if it is still the same generation and still running.
    Reap {
        id: u32,
        generation: u32,
    },
    /// Agent process `serial` (of worker `id`) exited.
    AgentExited {
        id: u32,
        serial: u64,
        code: Option<i32>,
    },
    Status(JobStatus),
    /// The job master said how the job ended (its last stdout line, before it exits).
    Outcome {
        state: RecordedState,
        reason: String,
    },
    /// The job master process ended: cleanly (exit 0, the job is over) or not, and how.
    JobMasterExited {
        clean: bool,
        how: String,
    },
    Stop(String),
}

struct Slot {
    restart_count: u32,
    /// Which agent process this slot runs now (unique in the job, unlike the restart count:
    /// a worker ID removed by a scale-down and added again starts over at restart 0).
    serial: u64,
    pid: Option<u32>,
    log: LogFile,
}

/// Supervises the job in `dir` to its end; returns the final record.
pub async fn supervise(dir: JobDir, foreground: bool) -> Result<JobRecord, LauncherError> {
    let mut record = dir.read_record()?;
    let spec = crate::jobfiles::read_spec(&dir)?;
    let token = crate::jobfiles::read_token(&dir)?;
    let dialer = crate::jobfiles::dialer(&dir, &spec)?;
    record.supervisor_pid = Some(std::process::id());
    record.supervisor_mark = super::identity::mark_of(std::process::id());
    dir.write_record(&record)?;
    super::events::record_changes(&dir, None, &record);
    if spec.mpi.enabled {
        // MPI daemons and ranks leave their agents' process groups; as a subreaper, this
        // process inherits any an ended agent orphans, and ends them at teardown.
        t2_worker::agent::proctree::become_subreaper();
    }
    // With --uploader: put the package there first; agents then download it.
    let upload = crate::uploader::job::start(&dir, &mut record, foreground).await?;

    let mut sup = Supervisor::new(dir, record, spec, token, foreground)?;
    sup.dialer = dialer;
    let outcome = sup.run().await;
    // The job is over: its package goes first (a `t2 kill` allows the supervisor little time).
    if let Some(upload) = upload {
        upload.finish().await;
    }
    sup.teardown().await;
    let (state, reason) = match outcome {
        Ok(x) => x,
        Err(e) => (RecordedState::Failed, e.to_string()),
    };
    sup.collect_exits().await;
    sup.finish_workers(state);
    sup.remove_worker_copies();
    sup.record.state = state;
    sup.record.reason = (!reason.is_empty()).then_some(reason);
    sup.record.ended_at = Some(now_rfc3339());
    sup.record.supervisor_pid = None;
    sup.record.jobmaster_pid = None;
    sup.dir.write_record(&sup.record)?;
    if let Ok(saved) = sup.saved.lock() {
        super::events::record_changes(&sup.dir, saved.as_ref(), &sup.record);
    }
    // The workers' last lines reach the terminal before the outcome is printed.
    let term = sup.term.clone();
    let _ = tokio::task::spawn_blocking(move || term.flush()).await;
    Ok(sup.record)
}

/// Fewest job master restarts a fault-tolerant job gets: it gets `max_restarts` if that is more
/// (a job that lets each worker be restarted 1000 times survives as many job master crashes).
const MIN_JM_RESTARTS: u32 = 10;

struct Supervisor {
    jm_restarts: u32,
    dir: JobDir,
    record: JobRecord,
    spec: JobSpec,
    token: String,
    /// How the job master is dialled (TLS for a job with `tls: true`).
    dialer: t2_worker::agent::dial::Dialer,
    term: Terminal,
    bar: Option<ProgressBar>,
    slots: BTreeMap<u32, Slot>,
    /// The number of workers the job has now (the job master's, after any `t2 scale`).
    num_workers: u32,
    /// Serial number of the next agent process.
    next_serial: u64,
    /// Agents of workers removed by a scale-down that have not exited yet: serial -> group.
    stopping: BTreeMap<u64, u32>,
    jm_pid: Option<u32>,
    jm_addr: String,
    tx: mpsc::UnboundedSender<Ev>,
    rx: mpsc::UnboundedReceiver<Ev>,
    started: Instant,
    last_lines: BTreeMap<u32, String>,
    /// The record as last saved, which the next save's events are the changes from.
    saved: std::sync::Mutex<Option<JobRecord>>,
}

impl Supervisor {
    fn new(
        dir: JobDir,
        record: JobRecord,
        spec: JobSpec,
        token: String,
        foreground: bool,
    ) -> Result<Self, LauncherError> {
        let bar = foreground.then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(spec.workers as u64),
                ProgressDrawTarget::stderr(),
            );
            if let Ok(style) =
                ProgressStyle::with_template("t2: {msg} [{bar:30}] {pos}/{len} workers joined")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(record.id.clone());
            bar
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let record_for_events = record.clone();
        let mut slots = BTreeMap::new();
        for id in 0..spec.workers {
            slots.insert(id, new_slot(&dir, id)?);
        }
        Ok(Self {
            num_workers: spec.workers,
            next_serial: 0,
            stopping: BTreeMap::new(),
            jm_restarts: 0,
            term: Terminal::new(bar.clone(), !foreground),
            dir,
            record,
            spec,
            token,
            dialer: t2_worker::agent::dial::Dialer::plain(),
            bar,
            slots,
            jm_pid: None,
            jm_addr: String::new(),
            tx,
            rx,
            started: Instant::now(),
            last_lines: BTreeMap::new(),
            saved: std::sync::Mutex::new(Some(record_for_events)),
        })
    }

    fn say(&self, text: &str) {
        say_on(&self.bar, text);
    }

    async fn run(&mut self) -> Result<(RecordedState, String), LauncherError> {
        self.start_signal_watch();
        self.start_jobmaster().await?;
        self.start_watch().await?;
        for id in 0..self.spec.workers {
            self.start_agent(id)?;
        }
        self.save();
        while let Some(ev) = self.rx.recv().await {
            match ev {
                Ev::Status(status) => {
                    if let Some(done) = self.on_status(status)? {
                        return Ok(done);
                    }
                }
                Ev::AgentExited { id, serial, code } => {
                    if let Some(done) = self.on_agent_exit(id, serial, code)? {
                        return Ok(done);
                    }
                }
                Ev::Reap { id, generation } => self.reap(id, generation),
                Ev::Outcome { state, reason } => {
                    // The job is over even if its last status has not come over the watch
                    // stream (it may be behind, or cut off as the job master leaves).
                    if state == RecordedState::Completed {
                        for w in &mut self.record.workers {
                            w.state = "COMPLETED".into();
                        }
                    }
                    self.record.state = state;
                    self.save();
                    return Ok((state, reason));
                }
                Ev::JobMasterExited { clean, how } => {
                    let log = self.dir.jobmaster_log().display().to_string();
                    if !self.spec.fault_tolerant {
                        return Ok((RecordedState::Failed, format!(
                            "the job master {how} before the job ended, and the job is not fault tolerant (set fault_tolerant: true with ZooKeeper to survive this); see {log}"
                        )));
                    }
                    if clean || self.jm_restarts >= self.spec.max_restarts.max(MIN_JM_RESTARTS) {
                        return Ok((RecordedState::Failed, format!(
                            "the job master {how} before the job ended (after {} restart(s)); see {log}",
                            self.jm_restarts
                        )));
                    }
                    // As a StatefulSet would: start a new one; it takes over from ZooKeeper.
                    self.jm_restarts += 1;
                    self.say(&format!(
                        "the job master {how}; restarting it (restart {})",
                        self.jm_restarts
                    ));
                    self.start_jobmaster().await?;
                    self.start_watch().await?;
                    self.save();
                }
                Ev::Stop(why) => {
                    self.kill_via_jobmaster(&why).await;
                    return Ok((RecordedState::Killed, why));
                }
            }
        }
        Ok((
            RecordedState::Failed,
            "supervisor lost its event channel".into(),
        ))
    }

    /// Ends the job on SIGTERM (`t2 kill`), SIGINT (Ctrl-C), SIGHUP (the terminal closed; in the
    /// foreground only) or
    /// when nobody reads its output any more, saying `stopping…` at once.
    fn start_signal_watch(&self) {
        let tx = self.tx.clone();
        let term_out = self.term.clone();
        let bar = self.bar.clone();
        let id = self.record.id.clone();
        // A detached supervisor has no terminal: a stray SIGHUP must not end its job.
        let foreground = self.bar.is_some();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            let why = tokio::select! {
                _ = term.recv() => "killed by user (t2 kill)",
                _ = int.recv() => "interrupted by user (Ctrl-C)",
                _ = hup.recv(), if foreground => "its terminal closed (SIGHUP to t2 submit)",
                _ = term_out.closed() => "its output was closed (nobody reads t2 submit's stdout any more)",
            };
            say_on(&bar, &format!("stopping job {id}…: {why}"));
            let _ = tx.send(Ev::Stop(why.into()));
        });
    }

    async fn start_jobmaster(&mut self) -> Result<(), LauncherError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.jobmaster_log())
            .map_err(LauncherError::io(format!(
                "cannot create {}",
                self.dir.jobmaster_log().display()
            )))?;
        let mut child = Command::new(t2_exe())
            .arg("jobmaster")
            .arg("--job-dir")
            .arg(self.dir.root())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .map_err(LauncherError::io("cannot start the job master"))?;
        self.jm_pid = child.id();
        self.record.jobmaster_pid = child.id();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| LauncherError::Failed("job master has no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(JM_START_DEADLINE, lines.next_line()).await;
        let addr = match first {
            Ok(Ok(Some(line))) => line.strip_prefix("T2_JOBMASTER_ADDR=").map(str::to_string),
            _ => None,
        };
        let Some(addr) = addr else {
            return Err(LauncherError::Failed(format!(
                "the job master did not start within {JM_START_DEADLINE:?}; see {}",
                self.dir.jobmaster_log().display()
            )));
        };
        info!(job_id = %self.record.id, %addr, "job master listening");
        self.jm_addr = addr.clone();
        self.record.jobmaster_addr = Some(addr);
        let tx = self.tx.clone();
        tokio::spawn(async move {
            // Drain anything else it prints (its outcome line among it), then report its exit.
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(outcome) = parse_outcome(&line) {
                    let _ = tx.send(outcome);
                }
            }
            let (clean, how) = match child.wait().await {
                Ok(s) => match s.code() {
                    Some(c) => (c == 0, format!("exited with code {c}")),
                    None => (false, format!("was killed ({s})")),
                },
                Err(e) => (false, format!("could not be waited for ({e})")),
            };
            let _ = tx.send(Ev::JobMasterExited { clean, how });
        });
        Ok(())
    }

    async fn start_watch(&mut self) -> Result<(), LauncherError> {
        let channel = self
            .dialer
            .channel(jm_endpoint(&self.jm_addr)?)
            .await
            .map_err(|e| {
                LauncherError::Failed(format!(
                    "cannot reach the job master at {}: {e}",
                    self.jm_addr
                ))
            })?;
        let client = JobMasterClient::new(channel);
        // A status lists every worker: its size grows with the job (and with a scale-up).
        let mut client = client
            .max_decoding_message_size(t2_proto::limits::status_bytes(t2_core::spec::MAX_WORKERS));
        let mut stream = client
            .watch(WatchParams {
                token: self.token.clone(),
            })
            .await
            .map_err(|s| {
                LauncherError::Failed(format!(
                    "job master refused to report status: {}",
                    s.message()
                ))
            })?
            .into_inner();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(status)) = stream.next().await {
                if tx.send(Ev::Status(status)).is_err() {
                    return;
                }
            }
        });
        Ok(())
    }

    fn start_agent(&mut self, id: u32) -> Result<(), LauncherError> {
        let Some(slot) = self.slots.get_mut(&id) else {
            return Ok(());
        };
        let generation = slot.restart_count;
        let serial = self.next_serial;
        self.next_serial += 1;
        slot.serial = serial;
        if generation > 0 {
            output::log_line(
                &slot.log,
                &format!("--- t2: worker {id} restarted (restart {generation}) ---"),
            );
        }
        let mut child: Child = Command::new(t2_exe())
            .args([
                "worker",
                "agent",
                "--job-master",
                &self.jm_addr,
                "--worker-id",
                &id.to_string(),
            ])
            .arg("--restart-count")
            .arg(generation.to_string())
            .arg("--host")
            .arg(if self.spec.mpi.enabled {
                super::hosts::mpi_worker_host(id)
            } else {
                super::hosts::DEFAULT_HOST.to_string()
            })
            .args(crate::uploader::job::agent_args(&self.dir))
            .arg("--job-dir")
            .arg(self.dir.root())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(LauncherError::io(format!("cannot start worker {id}")))?;
        slot.pid = child.id();
        let prefix = format!("[worker-{id}]");
        if let Some(out) = child.stdout.take() {
            let which = output::Stream::Out;
            output::pump(
                out,
                which,
                prefix.clone(),
                slot.log.clone(),
                self.term.clone(),
            );
        }
        if let Some(err) = child.stderr.take() {
            let which = output::Stream::Err;
            output::pump(err, which, prefix, slot.log.clone(), self.term.clone());
        }
        if let Some(w) = self.record.workers.get_mut(id as usize) {
            w.pid = slot.pid;
            w.restart_count = generation;
        }
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let code = child.wait().await.ok().and_then(|s| s.code());
            let _ = tx.send(Ev::AgentExited { id, serial, code });
        });
        Ok(())
    }

    fn on_status(
        &mut self,
        status: JobStatus,
    ) -> Result<Option<(RecordedState, String)>, LauncherError> {
        let state = status.state();
        if let Some(bar) = &self.bar {
            bar.set_position(status.joined as u64);
        }
        let ended = matches!(
            state,
            JobState::JobCompleted | JobState::JobFailed | JobState::JobKilled
        );
        if !ended && status.num_workers > 0 && status.num_workers != self.num_workers {
            self.rescale(status.num_workers)?;
        }
        self.record.joined = status.joined;
        for w in &status.workers {
            if let Some(r) = self.record.workers.get_mut(w.worker_id as usize) {
                let newly_failed = w.state() == WorkerState::Failed && r.state != "FAILED";
                r.state = worker_state_name(w.state()).into();
                r.restart_count = r.restart_count.max(w.restart_count);
                if newly_failed {
                    // A failed worker's agent normally exits by itself; a hung one is reaped.
                    let (tx, id, generation) = (self.tx.clone(), w.worker_id, w.restart_count);
                    tokio::spawn(async move {
                        tokio::time::sleep(REAP_AFTER).await;
                        let _ = tx.send(Ev::Reap { id, generation });
                    });
                }
            }
        }
        let recorded = match state {
            JobState::Running => RecordedState::Running,
            JobState::JobCompleted => RecordedState::Completed,
            JobState::JobFailed => RecordedState::Failed,
            JobState::JobKilled => RecordedState::Killed,
            _ => RecordedState::Starting,
        };
        if recorded == RecordedState::Running && self.record.state == RecordedState::Starting {
            if let Some(bar) = &self.bar {
                bar.finish_and_clear();
            }
            let who = match self.num_workers {
                1 => "the worker".to_string(),
                n => format!("all {n} workers"),
            };
            self.say(&format!("{who} joined in {:.2?}", self.started.elapsed()));
        }
        self.record.state = recorded;
        self.save();
        Ok(recorded.is_final().then_some((recorded, status.reason)))
    }

    /// Follows the job master to `n` workers: starts agents for IDs `num_workers..n`, or stops
    /// those with IDs `n..num_workers` (their exit is then neither a failure nor restarted).
    fn rescale(&mut self, n: u32) -> Result<(), LauncherError> {
        let was = self.num_workers;
        info!(job_id = %self.record.id, from = was, to = n, "the job was scaled");
        if n > was {
            for id in was..n {
                self.slots.insert(id, new_slot(&self.dir, id)?);
                self.record.workers.push(WorkerRecord {
                    id,
                    state: "PENDING".into(),
                    restart_count: 0,
                    pid: None,
                    exit_code: None,
                });
            }
            self.num_workers = n;
            self.record.num_workers = n;
            // Recorded before they start: `t2 status` and `t2 logs` know them from now on.
            self.save();
            for id in was..n {
                self.start_agent(id)?;
            }
            self.say(&format!(
                "job scaled from {was} to {n} workers: started {}",
                id_range(was, n)
            ));
        } else {
            for id in n..was {
                let Some(slot) = self.slots.remove(&id) else {
                    continue;
                };
                output::log_line(
                    &slot.log,
                    &format!("--- t2: worker {id} stopped: the job was scaled to {n} workers ---"),
                );
                if let Some(pid) = slot.pid {
                    info!(job_id = %self.record.id, worker_id = id, "stopping the agent of a removed worker");
                    self.stopping.insert(slot.serial, pid);
                    tokio::spawn(stop_group(pid));
                }
            }
            self.num_workers = n;
            self.record.num_workers = n;
            self.record.workers.truncate(n as usize);
            self.record.joined = self.record.joined.min(n);
            self.say(&format!(
                "job scaled from {was} to {n} workers: stopping {}",
                id_range(n, was)
            ));
        }
        self.save();
        Ok(())
    }

    fn on_agent_exit(
        &mut self,
        id: u32,
        serial: u64,
        code: Option<i32>,
    ) -> Result<Option<(RecordedState, String)>, LauncherError> {
        if let Some(pid) = self.stopping.remove(&serial) {
            // A worker a scale-down removed: gone as asked, not a failure.
            signal_group(pid, Signal::SIGKILL);
            info!(job_id = %self.record.id, worker_id = id, code = ?code, "the agent of a removed worker exited");
            return Ok(None);
        }
        let max = self.spec.max_restarts;
        let Some(slot) = self.slots.get_mut(&id) else {
            return Ok(None);
        };
        if slot.serial != serial {
            return Ok(None);
        }
        // Whatever the agent left behind in its group (its program) goes with it.
        if let Some(pid) = slot.pid.take() {
            signal_group(pid, Signal::SIGKILL);
        }
        if let Some(w) = self.record.workers.get_mut(id as usize) {
            w.pid = None;
            w.exit_code = code;
        }
        match code {
            Some(0) => {}
            // An agent that lost a dead job master is a consequence: the job master's own
            // exit (reported next) is the reason.
            Some(AGENT_FATAL)
                if self
                    .jm_pid
                    .is_some_and(|p| !super::process::alive_with(p, "jobmaster")) => {}
            Some(AGENT_FATAL) => {
                self.mark_failed(id);
                let why = self.last_line(id);
                return Ok(Some((
                    RecordedState::Failed,
                    format!("worker {id} could not run: {why}"),
                )));
            }
            _ if slot.restart_count < max => {
                slot.restart_count += 1;
                let n = slot.restart_count;
                self.say(&format!(
                    "worker {id} failed ({}); restarting it (restart {n} of {max})",
                    describe_code(code)
                ));
                self.start_agent(id)?;
            }
            _ => {
                warn!(job_id = %self.record.id, worker_id = id, "worker out of restarts");
                self.mark_failed(id);
            }
        }
        self.save();
        Ok(None)
    }

    /// After the teardown: records the exit codes of agents whose exit was not seen yet (each
    /// has been signalled, so they come at once; at most [`EXIT_WAIT`]).
    async fn collect_exits(&mut self) {
        let deadline = tokio::time::Instant::now() + EXIT_WAIT;
        while self.slots.values().any(|s| s.pid.is_some()) {
            let Ok(Some(ev)) = tokio::time::timeout_at(deadline, self.rx.recv()).await else {
                break;
            };
            if let Ev::AgentExited { id, serial, code } = ev {
                let Some(slot) = self.slots.get_mut(&id).filter(|s| s.serial == serial) else {
                    continue;
                };
                slot.pid = None;
                if let Some(w) = self.record.workers.get_mut(id as usize) {
                    w.exit_code = code;
                }
            }
        }
    }

    /// Gives every worker its final state once the job ended `job`: a worker still shown as
    /// running (PENDING, STARTED, RESTARTED) was ended with the job — COMPLETED in a completed
    /// job; FAILED in a failed job when it had used up its restarts and its last run failed;
    /// else KILLED.
    fn finish_workers(&mut self, job: RecordedState) {
        let max = self.spec.max_restarts;
        for w in &mut self.record.workers {
            w.pid = None;
            if !matches!(
                w.state.as_str(),
                "COMPLETED" | "FAILED" | "KILLED" | "FULLY_FAILED"
            ) {
                let failed_for_good = w.restart_count >= max && w.exit_code.is_some_and(|c| c != 0);
                w.state = match job {
                    RecordedState::Completed => "COMPLETED",
                    RecordedState::Failed if failed_for_good => "FAILED",
                    _ => "KILLED",
                }
                .into();
            }
        }
    }

    fn reap(&mut self, id: u32, generation: u32) {
        let Some(slot) = self.slots.get(&id) else {
            return;
        };
        if slot.restart_count != generation {
            return;
        }
        if let Some(pid) = slot.pid {
            warn!(job_id = %self.record.id, worker_id = id, "worker declared lost but its agent is still running; killing it");
            self.say(&format!(
                "worker {id} is unresponsive; killing it so it can be restarted"
            ));
            signal_group(pid, Signal::SIGKILL);
        }
    }

    /// Removes the workers' unpacked copies of the package (and downloaded packages) once every
    /// process of the job is gone; the logs, the record and the package stay.
    fn remove_worker_copies(&self) {
        for folder in ["workers", "run"] {
            let path = self.dir.root().join(folder);
            if let Err(e) = std::fs::remove_dir_all(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!(job_id = %self.record.id, path = %path.display(), error = %e, "cannot remove the workers' copies");
                }
            }
        }
    }

    /// Records worker `id` as FAILED for good (its last run failed and it is not restarted).
    fn mark_failed(&mut self, id: u32) {
        if let Some(w) = self.record.workers.get_mut(id as usize) {
            w.state = "FAILED".into();
        }
    }

    fn last_line(&mut self, id: u32) -> String {
        let text = std::fs::read_to_string(self.dir.worker_log(id)).unwrap_or_default();
        let line = text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .to_string();
        self.last_lines.insert(id, line.clone());
        line
    }

    fn save(&self) {
        let mut r = self.record.clone();
        r.supervisor_pid = Some(std::process::id());
        if let Err(e) = self.dir.write_record(&r) {
            warn!(error = %e, "cannot write the job record");
        } else if let Ok(mut saved) = self.saved.lock() {
            super::events::record_changes(&self.dir, saved.as_ref(), &r);
            *saved = Some(r);
        }
    }

    async fn kill_via_jobmaster(&self, why: &str) {
        if self.jm_addr.is_empty() {
            return;
        }
        let kill = async {
            let endpoint = jm_endpoint(&self.jm_addr).ok()?;
            let mut client = JobMasterClient::new(self.dialer.channel(endpoint).await.ok()?);
            client
                .kill(KillParams {
                    token: self.token.clone(),
                    reason: why.into(),
                })
                .await
                .ok()
        };
        let _ = tokio::time::timeout(Duration::from_millis(300), kill).await;
    }

    fn groups(&self) -> Vec<u32> {
        self.slots
            .values()
            .filter_map(|s| s.pid)
            .chain(self.stopping.values().copied())
            .chain(self.jm_pid)
            .collect()
    }

    /// Lets processes leave on their own briefly, then SIGTERM, then SIGKILL.
    async fn teardown(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let killed = matches!(self.record.state, RecordedState::Killed)
            || self.record.state == RecordedState::Starting;
        let groups = self.groups();
        if !killed {
            wait_gone(&groups, END_GRACE).await;
        }
        for &g in &groups {
            signal_group(g, Signal::SIGTERM);
        }
        wait_gone(&groups, KILL_GRACE).await;
        for &g in &self.groups() {
            signal_group(g, Signal::SIGKILL);
        }
        wait_gone(&groups, Duration::from_millis(500)).await;
        if self.spec.mpi.enabled {
            // What left its agent's process group and outlived it (an MPI daemon or rank of a
            // SIGKILLed agent) was adopted by this subreaper.
            let left = tokio::task::spawn_blocking(|| {
                t2_worker::agent::proctree::kill_all_below_me(&[], Duration::from_secs(1))
            })
            .await
            .unwrap_or(0);
            if left > 0 {
                warn!(job_id = %self.record.id, left, "ended MPI processes left behind by the workers");
            }
        }
        if self.spec.fault_tolerant {
            self.remove_znodes().await;
        }
    }

    /// The job master removes the job's znodes when it ends the job; when it could not (killed
    /// while it was down, or it crashed at the end), the supervisor does.
    async fn remove_znodes(&self) {
        let zk = &self.spec.zookeeper;
        let znodes = t2_core::zk::JobZnodes::new(&zk.root, &self.record.id);
        let result = async {
            let session =
                t2_core::zk::Zk::connect(&zk.addresses, zk.session_timeout, Duration::from_secs(3))
                    .await?;
            session.delete_tree(znodes.job()).await
        };
        if let Err(e) = result.await {
            warn!(job_id = %self.record.id, error = %e, "could not remove the job's znodes");
            self.say(&format!("could not remove the job's znodes: {e}"));
        }
    }
}

/// The job master's outcome line (`T2_JOB_OUTCOME=COMPLETED`, `T2_JOB_OUTCOME=FAILED why`).
fn parse_outcome(line: &str) -> Option<Ev> {
    let rest = line.strip_prefix(crate::roles::OUTCOME_PREFIX)?;
    let (state, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let state = match state {
        "COMPLETED" => RecordedState::Completed,
        "FAILED" => RecordedState::Failed,
        "KILLED" => RecordedState::Killed,
        _ => return None,
    };
    Some(Ev::Outcome {
        state,
        reason: reason.trim().to_string(),
    })
}

/// Prints `t2: TEXT` on stderr above the progress bar (foreground only: `bar` is `None` for a
/// detached job); a closed stderr is not an error.
fn say_on(bar: &Option<ProgressBar>, text: &str) {
    use std::io::Write;
    match bar {
        Some(bar) if !bar.is_hidden() && !bar.is_finished() => bar.suspend(|| {
            let _ = writeln!(std::io::stderr(), "t2: {text}");
        }),
        Some(_) => {
            let _ = writeln!(std::io::stderr(), "t2: {text}");
        }
        None => {}
    }
}

/// A worker slot with its log file open (appending).
fn new_slot(dir: &JobDir, id: u32) -> Result<Slot, LauncherError> {
    let log = output::open_log(&dir.worker_log(id)).map_err(LauncherError::io(format!(
        "cannot open {}",
        dir.worker_log(id).display()
    )))?;
    Ok(Slot {
        restart_count: 0,
        serial: 0,
        pid: None,
        log,
    })
}

/// Stops the process group `pid` of a removed worker: SIGTERM, then SIGKILL after a grace.
async fn stop_group(pid: u32) {
    signal_group(pid, Signal::SIGTERM);
    wait_gone(&[pid], SCALE_DOWN_GRACE).await;
    if group_alive(pid) {
        signal_group(pid, Signal::SIGKILL);
    }
}

async fn wait_gone(groups: &[u32], deadline: Duration) {
    let start = Instant::now();
    while groups.iter().any(|&g| group_alive(g)) && start.elapsed() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Workers `from..to` in words: `worker 2`, `workers 2 and 3`, `workers 2 to 5`.
fn id_range(from: u32, to: u32) -> String {
    match to - from {
        1 => format!("worker {from}"),
        2 => format!("workers {from} and {}", from + 1),
        _ => format!("workers {from} to {}", to - 1),
    }
}

fn describe_code(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("agent exit code {c}"),
        None => "killed by a signal".into(),
    }
}

/// The name users see for a worker state.
pub fn worker_state_name(s: WorkerState) -> &'static str {
    match s {
        WorkerState::Unspecified => "PENDING",
        WorkerState::Started => "STARTED",
        WorkerState::Restarted => "RESTARTED",
        WorkerState::Completed => "COMPLETED",
        WorkerState::Failed => "FAILED",
        WorkerState::Killed => "KILLED",
        WorkerState::FullyFailed => "FULLY_FAILED",
    }
}

/// The job master's endpoint at `addr` (as it printed it).
fn jm_endpoint(addr: &str) -> Result<tonic::transport::Endpoint, LauncherError> {
    tonic::transport::Endpoint::from_shared(addr.to_string())
        .map(|e| e.connect_timeout(Duration::from_secs(5)).tcp_nodelay(true))
        .map_err(|e| LauncherError::Failed(format!("bad job master address '{addr}': {e}")))
}
