//! OpenMPI jobs (`mpi: true`): worker 0's agent runs `mpirun` over a hostfile of every worker,
//! with t2 itself as OpenMPI's remote shell (`--mca plm_rsh_agent "t2 worker rsh"`), so each
//! worker's daemon (`orted`) is started by that worker's agent — no sshd, no keys. This module
//! builds the hostfile, the mpirun command line and the environments, and turns mpirun's
//! last words into the job's failure reason.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use t2_core::spec::MpiSpec;
use t2_proto::WorkerInfo;

/// Set (by the Kubernetes backend) to the folder of an SSH-key Secret (`id_rsa`,
/// `authorized_keys`) for Twister2's mode: every agent starts sshd on [`SSH_PORT`] and mpirun
/// reaches the workers with ssh instead of `t2 worker rsh`.
pub const SSH_DIR_ENV: &str = "T2_MPI_SSH_DIR";
/// The port of the agents' sshd in that mode (unprivileged: agents do not run as root).
pub const SSH_PORT: u16 = 2222;

/// How many of mpirun's last stderr lines are kept for the failure reason.
pub const KEEP_LINES: usize = 60;
/// The longest failure reason taken from mpirun's output.
const MAX_REASON: usize = 600;
/// How many dashes at the start or end of a line make a rule glued to it (OpenMPI's are 74).
const GLUED_RULE: usize = 20;

/// The hostfile: one line per worker, `HOST slots=N`, in worker order.
pub fn hostfile(workers: &[WorkerInfo], slots: u32) -> String {
    let mut sorted: Vec<&WorkerInfo> = workers.iter().collect();
    sorted.sort_by_key(|w| w.worker_id);
    sorted
        .iter()
        .map(|w| format!("{} slots={slots}\n", w.host))
        .collect()
}

/// Every worker a host of its own: mpirun would merge workers sharing a host into one node
/// and start one daemon for them. Returns the first host two workers share.
pub fn shared_host(workers: &[WorkerInfo]) -> Option<String> {
    let mut seen = std::collections::BTreeSet::new();
    workers
        .iter()
        .find(|w| !seen.insert(w.host.as_str()))
        .map(|w| w.host.clone())
}

/// True when every host is a loopback address (the local cluster): OpenMPI is then kept on
/// loopback, so it never tries the machine's other interfaces.
pub fn all_loopback(workers: &[WorkerInfo]) -> bool {
    !workers.is_empty()
        && workers.iter().all(|w| {
            w.host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
        })
}

/// The remote shell mpirun uses: `t2 worker rsh` (this binary), or ssh with the job's key to
/// the agents' sshd.
pub fn rsh_agent(t2: &Path, ssh_key: Option<&Path>) -> String {
    match ssh_key {
        None => format!("{} worker rsh", t2.display()),
        Some(key) => format!(
            "ssh -p {SSH_PORT} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
            key.display()
        ),
    }
}

/// The mpirun command line: the hostfile, one rank per slot, `rsh` as the remote shell,
/// loopback-only transports when `loopback`, the job's own `mpirun_args`, then the program.
pub fn mpirun_command(
    mpi: &MpiSpec,
    hostfile: &Path,
    num_workers: u32,
    loopback: bool,
    rsh: &str,
    program: &[String],
) -> Vec<String> {
    let ranks = u64::from(num_workers) * u64::from(mpi.slots_per_worker);
    let mut cmd: Vec<String> = vec![
        "mpirun".into(),
        "--hostfile".into(),
        hostfile.display().to_string(),
        "-np".into(),
        ranks.to_string(),
        "--mca".into(),
        "plm_rsh_agent".into(),
        rsh.to_string(),
    ];
    if loopback {
        for key in ["btl_tcp_if_include", "oob_tcp_if_include"] {
            cmd.extend(["--mca".into(), key.into(), "127.0.0.0/8".into()]);
        }
    }
    cmd.extend(mpi.mpirun_args.iter().cloned());
    cmd.extend(program.iter().cloned());
    cmd
}

/// A folder of this worker for OpenMPI's session files and shared-memory segments:
/// `RUN_DIR/mpi`, or a short one under the temp directory when that path would be too long
/// for the Unix sockets OpenMPI makes inside it. Returns it and whether it is outside the
/// job folder (and must be removed at the end).
pub fn scratch_dir(run_dir: &Path, job_id: &str, worker_id: u32) -> (PathBuf, bool) {
    let inside = run_dir.join("mpi");
    if inside.as_os_str().len() <= 48 {
        (inside, false)
    } else {
        let short = format!(
            "t2mpi-{}-{worker_id}",
            &job_id[job_id.len().saturating_sub(8)..]
        );
        (std::env::temp_dir().join(short), true)
    }
}

