//! Example job: a rack-aware allreduce. Every worker holds a vector (worker i: (i+1)·(k+1) at
//! index k) and the job sums them twice over the workers' own TCP connections:
//!
//! - **hierarchically**: inside each rack to its leader (the rack's first worker in the
//!   worker list), between the rack leaders (to the first rack's leader and back), then from
//!   each leader back to its rack;
//! - with a **flat ring** allreduce (reduce-scatter, then all-gather) over the same workers in
//!   worker-ID order, as a program that knows nothing of racks would.
//!
//! Each worker prints its node, rack, datacenter and listening address, and for each method
//! the sum it got and the messages it sent (all, and across racks); worker 0 gathers the
//! counts and prints the totals. The job fails if the two sums differ or are not the
//! expected one.

mod mailbox;

use std::net::TcpListener;

use anyhow::{bail, Context, Result};
use mailbox::{Counts, Mailbox};
use t2_worker::{WorkerAddr, WorkerContext};

fn main() -> Result<()> {
    let ctx = WorkerContext::from_env()?;
    let length = ctx.config()["length"].as_u64().unwrap_or(4096) as usize;
    let me = ctx.worker_id();
    let workers = ctx.all_workers()?;
    let topology = ctx.topology()?;
    let own = find(&workers, me)?;
    let listener = TcpListener::bind((ctx.host(), ctx.port()))
        .with_context(|| format!("worker {me} cannot listen on {}:{}", ctx.host(), ctx.port()))?;
    let bound = listener.local_addr()?;
    println!(
        "worker {me} node {} rack {} datacenter {} listening on {bound}",
        own.node, own.rack, own.datacenter
    );
    if me == 0 {
        for (dc, rack) in topology.racks() {
            println!(
                "rack {} (datacenter {dc}): workers {:?}",
                rack.rack,
                rack.workers()
            );
        }
    }
    let mail = Mailbox::start(listener, me);
    let job = Job {
        mail: &mail,
        workers: &workers,
        me,
    };
    let values: Vec<u64> = (0..length as u64)
        .map(|k| (me as u64 + 1) * (k + 1))
        .collect();
    let n = workers.len() as u64;
    let expected: u64 = (0..length as u64).map(|k| (k + 1) * n * (n + 1) / 2).sum();

    let racks: Vec<Vec<u32>> = topology.racks().iter().map(|(_, r)| r.workers()).collect();
    let (hier, hier_counts) = job.hierarchical(&values, &racks)?;
    let leader = racks.iter().any(|r| r.first() == Some(&me));
    println!(
        "worker {me} hierarchical: sum {} sent {} across-racks {} leader {leader}",
        hier.iter().sum::<u64>(),
        hier_counts.sent,
        hier_counts.across
    );
    let (flat, ring_counts) = job.ring(&values)?;
    println!(
        "worker {me} flat-ring: sum {} sent {} across-racks {}",
        flat.iter().sum::<u64>(),
        ring_counts.sent,
        ring_counts.across
    );
    if hier != flat {
        bail!("worker {me}: the hierarchical and the flat sums differ");
    }
    if hier.iter().sum::<u64>() != expected {
        bail!(
            "worker {me}: the sum is {}, expected {expected}",
            hier.iter().sum::<u64>()
        );
    }
    job.report(hier_counts, ring_counts, racks.len())
}

/// This worker's view of the job.
struct Job<'a> {
    mail: &'a Mailbox,
    workers: &'a [WorkerAddr],
    me: u32,
}

fn find(workers: &[WorkerAddr], id: u32) -> Result<&WorkerAddr> {
    workers
        .iter()
        .find(|w| w.id == id)
        .with_context(|| format!("worker {id} is not in the worker list"))
}

