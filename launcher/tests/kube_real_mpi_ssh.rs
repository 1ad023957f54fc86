//! Twister2's sshd mode of MPI jobs (`kubernetes.mpi_ssh_secret`) on a real control plane
//! (scripts/kube-up), the pods' containers run as local processes by the test runtime, with
//! Debian's OpenMPI and OpenSSH: with an SSH-key Secret made here by ssh-keygen (keys
//! `id_rsa`, `id_rsa.pub`, `authorized_keys`, as Twister2's guide makes it),
//! `examples/mpi-allreduce` on 3 worker pods of 2 slots runs to COMPLETED with the right sum
//! from 6 ranks; every pod's agent started an sshd listening on its pod's IP only, mpirun used
//! ssh (not `t2 worker rsh`), every pod's `orted` runs in a session of that pod's own sshd,
//! reached on that pod's IP, with the pod's worker's environment; and nothing of the job is
//! left, in Kubernetes or in /proc.

mod kube_real_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kube_real_support::mpi::{assert_allreduce_of_6_ranks, mpi_example};
use kube_real_support::procs::{all_procs, listening_on, ns_tree, tcp_listeners, Proc};
use kube_real_support::{kubectl, text, TestNs};

/// Hang guard of the whole job.
const JOB_DEADLINE: Duration = Duration::from_secs(300);
/// The agents' sshd port (worker/src/agent/mpi.rs `SSH_PORT`).
const SSH_PORT: u16 = 2222;
/// The Secret's name, Twister2's.
const SECRET: &str = "twister2-openmpi-ssh-key";

/// Makes the SSH-key Secret in `ns` as Twister2's guide does (`kubectl create secret generic`
/// from a key pair), the pair made by ssh-keygen in `dir`.
async fn make_secret(ns: &TestNs) {
    let dir = ns.home.path().join("keys");
    std::fs::create_dir_all(&dir).expect("mkdir keys");
    let key = dir.join("id_rsa");
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-q", "-t", "rsa", "-b", "3072", "-N", "", "-C", "t2-test", "-f",
        ])
        .arg(&key)
        .output()
        .expect("run ssh-keygen (openssh-client)");
    assert!(out.status.success(), "ssh-keygen: {}", text(&out));
    let public = dir.join("id_rsa.pub");
    let from =
        |name: &str, path: &std::path::Path| format!("--from-file={name}={}", path.display());
    let out = kubectl(
        &[
            "create",
            "secret",
            "generic",
            SECRET,
            "-n",
            &ns.name,
            &from("id_rsa", &key),
            &from("id_rsa.pub", &public),
            &from("authorized_keys", &public),
        ],
        None,
    )
    .await;
    assert!(out.status.success(), "create the Secret: {}", text(&out));
}