/// What both mpirun and the daemons need: their session files in this worker's scratch
/// folder, and (as root) OpenMPI's consent to run as root.
pub fn base_env(scratch: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("TMPDIR".into(), scratch.display().to_string());
    if running_as_root() {
        env.insert("OMPI_ALLOW_RUN_AS_ROOT".into(), "1".into());
        env.insert("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM".into(), "1".into());
    }
    env
}

/// True when this process runs as root (the owner of `/proc/self` is the effective user).
pub(crate) fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The environment of a daemon this worker runs for mpirun: [`base_env`] plus the
/// shared-memory segments in this worker's own folder (workers on one machine would
/// otherwise share segment names, as they share a host name).
pub fn daemon_env(scratch: &Path) -> BTreeMap<String, String> {
    let mut env = base_env(scratch);
    env.insert(
        "OMPI_MCA_btl_vader_backing_directory".into(),
        scratch.display().to_string(),
    );
    env
}

/// The last lines of mpirun's stderr.
#[derive(Debug, Default)]
pub struct LastLines(VecDeque<String>);

impl LastLines {
    /// Keeps `line` (and at most [`KEEP_LINES`]). A rule glued to the start or the end of
    /// a line (processes writing to one stderr at once, as "recv(17) failed: …(104)-----"
    /// with no newline between) is kept as a line of its own, so blocks still pair up.
    pub fn push(&mut self, line: &str) {
        let text = line.trim();
        let glued = |dashes: usize| if dashes >= GLUED_RULE { dashes } else { 0 };
        let lead = glued(text.len() - text.trim_start_matches('-').len());
        let trail = glued(text.len() - text.trim_end_matches('-').len());
        if lead == text.len() || (lead == 0 && trail == 0) {
            // A rule of its own, or a line with no rule glued to it.
            return self.keep(line);
        }
        let (rule_before, rest) = text.split_at(lead);
        let (middle, rule_after) = rest.split_at(rest.len() - trail);
        for piece in [rule_before, middle, rule_after] {
            if !piece.is_empty() {
                self.keep(piece);
            }
        }
    }

    fn keep(&mut self, line: &str) {
        if self.0.len() == KEEP_LINES {
            self.0.pop_front();
        }
        self.0.push_back(line.to_string());
    }

