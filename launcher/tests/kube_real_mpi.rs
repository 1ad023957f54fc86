//! An MPI job on a real control plane (scripts/kube-up), its pods' containers run as local
//! processes by the test runtime, with Debian's OpenMPI: `examples/mpi-allreduce` on 3 worker
//! pods of 2 slots runs to COMPLETED with the right sum from 6 ranks; worker 0's agent ran
//! mpirun over the pods' IPs, every pod's `orted` was started by that pod's own agent through
//! `t2 worker rsh` (agent to agent over the pods' IPs, no sshd, no exec permission), every
//! rank's working directory exists in its own pod, and nothing of the job is left, in
//! Kubernetes or in /proc.
//!
//! Twister2's sshd mode (`kubernetes.mpi_ssh_secret`) runs in kube_real_mpi_ssh.rs.

mod kube_real_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use kube_real_support::mpi::{assert_allreduce_of_6_ranks, mpi_example};
use kube_real_support::procs::{all_procs, ns_procs, Proc};
use kube_real_support::{text, TestNs};

/// Hang guard of the whole job.
const JOB_DEADLINE: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_mpi_job_runs_with_every_orted_started_by_its_pods_agent() {
    let ns = TestNs::new("mpi").await;
    let pkg = mpi_example(ns.home.path());
    let mut c = ns.t2();
    c.args([
        "submit",
        "kubernetes",
        pkg.to_str().expect("utf-8 path"),
        "--workers",
        "3",
        "-D",
        "mpi.slots_per_worker=2",
        // Each rank waits before the allreduce, so the process tree can be looked at.
        "-D",
        "env.HOLD_SECONDS=4",
        "-n",
        &ns.name,
    ]);
    let submit = c.spawn().expect("spawn t2 submit");
    let submit = tokio::spawn(submit.wait_with_output());

    // While the ranks hold: the MPI processes of the job, as the runtime runs them.
    let snapshot = ns
        .until("3 orteds and 6 ranks of the job", JOB_DEADLINE, || async {
            if submit.is_finished() {
                return Some(None); // it ended before the MPI processes ran: see below
            }
            let procs = ns_procs(&ns.name);
            let id = procs
                .iter()
                .find(|p| p.name == "allreduce")
                .and_then(|p| p.env.get("T2_JOB_ID").cloned())?;
            let mine: Vec<Proc> = procs
                .into_iter()
                .filter(|p| p.env.get("T2_JOB_ID") == Some(&id))
                .collect();
            let orteds = mine.iter().filter(|p| p.name == "orted").count();
            let ranks = mine.iter().filter(|p| p.name == "allreduce").count();
            (orteds == 3 && ranks == 6).then_some(Some((id, mine)))
        })
        .await;
    let Some((id, snapshot)) = snapshot else {
        let out = submit.await.expect("the submit's task").expect("t2 output");
        panic!(
            "the submit ended before the MPI processes ran:\n{}\nruntime:\n{}",
            text(&out),
            ns.runtime.report()
        );
    };
    let every: BTreeMap<u32, Proc> = all_procs().into_iter().map(|p| (p.pid, p)).collect();
    let by_pid: BTreeMap<u32, &Proc> = snapshot.iter().map(|p| (p.pid, p)).collect();
    let mpirun: Vec<&Proc> = snapshot.iter().filter(|p| p.name == "mpirun").collect();
    assert_eq!(mpirun.len(), 1, "one mpirun: {snapshot:#?}");
    let mpirun = mpirun[0];
    assert_eq!(
        mpirun.env.get("T2_POD_NAME"),
        Some(&format!("{id}-0")),
        "mpirun runs in worker 0's pod"
    );
    assert!(
        mpirun.cmdline.contains("plm_rsh_agent") && mpirun.cmdline.contains("worker rsh"),
        "{}",
        mpirun.cmdline
    );
    let mut pods_with_daemon = BTreeSet::new();
    for orted in snapshot.iter().filter(|p| p.name == "orted") {
        // orted's parent is the `/bin/sh -c` its pod's agent ran, whose parent is that agent:
        // the container process the runtime started for the pod (`t2 pod agent`).
        let sh = every.get(&orted.ppid).expect("orted's parent");
        assert_eq!(
            sh.name, "sh",
            "orted {} not started by a shell: {sh:?}",
            orted.pid
        );
        let agent = every.get(&sh.ppid).expect("the shell's parent");
        assert!(
            agent.cmdline.ends_with("pod agent ") || agent.cmdline.ends_with("pod agent"),
            "orted {}'s shell was started by {:?}, not a t2 agent",
            orted.pid,
            agent.cmdline
        );
        let pod = orted.env.get("T2_POD_NAME").cloned().unwrap_or_default();
        assert_eq!(
            agent.env.get("T2_POD_NAME"),
            Some(&pod),
            "orted of pod {pod} started by the agent of another pod"
        );
        for p in [orted, sh] {
            assert!(
                !p.cmdline.contains("ssh") && !p.cmdline.contains("mpirun"),
                "{p:?}"
            );
        }
        pods_with_daemon.insert(pod);
    }
    assert_eq!(
        pods_with_daemon,
        (0..3).map(|w| format!("{id}-{w}")).collect(),
        "one orted per worker pod"
    );
    // Every rank is a child of its pod's orted, and starts in mpirun's working directory —
    // which must be a folder that exists, with the program, in the rank's own pod (the pods
    // here share this machine's files; in a cluster they do not).
    let area0 = PathBuf::from(mpirun.env.get("T2_WORK_AREA").expect("mpirun's work area"));
    for rank in snapshot.iter().filter(|p| p.name == "allreduce") {
        let parent = by_pid.get(&rank.ppid).expect("the rank's parent");
        assert_eq!(
            parent.name, "orted",
            "rank {} has parent {parent:?}",
            rank.pid
        );
        assert_eq!(parent.env.get("T2_POD_NAME"), rank.env.get("T2_POD_NAME"));
        let cwd = rank.cwd.clone().expect("the rank's working directory");
        let in_pod = cwd.strip_prefix(&area0).unwrap_or_else(|_| {
            panic!(
                "rank {} runs in {}, outside worker 0's /t2",
                rank.pid,
                cwd.display()
            )
        });
        let own = PathBuf::from(rank.env.get("T2_WORK_AREA").expect("the rank's work area"));
        assert!(
            own.join(in_pod).join("allreduce").is_file(),
            "rank {} of pod {:?} starts in /t2/{} (mpirun's folder), which its own pod lacks",
            rank.pid,
            rank.env.get("T2_POD_NAME"),
            in_pod.display()
        );
    }

    ns.completed(submit, &id, JOB_DEADLINE).await;
    assert_allreduce_of_6_ranks(&ns, &id);
    // The job master deleted the root; garbage collection removes the rest, and the pods'
    // processes (MPI daemons and ranks included) are gone.
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
    ns.until("no process of the job", Duration::from_secs(60), || async {
        ns_procs(&ns.name).is_empty().then_some(())
    })
    .await;
}
