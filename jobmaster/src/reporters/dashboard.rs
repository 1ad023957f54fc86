//! The dashboard reporting task. It keeps a mirror of the job, sends what changed in one
//! report at most every [`BATCH`], retries with backoff when the dashboard is slow, away or
//! refuses, and after any failure (or when the dashboard asks) sends the whole state, so a
//! dashboard started late or restarted catches up at the next report. A kill asked for on the
//! dashboard comes back in a report's answer and is handed to the master.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::http::Conn;
use super::wire::{
    now_ms, EventReport, JobReport, Report, ReportReply, WorkerReport, MAX_EVENTS_PER_REPORT,
    MAX_WORKERS_PER_REPORT, REPORT_PATH,
};
use super::{DashboardConfig, Reporter, Update, QUEUE_BOUND};

/// Shortest time between two reports: changes in between go together.
pub const BATCH: Duration = Duration::from_millis(100);
/// First wait after a failed report; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest one report may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest the job master waits, once the job has ended, for its last report, and only
/// when the dashboard answered the one before.
pub const FINAL_FLUSH: Duration = Duration::from_millis(800);
/// Events kept for a dashboard that is away; older ones are dropped (and counted).
pub const MAX_PENDING_EVENTS: usize = 10_000;
/// Longest time without a report while the job runs (so a kill gets through).
pub const IDLE_REPORT: Duration = Duration::from_secs(1);
/// A worker's heartbeat alone is sent again once it moved by this much.
pub const HEARTBEAT_REFRESH: i64 = 2_000;

/// The running task, for the job master's end.
pub struct Finisher {
    task: JoinHandle<()>,
    reachable: Arc<AtomicBool>,
}

impl Finisher {
    /// Waits (bounded) for the task's last report once every [`Reporter`] is dropped; does
    /// not wait at all when the dashboard did not answer the last report.
    pub async fn finish(self) {
        let wait = if self.reachable.load(Ordering::Relaxed) {
            FINAL_FLUSH + Duration::from_millis(100)
        } else {
            Duration::from_millis(20)
        };
        if tokio::time::timeout(wait, self.task).await.is_err() {
            info!("dashboard: the last report did not go out in time; the dashboard shows the job as last reported");
        }
    }
}

/// Starts reporting job `job_id` to the dashboard of `cfg`; `kill` is called with the reason
/// when the dashboard asks for the job to be killed. Fails only on a bad URL.
pub fn spawn(
    cfg: DashboardConfig,
    job_id: &str,
    num_workers: u32,
    kill: impl Fn(String) + Send + Sync + 'static,
) -> Result<(Reporter, Finisher), String> {
    let conn = Conn::new(&cfg.url, &cfg.ca_pem)?;
    let (tx, rx) = mpsc::channel(QUEUE_BOUND);
    let reachable = Arc::new(AtomicBool::new(true));
    let epoch = now_ms();
    let mirror = Mirror {
        job: JobReport {
            job_id: job_id.to_string(),
            name: cfg.name.clone(),
            cluster: cfg.cluster.clone(),
            namespace: cfg.namespace.clone(),
            user: cfg.user.clone(),
            spec: cfg.spec.clone(),
            state: "STARTING".into(),
            reason: String::new(),
            num_workers,
            started_ms: epoch,
            ended_ms: None,
        },
        workers: BTreeMap::new(),
        dirty: BTreeSet::new(),
        job_dirty: true,
        events: VecDeque::new(),
        dropped_events: 0,
        epoch,
        next_seq: 1,
        full: true,
    };
    let task = Task {
        conn,
        token: cfg.token,
        url: cfg.url,
        mirror,
        kill: Box::new(kill),
        kill_forwarded: false,
        reachable: reachable.clone(),
        failing_since: None,
        last_warning: None,
        need_full: false,
        last_attempt: Instant::now(),
    };
    let task = tokio::spawn(task.run(rx));
    Ok((
        Reporter {
            tx,
            overflowed: Arc::new(AtomicBool::new(false)),
        },
        Finisher { task, reachable },
    ))
}

/// The reporter's copy of the job.
struct Mirror {
    job: JobReport,
    workers: BTreeMap<u32, WorkerReport>,
    dirty: BTreeSet<u32>,
    job_dirty: bool,
    events: VecDeque<EventReport>,
    dropped_events: u64,
    epoch: i64,
    next_seq: u64,
    /// Send everything next time.
    full: bool,
}

impl Mirror {
    fn set_job(&mut self, state: &str, reason: String, num_workers: u32) {
        let final_state = matches!(state, "COMPLETED" | "FAILED" | "KILLED");
        if self.job.state != state
            || self.job.reason != reason
            || self.job.num_workers != num_workers
        {
            self.job.state = state.to_string();
            self.job.reason = reason;
            self.job.num_workers = num_workers;
            self.job_dirty = true;
        }
        if final_state && self.job.ended_ms.is_none() {
            self.job.ended_ms = Some(now_ms());
            self.job_dirty = true;
        }
    }

