//! Which process a PID is, checked before every signal `t2 kill` sends, so that a PID reused
//! after a crash or a reboot is never hit: a process is the job's when it carries the job
//! folder as an argument (job master, agents, a detached supervisor), runs inside it or has
//! the job's `T2_JOB_ID` (user programs), or matches a recorded start time and boot.

use std::path::Path;

use t2_core::jobdir::ProcessMark;

/// This boot's ID (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The fields of `/proc/PID/stat` after the parenthesised command name (field 3 onwards).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// True when `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z" && s != "X"))
}

/// The process group of `pid`.
fn pgid_of(pid: u32) -> Option<u32> {
    stat_fields(pid)?.get(2)?.parse().ok()
}

/// The mark of a live process: this boot and its start time.
pub fn mark_of(pid: u32) -> Option<ProcessMark> {
    // Field 22 overall is index 19 after the name (fields 3.. are indices 0..).
    let start_ticks = stat_fields(pid)?.get(19)?.parse().ok()?;
    Some(ProcessMark {
        boot_id: boot_id()?,
        start_ticks,
    })
}

/// True when `pid` is alive and is the very process `mark` was taken of.
pub fn is_marked(pid: u32, mark: &ProcessMark) -> bool {
    alive(pid) && mark_of(pid).as_ref() == Some(mark)
}

/// True when the live process `pid` belongs to the job in `root` (ID `job`): the folder is one
/// of its arguments, its working folder is inside it, or its environment has `T2_JOB_ID=job`.
pub fn belongs_to_job(pid: u32, root: &Path, job: &str) -> bool {
    if !alive(pid) {
        return false;
    }
    let proc_dir = format!("/proc/{pid}");
    let root_bytes = root.as_os_str().as_encoded_bytes();
    let in_args = std::fs::read(format!("{proc_dir}/cmdline"))
        .is_ok_and(|c| c.split(|&b| b == 0).any(|a| a == root_bytes));
    let in_folder =
        std::fs::read_link(format!("{proc_dir}/cwd")).is_ok_and(|cwd| cwd.starts_with(root));
    let marker = format!("T2_JOB_ID={job}");
    let in_env = std::fs::read(format!("{proc_dir}/environ"))
        .is_ok_and(|e| e.split(|&b| b == 0).any(|v| v == marker.as_bytes()));
    in_args || in_folder || in_env
}

/// The live members of process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| alive(pid) && pgid_of(pid) == Some(pgid))
        .collect()
}

/// True when process group `pgid` is the job's: one of its live members belongs to the job.
/// (A group's ID is not reused while any member lives, so one member of the job is enough.)
pub fn is_job_group(pgid: u32, root: &Path, job: &str) -> bool {
    group_members(pgid)
        .into_iter()
        .any(|pid| belongs_to_job(pid, root, job))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_tell_a_process_from_a_reused_pid() {
        let me = std::process::id();
        let mark = mark_of(me).expect("this process has a mark");
        assert!(is_marked(me, &mark));
        let other = ProcessMark {
            start_ticks: mark.start_ticks + 1,
            ..mark.clone()
        };
        assert!(
            !is_marked(me, &other),
            "another start time is another process"
        );
        let rebooted = ProcessMark {
            boot_id: "another-boot".into(),
            ..mark
        };
        assert!(!is_marked(me, &rebooted), "another boot is another process");
    }

    #[test]
    fn a_process_belongs_to_a_job_by_argument_folder_or_environment() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("jobs").join("pi-abc");
        std::fs::create_dir_all(&root).unwrap();
        // `spawn` returns once the child has exec'd, but the kernel sets the new program's
        // arguments and environment (what /proc shows) a moment later: wait for them.
        let spawn = |cmd: &mut std::process::Command| {
            let child = cmd.spawn().unwrap();
            let cmdline = format!("/proc/{}/cmdline", child.id());
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::fs::read(&cmdline).map_or(true, |c| c.is_empty()) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{cmdline} stayed empty"
                );
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            child
        };
        // `sh -c 'sleep 30; :' sh ROOT`: a shell whose arguments name the job folder.
        let mut by_arg = spawn(
            std::process::Command::new("sh")
                .args(["-c", "sleep 30; :", "sh"])
                .arg(&root),
        );
        let mut by_cwd = spawn(
            std::process::Command::new("sleep")
                .arg("30")
                .current_dir(&root),
        );
        let mut by_env = spawn(
            std::process::Command::new("sleep")
                .arg("30")
                .env("T2_JOB_ID", "pi-abc"),
        );
        let mut stranger = spawn(
            std::process::Command::new("sleep")
                .arg("30")
                .env("T2_JOB_ID", "pi-abcd"),
        );
        for child in [&by_arg, &by_cwd, &by_env] {
            assert!(
                belongs_to_job(child.id(), &root, "pi-abc"),
                "pid {}",
                child.id()
            );
        }
        assert!(!belongs_to_job(stranger.id(), &root, "pi-abc"));
        assert!(!belongs_to_job(std::process::id(), &root, "pi-abc"));
        for c in [&mut by_arg, &mut by_cwd, &mut by_env, &mut stranger] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
