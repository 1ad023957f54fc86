//! Process helpers for the local cluster: spawning `t2` roles in their own process groups,
//! signalling groups, and checking whether a process of a job is still alive.

use std::path::Path;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The running `t2` binary.
pub fn t2_exe() -> std::path::PathBuf {
    std::env::current_exe().unwrap_or_else(|_| "t2".into())
}

/// Sends `sig` to the process group led by `pid`; false when it no longer exists.
pub fn signal_group(pid: u32, sig: Signal) -> bool {
    killpg(Pid::from_raw(pid as i32), sig).is_ok()
}

/// True when `pid` is alive (and not a zombie) and its command line mentions `needle`.
pub fn alive_with(pid: u32, needle: &str) -> bool {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return false;
    };
    // Field 3 (after the parenthesised name) is the state; Z is a zombie.
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().next());
    if state == Some("Z") || state == Some("X") {
        return false;
    }
    std::fs::read(proc_dir.join("cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(needle))
        .unwrap_or(false)
}

/// True when any process of the process group `pgid` is alive.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(rest) = stat.rsplit(')').next() else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // rest: state ppid pgrp ...
        fields.len() > 2 && fields[0] != "Z" && fields[0] != "X" && fields[2] == pgid.to_string()
    })
}

/// Every live process with `arg` as one of its command-line arguments (e.g. a job folder
/// after `--job-dir`).
pub fn pids_with_arg(arg: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == arg.as_bytes()))
        })
        .collect()
}

/// Every live process whose environment has `name=value` (readable ones: all of them as root,
/// one's own otherwise). A job's programs, MPI daemons and MPI ranks all carry
/// `T2_JOB_ID=<job>`, even those that left their agent's process group.
pub fn pids_with_env(name: &str, value: &str) -> Vec<u32> {
    let wanted = format!("{name}={value}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == wanted.as_bytes()))
        })
        .filter(|&pid| t2_worker::agent::proctree::alive(pid))
        .collect()
}