    fn set_worker(&mut self, w: WorkerReport, heartbeat_only_if_old: bool) {
        let changed = match self.workers.get(&w.worker_id) {
            None => true,
            Some(old) => {
                let mut same = old.clone();
                same.heartbeat_ms = w.heartbeat_ms;
                same != w
                    || !heartbeat_only_if_old
                    || w.heartbeat_ms - old.heartbeat_ms >= HEARTBEAT_REFRESH
            }
        };
        if changed {
            self.dirty.insert(w.worker_id);
            self.workers.insert(w.worker_id, w);
        }
    }

    fn apply(&mut self, u: Update) {
        match u {
            Update::Job {
                state,
                reason,
                num_workers,
            } => self.set_job(state, reason, num_workers),
            Update::Worker(w) => self.set_worker(w, false),
            Update::Event {
                kind,
                worker_id,
                message,
            } => {
                self.events.push_back(EventReport {
                    epoch: self.epoch,
                    seq: self.next_seq,
                    at_ms: now_ms(),
                    kind: kind.to_string(),
                    worker_id,
                    message,
                });
                self.next_seq += 1;
                if self.events.len() > MAX_PENDING_EVENTS {
                    self.events.pop_front();
                    self.dropped_events += 1;
                }
            }
            Update::Snapshot {
                state,
                reason,
                num_workers,
                workers,
            } => {
                self.set_job(state, reason, num_workers);
                for w in workers {
                    self.set_worker(w, true);
                }
            }
        }
    }

    fn pending(&self) -> bool {
        self.full || self.job_dirty || !self.dirty.is_empty() || !self.events.is_empty()
    }

    /// The reports that carry what is pending: the job in each, workers and events split.
    fn reports(&self) -> Vec<Report> {
        let workers: Vec<WorkerReport> = if self.full {
            self.workers.values().cloned().collect()
        } else {
            self.dirty
                .iter()
                .filter_map(|id| self.workers.get(id).cloned())
                .collect()
        };
        let worker_chunks: Vec<&[WorkerReport]> = workers.chunks(MAX_WORKERS_PER_REPORT).collect();
        let events: Vec<EventReport> = self.events.iter().cloned().collect();
        let event_chunks: Vec<&[EventReport]> = events.chunks(MAX_EVENTS_PER_REPORT).collect();
        let n = worker_chunks.len().max(event_chunks.len()).max(1);
        (0..n)
            .map(|i| Report {
                job: self.job.clone(),
                workers: worker_chunks.get(i).map(|c| c.to_vec()).unwrap_or_default(),
                events: event_chunks.get(i).map(|c| c.to_vec()).unwrap_or_default(),
                full: self.full,
            })
            .collect()
    }
}