    /// mpirun's own message: its last block enclosed in `-----` rules (how OpenMPI prints
    /// its messages; lines outside rules, such as "1 more process has sent help message",
    /// are skipped), or its last line when it printed no such block, as one line.
    pub fn message(&self) -> Option<String> {
        let rule = |l: &str| l.trim().len() >= 5 && l.trim().chars().all(|c| c == '-');
        let mut blocks: Vec<Vec<&str>> = Vec::new();
        let mut open: Option<Vec<&str>> = None;
        for l in &self.0 {
            if rule(l) {
                match open.take() {
                    Some(b) => blocks.push(b),
                    None => open = Some(Vec::new()),
                }
            } else if let Some(b) = open.as_mut() {
                if !l.trim().is_empty() {
                    b.push(l.trim());
                }
            }
        }
        let block = match blocks.into_iter().rev().find(|b| !b.is_empty()) {
            Some(b) => b,
            None => vec![self.0.iter().rev().find(|l| !l.trim().is_empty())?.trim()],
        };
        let text: String = block
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Some(if text.len() > MAX_REASON {
            let mut cut = MAX_REASON;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}…", &text[..cut])
        } else {
            text
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: u32, host: &str) -> WorkerInfo {
        WorkerInfo {
            worker_id: id,
            host: host.into(),
            ..Default::default()
        }
    }

    #[test]
    fn hostfile_lists_every_worker_in_order() {
        let ws = [w(1, "127.1.0.3"), w(0, "127.1.0.2")];
        assert_eq!(hostfile(&ws, 2), "127.1.0.2 slots=2\n127.1.0.3 slots=2\n");
        assert!(all_loopback(&ws));
        assert!(!all_loopback(&[w(0, "10.0.0.4")]));
        assert_eq!(shared_host(&ws), None);
        assert_eq!(
            shared_host(&[w(0, "10.0.0.4"), w(1, "10.0.0.4")]),
            Some("10.0.0.4".into())
        );
    }

    #[test]
    fn mpirun_gets_ranks_the_rsh_agent_and_the_program() {
        let mpi = MpiSpec {
            enabled: true,
            slots_per_worker: 2,
            mpirun_args: vec!["--bind-to".into(), "none".into()],
        };
        let cmd = mpirun_command(
            &mpi,
            Path::new("/j/hostfile"),
            4,
            true,
            &rsh_agent(Path::new("/usr/bin/t2"), None),
            &["./allreduce".into(), "x".into()],
        );
        let text = cmd.join(" ");
        assert!(text.starts_with("mpirun --hostfile /j/hostfile -np 8 --mca plm_rsh_agent"));
        assert!(cmd.contains(&"/usr/bin/t2 worker rsh".to_string()));
        assert!(text.contains("--mca btl_tcp_if_include 127.0.0.0/8"));
        assert!(text.ends_with("--bind-to none ./allreduce x"));
        let remote = mpirun_command(&mpi, Path::new("h"), 1, false, "ssh", &[]);
        assert!(!remote.join(" ").contains("if_include"));
        let ssh = rsh_agent(Path::new("t2"), Some(Path::new("/s/id_rsa")));
        assert!(ssh.starts_with("ssh -p 2222 -i /s/id_rsa "), "{ssh}");
    }

    #[test]
    fn the_failure_message_is_mpiruns_last_block() {
        let mut last = LastLines::default();
        for l in [
            "[vm:1] *** Process received signal ***",
            "--------------------------------------------------------------------------",
            "Primary job  terminated normally, but 1 process returned",
            "a non-zero exit code. Per user-direction, the job has been aborted.",
            "--------------------------------------------------------------------------",
            "--------------------------------------------------------------------------",
            "mpirun noticed that process rank 2 with PID 15210 on node 127.0.0.3 exited on",
            "signal 11 (Segmentation fault).",
            "--------------------------------------------------------------------------",
            "[vm:9] 1 more process has sent help message help-mpi-btl-tcp.txt / client connect fail",
            "[vm:9] Set MCA parameter \"orte_base_help_aggregate\" to 0 to see all help / error messages",
        ] {
            last.push(l);
        }
        assert_eq!(
            last.message().as_deref(),
            Some("mpirun noticed that process rank 2 with PID 15210 on node 127.0.0.3 exited on signal 11 (Segmentation fault).")
        );
        // A rule glued to another process's line, as seen in CI.
        let mut glued = LastLines::default();
        let rule = "-".repeat(74);
        for l in [
            rule.as_str(),
            "WARNING: Open MPI failed to TCP connect to a peer MPI process.  This",
            "  Message:    connect() to 127.0.0.1:1030 failed",
            rule.as_str(),
            &format!("[vm][[12865,1],4][btl_tcp.c:559:mca_btl_tcp_recv_blocking] recv(17) failed: Connection reset by peer (104){rule}"),
            "mpirun noticed that process rank 3 with PID 24319 on node 127.1.0.3 exited on signal 11 (Segmentation fault).",
            rule.as_str(),
            "[vm:24255] 1 more process has sent help message help-mpi-btl-tcp.txt / client connect fail",
        ] {
            glued.push(l);
        }
        assert_eq!(
            glued.message().as_deref(),
            Some("mpirun noticed that process rank 3 with PID 24319 on node 127.1.0.3 exited on signal 11 (Segmentation fault).")
        );
        // And a rule with another process's line glued after it.
        let mut before = LastLines::default();
        for l in [
            format!("{rule}[vm] recv(17) failed: Connection reset by peer (104)"),
            "mpirun noticed that process rank 1 exited on signal 11 (Segmentation fault).".into(),
            rule.clone(),
        ] {
            before.push(&l);
        }
        assert_eq!(
            before.message().as_deref(),
            Some("[vm] recv(17) failed: Connection reset by peer (104) mpirun noticed that process rank 1 exited on signal 11 (Segmentation fault).")
        );
        let mut plain = LastLines::default();
        plain.push("mpirun was unable to launch");
        assert_eq!(
            plain.message().as_deref(),
            Some("mpirun was unable to launch")
        );
        assert_eq!(LastLines::default().message(), None);
        let mut many = LastLines::default();
        for i in 0..200 {
            many.push(&format!("line {i}"));
        }
        assert_eq!(many.message().as_deref(), Some("line 199"));
        assert_eq!(many.0.len(), KEEP_LINES);
        let mut long = LastLines::default();
        long.push("-----");
        long.push(&"x".repeat(2000));
        long.push("-----");
        assert!(long
            .message()
            .is_some_and(|m| m.chars().count() == MAX_REASON + 1));
    }
}
