//! Barriers: a DEFAULT and an INIT barrier, each with at most one round in progress. A round
//! completes with SUCCESS when all workers have arrived, TIMED_OUT at its deadline, and (DEFAULT
//! only) JOB_FAULTY when a worker fails while others wait.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use t2_proto::{BarrierResult, BarrierType};

/// One worker waiting: its ID and the request ID to answer.
pub type Waiter = (u32, u64);

/// A round of one barrier type.
#[derive(Debug)]
struct Round {
    waiters: BTreeMap<u32, u64>,
    started: Instant,
    timeout: Duration,
}

/// A completed round: who to answer, with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// Which barrier.
    pub barrier_type: BarrierType,
    /// The result.
    pub result: BarrierResult,
    /// A readable reason for anything but SUCCESS.
    pub reason: String,
    /// Who waited.
    pub waiters: Vec<Waiter>,
}

/// Both barriers of a job.
#[derive(Debug, Default)]
pub struct Barriers {
    default: Option<Round>,
    init: Option<Round>,
}

impl Barriers {
    fn slot(&mut self, t: BarrierType) -> &mut Option<Round> {
        match t {
            BarrierType::Default => &mut self.default,
            BarrierType::Init => &mut self.init,
        }
    }

    /// Worker `id` arrives with request `request_id`. The first arrival sets the round's
    /// timeout. Returns the completion when this arrival makes all `n` workers present.
    pub fn arrive(
        &mut self,
        t: BarrierType,
        id: u32,
        request_id: u64,
        timeout: Duration,
        n: u32,
        now: Instant,
    ) -> Option<Completion> {
        let slot = self.slot(t);
        let round = slot.get_or_insert_with(|| Round {
            waiters: BTreeMap::new(),
            started: now,
            timeout,
        });
        round.waiters.insert(id, request_id);
        if round.waiters.len() as u32 >= n {
            let round = slot.take()?;
            return Some(Completion {
                barrier_type: t,
                result: BarrierResult::Success,
                reason: String::new(),
                waiters: round.waiters.into_iter().collect(),
            });
        }
        None
    }

    /// Rounds past their deadline, completed as TIMED_OUT naming the workers that never came.
    pub fn expire(&mut self, n: u32, now: Instant) -> Vec<Completion> {
        let mut out = Vec::new();
        for t in [BarrierType::Default, BarrierType::Init] {
            let slot = self.slot(t);
            let expired = slot
                .as_ref()
                .is_some_and(|r| now.duration_since(r.started) >= r.timeout);
            if let Some(round) = expired.then(|| slot.take()).flatten() {
                let missing: Vec<u32> = (0..n).filter(|i| !round.waiters.contains_key(i)).collect();
                out.push(Completion {
                    barrier_type: t,
                    result: BarrierResult::TimedOut,
                    reason: format!(
                        "{} barrier timed out after {:?}: worker(s) {} never arrived",
                        type_name(t),
                        round.timeout,
                        crate::registry::id_ranges(&missing)
                    ),
                    waiters: round.waiters.into_iter().collect(),
                });
            }
        }
        out
    }

    /// Worker `failed` failed: it leaves every round; a DEFAULT round with waiters ends
    /// JOB_FAULTY (INIT rounds wait for the restarted worker instead).
    pub fn worker_failed(&mut self, failed: u32, reason: &str) -> Option<Completion> {
        for t in [BarrierType::Default, BarrierType::Init] {
            if let Some(r) = self.slot(t).as_mut() {
                r.waiters.remove(&failed);
            }
        }
        let round = self.default.take()?;
        if round.waiters.is_empty() {
            return None;
        }
        Some(Completion {
            barrier_type: BarrierType::Default,
            result: BarrierResult::JobFaulty,
            reason: format!("default barrier abandoned: {reason}"),
            waiters: round.waiters.into_iter().collect(),
        })
    }

    /// The job now has `n` workers (scaled down): waiters with IDs `>= n` leave their rounds
    /// and are answered JOB_FAULTY with `reason`; a round whose remaining waiters are all `n`
    /// workers completes with SUCCESS.
    pub fn shrink(&mut self, n: u32, reason: &str) -> Vec<Completion> {
        let mut out = Vec::new();
        for t in [BarrierType::Default, BarrierType::Init] {
            let slot = self.slot(t);
            let Some(round) = slot.as_mut() else {
                continue;
            };
            let removed = round.waiters.split_off(&n);
            if !removed.is_empty() {
                out.push(Completion {
                    barrier_type: t,
                    result: BarrierResult::JobFaulty,
                    reason: reason.to_string(),
                    waiters: removed.into_iter().collect(),
                });
            }
            if round.waiters.is_empty() || round.waiters.len() as u32 >= n {
                if let Some(round) = slot.take().filter(|r| !r.waiters.is_empty()) {
                    out.push(Completion {
                        barrier_type: t,
                        result: BarrierResult::Success,
                        reason: String::new(),
                        waiters: round.waiters.into_iter().collect(),
                    });
                }
            }
        }
        out
    }