/// The sshd that `p` runs under: its topmost `sshd` ancestor (the listener; sessions are its
/// children and grandchildren).
fn listener_of<'a>(p: &Proc, every: &'a BTreeMap<u32, Proc>) -> Option<&'a Proc> {
    let mut found = None;
    let mut cur = every.get(&p.ppid);
    while let Some(q) = cur {
        if q.name == "sshd" {
            found = Some(q);
        } else if found.is_some() {
            break;
        }
        cur = every.get(&q.ppid);
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_mpi_job_in_twister2s_sshd_mode_runs_its_orteds_under_each_pods_sshd() {
    let ns = TestNs::new("mpissh").await;
    make_secret(&ns).await;
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
        "-D",
        &format!("kubernetes.mpi_ssh_secret={SECRET}"),
        // Each rank waits before the allreduce, so the process tree can be looked at.
        "-D",
        "env.HOLD_SECONDS=4",
        "-n",
        &ns.name,
    ]);
    let submit = c.spawn().expect("spawn t2 submit");
    let submit = tokio::spawn(submit.wait_with_output());

    // While the ranks hold: the pods' processes and everything below them.
    let snapshot = ns
        .until("3 orteds and 6 ranks of the job", JOB_DEADLINE, || async {
            if submit.is_finished() {
                return Some(None); // it ended before the MPI processes ran: see below
            }
            let tree = ns_tree(&ns.name);
            let orteds = tree.iter().filter(|p| p.name == "orted").count();
            let ranks = tree.iter().filter(|p| p.name == "allreduce").count();
            (orteds == 3 && ranks == 6).then_some(Some(tree))
        })
        .await;
    let Some(snapshot) = snapshot else {
        let out = submit.await.expect("the submit's task").expect("t2 output");
        panic!(
            "the submit ended before the MPI processes ran:\n{}\nruntime:\n{}",
            text(&out),
            ns.runtime.report()
        );
    };
    let every: BTreeMap<u32, Proc> = all_procs().into_iter().map(|p| (p.pid, p)).collect();
    let id = snapshot
        .iter()
        .find(|p| p.name == "allreduce")
        .and_then(|p| p.env.get("T2_JOB_ID").cloned())
        .unwrap_or_else(|| {
            let mpi: Vec<&Proc> = snapshot
                .iter()
                .filter(|p| p.name == "allreduce" || p.name == "orted")
                .collect();
            panic!(
                "the ranks have the worker's T2_JOB_ID (given by sshd): {mpi:#?}\nruntime:\n{}",
                ns.runtime.report()
            )
        });
    let mpirun: Vec<&Proc> = snapshot.iter().filter(|p| p.name == "mpirun").collect();
    assert_eq!(mpirun.len(), 1, "one mpirun: {snapshot:#?}");
    let mpirun = mpirun[0];
    assert_eq!(mpirun.env.get("T2_POD_NAME"), Some(&format!("{id}-0")));
    assert!(
        mpirun
            .cmdline
            .contains(&format!("plm_rsh_agent ssh -p {SSH_PORT} -i ")),
        "mpirun's remote shell is ssh: {}",
        mpirun.cmdline
    );
    let rsh: Vec<&Proc> = snapshot
        .iter()
        .filter(|p| p.cmdline.contains("worker rsh"))
        .collect();
    assert!(rsh.is_empty(), "t2 worker rsh ran: {rsh:#?}");

    // The agents (`t2 pod agent`, the container processes) and their sshd: one each, on
    // the pod's IP only.
    let agents: BTreeMap<String, &Proc> = snapshot
        .iter()
        .filter(|p| p.cmdline.trim_end().ends_with("pod agent"))
        .filter_map(|p| Some((p.env.get("T2_POD_NAME")?.clone(), p)))
        .collect();
    assert_eq!(
        agents.keys().cloned().collect::<BTreeSet<_>>(),
        (0..3).map(|w| format!("{id}-{w}")).collect(),
        "one agent per pod"
    );
    let mut sshd_of_pod = BTreeMap::new();
    for (pod, agent) in &agents {
        let ip = agent.env.get("T2_POD_IP").expect("the agent's T2_POD_IP");
        assert!(
            ip.parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback()),
            "the test runtime's pod IPs stand in on loopback: {ip}"
        );
        let sshds: Vec<&Proc> = snapshot
            .iter()
            .filter(|p| p.ppid == agent.pid && p.name == "sshd")
            .collect();
        assert_eq!(
            sshds.len(),
            1,
            "pod {pod}: one sshd, the agent's child: {sshds:#?}"
        );
        let sshd = sshds[0];
        assert!(
            // sshd retitles its listener `sshd: /usr/sbin/sshd -D -e -f CONFIG [listener] …`.
            sshd.cmdline.contains("/usr/sbin/sshd -D -e -f "),
            "{}",
            sshd.cmdline
        );
        assert_eq!(
            listening_on(sshd.pid),
            BTreeSet::from([format!("{ip}:{SSH_PORT}")]),
            "pod {pod}'s sshd listens on its pod IP only"
        );
        sshd_of_pod.insert(pod.clone(), (sshd.pid, ip.clone()));
    }
    let wildcard: Vec<String> = tcp_listeners()
        .into_iter()
        .map(|(a, _)| a)
        .filter(|a| {
            a == &format!("0.0.0.0:{SSH_PORT}")
                || a == &format!("[::]:{SSH_PORT}")
                || a.ends_with(":22")
        })
        .collect();
    assert!(
        wildcard.is_empty(),
        "nothing listens on every address at {SSH_PORT}, nor on port 22: {wildcard:?}"
    );

    // Each pod's orted: in a session of that pod's sshd, reached on that pod's IP, with that
    // pod's worker's environment; each rank a child of its pod's orted.
    let mut pods_with_daemon = BTreeSet::new();
    for orted in snapshot.iter().filter(|p| p.name == "orted") {
        let listener = listener_of(orted, &every)
            .unwrap_or_else(|| panic!("orted {} is not below an sshd: {orted:?}", orted.pid));
        let agent = every.get(&listener.ppid).expect("the sshd's parent");
        let pod = agent
            .env
            .get("T2_POD_NAME")
            .cloned()
            .unwrap_or_else(|| panic!("orted {}'s sshd was started by {agent:?}", orted.pid));
        let (sshd_pid, ip) = sshd_of_pod.get(&pod).expect("an agent of the job");
        assert_eq!(
            *sshd_pid, listener.pid,
            "orted {} under another sshd",
            orted.pid
        );
        let server = orted
            .env
            .get("SSH_CONNECTION")
            .and_then(|c| c.split_whitespace().nth(2))
            .unwrap_or_else(|| panic!("orted {} is no ssh session's: {orted:?}", orted.pid));
        assert_eq!(server, ip, "orted of pod {pod} reached on another address");
        let worker = pod.rsplit('-').next().expect("the pod's ordinal");
        assert_eq!(
            orted.env.get("T2_WORKER_ID").map(String::as_str),
            Some(worker),
            "orted of pod {pod} has that worker's environment"
        );
        assert_eq!(orted.env.get("T2_JOB_ID"), Some(&id));
        assert!(
            !orted.env.contains_key("T2_JOB_TOKEN"),
            "the job token leaked into the session"
        );
        pods_with_daemon.insert(pod);
    }
    assert_eq!(
        pods_with_daemon,
        (0..3).map(|w| format!("{id}-{w}")).collect(),
        "one orted per worker pod"
    );
    for rank in snapshot.iter().filter(|p| p.name == "allreduce") {
        let parent = every.get(&rank.ppid).expect("the rank's parent");
        assert_eq!(
            parent.name, "orted",
            "rank {} has parent {parent:?}",
            rank.pid
        );
        assert_eq!(parent.env.get("T2_WORKER_ID"), rank.env.get("T2_WORKER_ID"));
    }

    ns.completed(submit, &id, JOB_DEADLINE).await;
    assert_allreduce_of_6_ranks(&ns, &id);
    // Nothing of the job is left: no object, no process of the pods (sshd and its sessions
    // included), none with the job's environment anywhere on the machine.
    ns.assert_all_gone(&id, Duration::from_secs(90)).await;
    ns.until("no process of the job", Duration::from_secs(60), || async {
        let left: Vec<Proc> = all_procs()
            .into_iter()
            .filter(|p| {
                p.env.get("T2_NAMESPACE") == Some(&ns.name) || p.env.get("T2_JOB_ID") == Some(&id)
            })
            .collect();
        (left.is_empty() && ns_tree(&ns.name).is_empty()).then_some(())
    })
    .await;
}
