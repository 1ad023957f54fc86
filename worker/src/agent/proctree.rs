//! Process trees from `/proc`: the descendants of a process, and ending them. MPI daemons and
//! ranks put themselves in process groups of their own (OpenMPI calls `setpgid`), so ending a
//! group is not enough to leave nothing behind; an agent of an MPI job is a child subreaper
//! (orphans of its tree become its children) and ends trees by parent links instead.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

/// Every live (not zombie) process and its parent.
fn parents() -> HashMap<u32, u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the parenthesised name: state ppid ...
            let rest = stat.rsplit(')').next()?;
            let mut fields = rest.split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse::<u32>().ok()?;
            (state != "Z" && state != "X").then_some((pid, ppid))
        })
        .collect()
}

/// The live descendants of `root` (not `root` itself), parents before children.
pub fn descendants(root: u32) -> Vec<u32> {
    let parents = parents();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, &ppid) in &parents {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut queue = vec![root];
    let mut seen = BTreeSet::new();
    while let Some(p) = queue.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(c) {
                out.push(c);
                queue.push(c);
            }
        }
    }
    out
}

/// True when `pid` is alive and not a zombie.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                .map(|st| st != "Z" && st != "X")
        })
        .unwrap_or(false)
}

/// Sends `sig` to `pid` and its whole tree.
pub fn signal_tree(pid: u32, sig: Signal) {
    let mut all = descendants(pid);
    all.insert(0, pid);
    for p in all {
        let _ = kill(Pid::from_raw(p as i32), sig);
    }
}

/// Ends everything below this process except `keep` (and their trees): SIGKILL, repeated
/// until nothing is left or `deadline` passes (a fork racing the kill is caught the next
/// round). Reaps the ones that became this process's children (orphans a subreaper adopted);
/// `keep` is left to whoever waits for it. Returns how many processes were killed.
pub fn kill_all_below_me(keep: &[u32], deadline: Duration) -> usize {
    let me = std::process::id();
    let start = Instant::now();
    let mut killed = BTreeSet::new();
    loop {
        let parents = parents();
        let kept: BTreeSet<u32> = keep
            .iter()
            .flat_map(|&k| std::iter::once(k).chain(descendants(k)))
            .collect();
        let doomed: Vec<u32> = descendants(me)
            .into_iter()
            .filter(|p| !kept.contains(p))
            .collect();
        if doomed.is_empty() || start.elapsed() > deadline {
            break;
        }
        for &p in &doomed {
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
            killed.insert(p);
        }
        for &p in &doomed {
            if parents.get(&p) == Some(&me) {
                reap(p);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    killed.len()
}

/// Reaps `pid` (a child of this process that is not a tokio child) if it has exited.
pub fn reap(pid: u32) {
    let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
}

/// Makes this process a child subreaper: orphans of its descendants become its children
/// instead of init's, so their tree can still be found and ended.
pub fn become_subreaper() -> bool {
    nix::sys::prctl::set_child_subreaper(true).is_ok()
}