impl Job<'_> {
    /// Sends `values` to worker `to`, counting it across racks when its rack is not ours.
    fn send(&self, to: u32, tag: &str, values: &[u64], counts: &mut Counts) -> Result<()> {
        let (from, peer) = (find(self.workers, self.me)?, find(self.workers, to)?);
        let across = from.rack != peer.rack || from.datacenter != peer.datacenter;
        let port = u16::try_from(peer.port).context("bad port in the worker list")?;
        self.mail
            .send((&peer.host, port), tag, values, across, counts)
    }

    /// In-rack reduce to the leader, reduce and broadcast between leaders, in-rack broadcast.
    fn hierarchical(&self, values: &[u64], racks: &[Vec<u32>]) -> Result<(Vec<u64>, Counts)> {
        let mut counts = Counts::default();
        let mine = racks
            .iter()
            .find(|r| r.contains(&self.me))
            .context("this worker is in no rack of the topology")?;
        let leader = mine[0];
        let leaders: Vec<u32> = racks.iter().map(|r| r[0]).collect();
        let root = leaders[0];
        if self.me != leader {
            self.send(leader, "rack-up", values, &mut counts)?;
            return Ok((self.mail.recv("rack-down", leader)?, counts));
        }
        let mut sum = values.to_vec();
        for &m in &mine[1..] {
            add(&mut sum, &self.mail.recv("rack-up", m)?);
        }
        if self.me == root {
            for &l in &leaders[1..] {
                add(&mut sum, &self.mail.recv("leaders-up", l)?);
            }
            for &l in &leaders[1..] {
                self.send(l, "leaders-down", &sum, &mut counts)?;
            }
        } else {
            self.send(root, "leaders-up", &sum, &mut counts)?;
            sum = self.mail.recv("leaders-down", root)?;
        }
        for &m in &mine[1..] {
            self.send(m, "rack-down", &sum, &mut counts)?;
        }
        Ok((sum, counts))
    }

    /// Ring allreduce in worker-ID order: N−1 reduce-scatter steps, N−1 all-gather steps.
    fn ring(&self, values: &[u64]) -> Result<(Vec<u64>, Counts)> {
        let mut counts = Counts::default();
        let mut ids: Vec<u32> = self.workers.iter().map(|w| w.id).collect();
        ids.sort_unstable();
        let n = ids.len();
        if n == 1 {
            return Ok((values.to_vec(), counts));
        }
        let pos = ids
            .iter()
            .position(|&i| i == self.me)
            .context("not in the ring")?;
        let (next, prev) = (ids[(pos + 1) % n], ids[(pos + n - 1) % n]);
        let bounds = |c: usize| (values.len() * c / n, values.len() * (c + 1) / n);
        let mut data = values.to_vec();
        for step in 0..n - 1 {
            let send = (pos + n - step) % n;
            let (lo, hi) = bounds(send);
            self.send(next, &format!("rs-{step}"), &data[lo..hi], &mut counts)?;
            let got = self.mail.recv(&format!("rs-{step}"), prev)?;
            let (lo, hi) = bounds((pos + 2 * n - step - 1) % n);
            add(&mut data[lo..hi], &got);
        }
        for step in 0..n - 1 {
            let send = (pos + 1 + n - step) % n;
            let (lo, hi) = bounds(send);
            self.send(next, &format!("ag-{step}"), &data[lo..hi], &mut counts)?;
            let got = self.mail.recv(&format!("ag-{step}"), prev)?;
            let (lo, hi) = bounds((pos + n - step) % n);
            data[lo..hi].copy_from_slice(&got);
        }
        Ok((data, counts))
    }

    /// Everyone sends its counts to worker 0 (not counted), which prints the totals.
    fn report(&self, hier: Counts, ring: Counts, racks: usize) -> Result<()> {
        let mine = [hier.sent, hier.across, ring.sent, ring.across];
        if self.me != 0 {
            return self.send(0, "counts", &mine, &mut Counts::default());
        }
        let mut total = mine;
        for w in self.workers.iter().filter(|w| w.id != 0) {
            let got = self.mail.recv("counts", w.id)?;
            for (t, g) in total.iter_mut().zip(got) {
                *t += g;
            }
        }
        println!(
            "rack-allreduce: {} workers in {racks} racks: hierarchical {} messages, {} across racks; flat ring {} messages, {} across racks",
            self.workers.len(),
            total[0],
            total[1],
            total[2],
            total[3]
        );
        Ok(())
    }
}

fn add(into: &mut [u64], from: &[u64]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}