    /// Ends every round (the job ended) as JOB_FAULTY with `reason`.
    pub fn abort_all(&mut self, reason: &str) -> Vec<Completion> {
        let mut out = Vec::new();
        for t in [BarrierType::Default, BarrierType::Init] {
            if let Some(round) = self.slot(t).take() {
                out.push(Completion {
                    barrier_type: t,
                    result: BarrierResult::JobFaulty,
                    reason: reason.to_string(),
                    waiters: round.waiters.into_iter().collect(),
                });
            }
        }
        out
    }
}

/// `default` or `init`.
pub fn type_name(t: BarrierType) -> &'static str {
    match t {
        BarrierType::Default => "default",
        BarrierType::Init => "init",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(2);

    #[test]
    fn completes_when_all_arrive_and_starts_a_new_round() {
        let mut b = Barriers::default();
        let now = Instant::now();
        assert!(b.arrive(BarrierType::Default, 0, 10, T, 2, now).is_none());
        let c = b.arrive(BarrierType::Default, 1, 11, T, 2, now).unwrap();
        assert_eq!(c.result, BarrierResult::Success);
        assert_eq!(c.waiters, vec![(0, 10), (1, 11)]);
        assert!(b.arrive(BarrierType::Default, 0, 12, T, 2, now).is_none());
    }

    #[test]
    fn times_out_naming_the_missing_worker() {
        let mut b = Barriers::default();
        let now = Instant::now();
        b.arrive(BarrierType::Default, 1, 1, T, 3, now);
        b.arrive(BarrierType::Default, 2, 2, T, 3, now);
        assert!(b.expire(3, now + Duration::from_secs(1)).is_empty());
        let c = b.expire(3, now + T).pop().unwrap();
        assert_eq!(c.result, BarrierResult::TimedOut);
        assert!(
            c.reason.contains("worker(s) 0 never arrived"),
            "{}",
            c.reason
        );
        assert_eq!(c.waiters.len(), 2);
    }

    #[test]
    fn failure_faults_default_but_not_init() {
        let mut b = Barriers::default();
        let now = Instant::now();
        b.arrive(BarrierType::Default, 0, 1, T, 3, now);
        b.arrive(BarrierType::Init, 0, 2, T, 3, now);
        b.arrive(BarrierType::Init, 1, 3, T, 3, now);
        let c = b.worker_failed(1, "worker 1 failed").unwrap();
        assert_eq!(c.result, BarrierResult::JobFaulty);
        assert_eq!(c.waiters, vec![(0, 1)]);
        // Worker 1 left the init round; it completes when 1 (restarted) and 2 arrive.
        assert!(b.arrive(BarrierType::Init, 2, 4, T, 3, now).is_none());
        let c = b.arrive(BarrierType::Init, 1, 5, T, 3, now).unwrap();
        assert_eq!(c.result, BarrierResult::Success);
    }

    #[test]
    fn shrinking_completes_a_round_that_only_waited_for_removed_workers() {
        let mut b = Barriers::default();
        let now = Instant::now();
        b.arrive(BarrierType::Default, 0, 1, T, 4, now);
        b.arrive(BarrierType::Default, 1, 2, T, 4, now);
        b.arrive(BarrierType::Default, 3, 3, T, 4, now);
        b.arrive(BarrierType::Init, 0, 4, T, 4, now);
        let done = b.shrink(2, "worker removed by scaling");
        assert_eq!(done.len(), 2, "{done:?}");
        assert_eq!(done[0].result, BarrierResult::JobFaulty);
        assert_eq!(done[0].waiters, vec![(3, 3)]);
        assert_eq!(done[1].result, BarrierResult::Success);
        assert_eq!(done[1].waiters, vec![(0, 1), (1, 2)]);
        // The init round still waits for worker 1.
        let c = b.arrive(BarrierType::Init, 1, 5, T, 2, now).unwrap();
        assert_eq!(c.waiters, vec![(0, 4), (1, 5)]);
    }
}
