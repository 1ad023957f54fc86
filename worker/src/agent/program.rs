//! Starting the user program with the t2 environment, and ending it politely (SIGTERM, then
//! SIGKILL after a grace period).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::AgentError;

/// Finds `program` the way a shell would, but relative paths mean the package root.
pub fn resolve(program: &str, work_dir: &Path, path_var: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = Path::new(program);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            work_dir.join(p)
        };
        return full.is_file().then_some(full);
    }
    std::env::split_paths(path_var)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// `PATH` with the directory of the running `t2` first, so `t2 worker …` works in jobs.
pub fn path_with_t2() -> String {
    let current = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    match std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        Some(dir) => format!("{}:{current}", dir.display()),
        None => current,
    }
}

/// Starts `command` in `work_dir` with `env` added.
pub fn start(
    command: &[String],
    work_dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Child, AgentError> {
    let (mut cmd, resolved) = prepare(command, work_dir, env)?;
    cmd.spawn()
        .map_err(|e| AgentError::Program(format!("cannot start '{}': {e}", resolved.display())))
}

/// The command that [`start`] would spawn (stdin closed, killed when dropped), and the
/// program's resolved path.
pub fn prepare(
    command: &[String],
    work_dir: &Path,
    env: &BTreeMap<String, String>,
) -> Result<(Command, PathBuf), AgentError> {
    let Some(program) = command.first() else {
        return Err(AgentError::Program(
            "the job spec has an empty command".into(),
        ));
    };
    let path_var = env.get("PATH").cloned().unwrap_or_else(path_with_t2);
    let resolved = resolve(program, work_dir, &path_var).ok_or_else(|| {
        AgentError::Program(format!(
            "command '{program}' not found in the package ({}) or on PATH",
            work_dir.display()
        ))
    })?;
    let mut cmd = Command::new(&resolved);
    cmd.args(&command[1..])
        .current_dir(work_dir)
        .envs(env)
        .env("PATH", path_var)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    Ok((cmd, resolved))
}

/// Sends SIGTERM, waits up to `grace`, then SIGKILLs.
pub async fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    if let Some(pid) = child.id() {
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    }
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status.ok(),
        Err(_) => {
            let _ = child.kill().await;
            child.wait().await.ok()
        }
    }
}

/// `exited with code 3` or `killed by signal 9 (SIGKILL)`.
pub fn describe(status: &ExitStatus) -> (i32, String) {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        (code, format!("exited with code {code}"))
    } else if let Some(sig) = status.signal() {
        let name = Signal::try_from(sig).map(|s| s.as_str()).unwrap_or("?");
        (128 + sig, format!("killed by signal {sig} ({name})"))
    } else {
        (-1, "ended in an unknown way".into())
    }
}