struct Task {
    conn: Conn,
    token: String,
    url: String,
    mirror: Mirror,
    kill: Box<dyn Fn(String) + Send + Sync>,
    kill_forwarded: bool,
    reachable: Arc<AtomicBool>,
    failing_since: Option<Instant>,
    last_warning: Option<Instant>,
    /// The dashboard asked for the whole state.
    need_full: bool,
    /// When a report was last tried.
    last_attempt: Instant,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Update>) {
        let mut next_send = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            // With nothing to say, still report every IDLE_REPORT: a kill asked for on the
            // dashboard comes back in the answer.
            let due = if self.mirror.pending() {
                next_send
            } else {
                next_send.max(self.last_attempt + IDLE_REPORT)
            };
            let wait = due.saturating_duration_since(Instant::now());
            tokio::select! {
                u = rx.recv() => match u {
                    Some(u) => {
                        self.mirror.apply(u);
                        while let Ok(u) = rx.try_recv() {
                            self.mirror.apply(u);
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep(wait) => {
                    self.mirror.job_dirty = true;
                    self.last_attempt = Instant::now();
                    if self.send_pending().await {
                        backoff = FIRST_BACKOFF;
                        next_send = Instant::now() + BATCH;
                    } else {
                        next_send = Instant::now() + backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
        if self.mirror.pending() && self.reachable.load(Ordering::Relaxed) {
            let _ = tokio::time::timeout(FINAL_FLUSH, self.send_pending()).await;
        }
    }

    /// Sends everything pending; true when the dashboard took it all.
    async fn send_pending(&mut self) -> bool {
        for report in self.mirror.reports() {
            let sent_events = report.events.len();
            let body = match serde_json::to_vec(&report) {
                Ok(b) => b,
                Err(e) => {
                    warn!(job_id = %self.mirror.job.job_id, error = %e, "dashboard: cannot encode a report");
                    return false;
                }
            };
            match self
                .conn
                .post(REPORT_PATH, &self.token, body, CALL_TIMEOUT)
                .await
            {
                Ok((200, answer)) => {
                    self.mirror
                        .events
                        .drain(..sent_events.min(self.mirror.events.len()));
                    let reply: ReportReply = serde_json::from_slice(&answer).unwrap_or_default();
                    self.on_reply(reply);
                }
                Ok((status, answer)) => {
                    let text = String::from_utf8_lossy(&answer);
                    self.failed(format!("the dashboard answered {status}: {}", text.trim()));
                    return false;
                }
                Err(e) => {
                    self.failed(e);
                    return false;
                }
            }
        }
        if let Some(since) = self.failing_since.take() {
            info!(job_id = %self.mirror.job.job_id, url = %self.url, after_ms = since.elapsed().as_millis() as u64, "dashboard reachable again; sent the job's whole state");
        }
        self.reachable.store(true, Ordering::Relaxed);
        if self.mirror.dropped_events > 0 {
            warn!(job_id = %self.mirror.job.job_id, dropped = self.mirror.dropped_events, "dashboard: the oldest events were dropped while the dashboard was away (at most {MAX_PENDING_EVENTS} are kept)");
            self.mirror.dropped_events = 0;
        }
        self.mirror.dirty.clear();
        self.mirror.job_dirty = false;
        self.mirror.full = std::mem::take(&mut self.need_full);
        true
    }

    fn on_reply(&mut self, reply: ReportReply) {
        if reply.need_full {
            self.need_full = true;
        }
        if let Some(reason) = reply.kill {
            if !self.kill_forwarded {
                self.kill_forwarded = true;
                info!(job_id = %self.mirror.job.job_id, %reason, "dashboard: kill requested");
                (self.kill)(reason);
            }
        }
    }

    /// A report failed: send everything next time; warn at most every 30 s.
    fn failed(&mut self, cause: String) {
        self.mirror.full = true;
        self.reachable.store(false, Ordering::Relaxed);
        let now = Instant::now();
        self.failing_since.get_or_insert(now);
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(30))
        {
            self.last_warning = Some(now);
            warn!(job_id = %self.mirror.job.job_id, url = %self.url, %cause, "dashboard: report failed; the job goes on, retrying with backoff");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror() -> Mirror {
        Mirror {
            job: JobReport {
                job_id: "j-1".into(),
                name: "j".into(),
                cluster: "local".into(),
                namespace: String::new(),
                user: String::new(),
                spec: BTreeMap::new(),
                state: "STARTING".into(),
                reason: String::new(),
                num_workers: 3,
                started_ms: 1,
                ended_ms: None,
            },
            workers: BTreeMap::new(),
            dirty: BTreeSet::new(),
            job_dirty: false,
            events: VecDeque::new(),
            dropped_events: 0,
            epoch: 1,
            next_seq: 1,
            full: false,
        }
    }

    fn worker(id: u32, beat: i64) -> WorkerReport {
        WorkerReport {
            worker_id: id,
            host: "h".into(),
            port: 1,
            node: String::new(),
            rack: String::new(),
            datacenter: String::new(),
            state: "STARTED".into(),
            restart_count: 0,
            heartbeat_ms: beat,
            exit_code: None,
        }
    }

    #[test]
    fn snapshots_send_only_changes_and_old_heartbeats() {
        let mut m = mirror();
        m.apply(Update::Worker(worker(0, 1000)));
        assert_eq!(m.reports()[0].workers.len(), 1);
        m.dirty.clear();
        let snap = |beat| Update::Snapshot {
            state: "RUNNING",
            reason: String::new(),
            num_workers: 3,
            workers: vec![worker(0, beat)],
        };
        m.apply(snap(1500));
        assert!(m.dirty.is_empty(), "a fresh heartbeat alone waits");
        assert!(m.job_dirty, "the state changed");
        m.apply(snap(1000 + HEARTBEAT_REFRESH));
        assert_eq!(m.dirty.len(), 1);
    }

    #[test]
    fn big_states_are_split_and_events_are_bounded() {
        let mut m = mirror();
        for id in 0..(MAX_WORKERS_PER_REPORT as u32 * 2 + 1) {
            m.apply(Update::Worker(worker(id, 1)));
        }
        for _ in 0..MAX_PENDING_EVENTS + 5 {
            m.apply(Update::Event {
                kind: "JOINED",
                worker_id: None,
                message: String::new(),
            });
        }
        assert_eq!(m.events.len(), MAX_PENDING_EVENTS);
        assert_eq!(m.dropped_events, 5);
        let reports = m.reports();
        assert_eq!(reports.len(), 5, "3 worker chunks, 5 event chunks");
        let workers: usize = reports.iter().map(|r| r.workers.len()).sum();
        assert_eq!(workers, MAX_WORKERS_PER_REPORT * 2 + 1);
        assert!(reports
            .iter()
            .all(|r| serde_json::to_vec(r).unwrap().len() < super::super::wire::MAX_REPORT_BYTES));
        m.apply(Update::Job {
            state: "COMPLETED",
            reason: String::new(),
            num_workers: 3,
        });
        assert!(m.job.ended_ms.is_some());
    }
}
