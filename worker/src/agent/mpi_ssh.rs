//! Twister2's way of running OpenMPI, for images that insist on sshd: with an SSH-key Secret
//! mounted (`kubernetes.mpi_ssh_secret`), every agent of an MPI job starts its own sshd (as the
//! agent's user, on its worker's address and an unprivileged port, only the Secret's
//! `authorized_keys` accepted, every session given the worker's environment) and worker 0's
//! mpirun reaches the others with ssh and the Secret's private key. The keys are copied into
//! the worker's scratch folder with mode 0600 (ssh refuses group-readable keys, and Secret
//! volumes are group-readable so that the pods' user can read them).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Child;
use tracing::{info, warn};

use super::exec::Known;
use super::mpi::SSH_PORT;
use super::AgentError;

/// The keys the SSH-key Secret must have: the private key mpirun's ssh uses, and the public
/// keys sshd accepts.
pub const SECRET_KEYS: [&str; 2] = ["id_rsa", "authorized_keys"];
/// sshd's privilege-separation folder, which it requires when it runs as root.
const PRIVSEP_DIR: &str = "/run/sshd";
/// How long a started sshd may take to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

fn io(what: String) -> impl FnOnce(std::io::Error) -> AgentError {
    move |source| AgentError::Io { what, source }
}

/// The files of this worker's sshd, in `scratch/ssh`.
#[derive(Debug, Clone)]
pub struct SshFiles {
    /// The private key mpirun's ssh uses.
    pub key: PathBuf,
    authorized: PathBuf,
    host_key: PathBuf,
    config: PathBuf,
}

/// Copies `name` from the Secret folder into `dir` with mode 0600.
fn private_copy(secret: &Path, dir: &Path, name: &str) -> Result<PathBuf, AgentError> {
    let from = secret.join(name);
    let to = dir.join(name);
    std::fs::copy(&from, &to).map_err(io(format!(
        "cannot read {} (the MPI SSH Secret must have the keys id_rsa and authorized_keys)",
        from.display()
    )))?;
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("cannot protect {}", to.display())))?;
    Ok(to)
}

/// Prepares the keys and a host key in `scratch/ssh` (at the agent's start, so that a broken
/// Secret fails the worker at once), and, as root, sshd's privilege-separation folder, which
/// Debian's package leaves to its service to make (an image that never runs that service,
/// such as a container's, lacks it).
pub fn prepare(secret: &Path, scratch: &Path) -> Result<SshFiles, AgentError> {
    let dir = scratch.join("ssh");
    std::fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("cannot protect {}", dir.display())))?;
    let [key_name, authorized_name] = SECRET_KEYS;
    let key = private_copy(secret, &dir, key_name)?;
    let authorized = private_copy(secret, &dir, authorized_name)?;
    let host_key = dir.join("ssh_host_ed25519_key");
    if !host_key.exists() {
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&host_key)
            .status()
            .map_err(io(
                "cannot run ssh-keygen (the image needs openssh-client)".into()
            ))?;
        if !status.success() {
            return Err(AgentError::Program(format!(
                "ssh-keygen could not make a host key in {}",
                dir.display()
            )));
        }
    }
    if super::mpi::running_as_root() && !Path::new(PRIVSEP_DIR).is_dir() {
        std::fs::create_dir_all(PRIVSEP_DIR)
            .and_then(|()| {
                std::fs::set_permissions(PRIVSEP_DIR, std::fs::Permissions::from_mode(0o755))
            })
            .map_err(io(format!(
                "cannot create {PRIVSEP_DIR} (sshd's privilege-separation folder, which it needs as root)"
            )))?;
    }
    Ok(SshFiles {
        key,
        authorized,
        host_key,
        config: dir.join("sshd_config"),
    })
}

/// One `SetEnv` argument of sshd_config, `"NAME=VALUE"` with `\` and `"` escaped (how sshd
/// splits its lines), or `None` for what a config line cannot hold (a line break, a NUL).
fn setenv_arg(name: &str, value: &str) -> Option<String> {
    let bad = |s: &str| s.contains(['\n', '\r', '\0']) || s.is_empty();
    if bad(name) || name.contains(['=', ' ', '\t', '"', '\\']) || value.contains(['\n', '\r', '\0'])
    {
        return None;
    }
    let escaped = format!("{name}={value}")
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    Some(format!("\"{escaped}\""))
}

/// sshd's configuration: listening on `host` only, the Secret's keys only, and `env` set in
/// every session (sshd gives its sessions a fresh environment; the daemons and ranks mpirun
/// starts through it need the worker's, as `t2 worker rsh` gives them). Returns it and the
/// names of the variables a config line cannot hold.
pub fn config_text(
    files: &SshFiles,
    host: &str,
    env: &BTreeMap<String, String>,
) -> (String, Vec<String>) {
    let mut text = format!(
        "Port {SSH_PORT}\nListenAddress {host}\nHostKey {}\nAuthorizedKeysFile {}\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
         StrictModes no\nPidFile none\nPermitUserEnvironment no\nX11Forwarding no\n\
         AllowTcpForwarding no\nAllowAgentForwarding no\n",
        files.host_key.display(),
        files.authorized.display()
    );
    // One line: sshd takes the first SetEnv line it reads and ignores every later one.
    let mut args = Vec::new();
    let mut skipped = Vec::new();
    for (k, v) in env {
        match setenv_arg(k, v) {
            Some(arg) => args.push(arg),
            None => skipped.push(k.clone()),
        }
    }
    if !args.is_empty() {
        text.push_str(&format!("SetEnv {}\n", args.join(" ")));
    }
    (text, skipped)
}

/// Starts `sshd -D` on `host` with the worker's `env` for its sessions (once the worker knows
/// it: all workers joined), and waits until it listens. The agent's sweep at its end stops
/// sshd with everything else it started; the returned child is killed when dropped.
pub async fn start_sshd(
    files: &SshFiles,
    host: &str,
    env: &BTreeMap<String, String>,
    known: &Arc<Known>,
) -> Result<Child, AgentError> {
    let (text, skipped) = config_text(files, host, env);
    if !skipped.is_empty() {
        warn!(
            ?skipped,
            "variables a line of sshd_config cannot hold (line breaks) are not given to sshd's sessions"
        );
    }
    std::fs::write(&files.config, text)
        .map_err(io(format!("cannot write {}", files.config.display())))?;
    std::fs::set_permissions(&files.config, std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("cannot protect {}", files.config.display())))?;
    let mut cmd = tokio::process::Command::new("/usr/sbin/sshd");
    cmd.arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&files.config)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = known.spawn(&mut cmd).map_err(io(
        "cannot start /usr/sbin/sshd (the image needs openssh-server)".into(),
    ))?;
    let deadline = tokio::time::Instant::now() + LISTEN_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(AgentError::Program(format!(
                "sshd for mpirun (kubernetes.mpi_ssh_secret) exited at its start ({status}); see its message above"
            )));
        }
        if tokio::net::TcpStream::connect((host, SSH_PORT))
            .await
            .is_ok()
        {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(AgentError::Program(format!(
                "sshd for mpirun does not listen on {host}:{SSH_PORT} after {LISTEN_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    info!(
        pid = child.id(),
        host,
        port = SSH_PORT,
        "sshd started for mpirun (kubernetes.mpi_ssh_secret)"
    );
    Ok(child)
}

/// Worker 0, before mpirun: waits until the sshd of every host listens (each agent starts its
/// own once all workers joined, so some may still be starting), for at most `deadline`.
pub async fn wait_for_sshds(hosts: &[String], deadline: Duration) -> Result<(), AgentError> {
    let until = tokio::time::Instant::now() + deadline;
    for host in hosts {
        while tokio::net::TcpStream::connect((host.as_str(), SSH_PORT))
            .await
            .is_err()
        {
            if tokio::time::Instant::now() > until {
                return Err(AgentError::Program(format!(
                    "the sshd of worker host {host} (port {SSH_PORT}) did not listen within {deadline:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_get_the_workers_environment_quoted_as_sshd_splits_it() {
        let files = SshFiles {
            key: "/s/id_rsa".into(),
            authorized: "/s/authorized_keys".into(),
            host_key: "/s/hk".into(),
            config: "/s/sshd_config".into(),
        };
        let env: BTreeMap<String, String> = [
            ("T2_CONFIG", r#"{"a":"b c\d"}"#),
            ("T2_WORKER_ID", "1"),
            ("BAD", "two\nlines"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (text, skipped) = config_text(&files, "10.0.0.7", &env);
        assert!(text.contains("ListenAddress 10.0.0.7\n"), "{text}");
        assert!(text.contains(&format!("Port {SSH_PORT}\n")));
        assert!(text.contains("AuthorizedKeysFile /s/authorized_keys\n"));
        assert!(
            text.contains(r#"SetEnv "T2_CONFIG={\"a\":\"b c\\d\"}" "T2_WORKER_ID=1""#),
            "{text}"
        );
        assert_eq!(text.matches("SetEnv").count(), 1, "{text}");
        assert!(!text.contains("BAD"));
        assert_eq!(skipped, vec!["BAD".to_string()]);
        assert_eq!(setenv_arg("A B", "x"), None);
        assert_eq!(setenv_arg("", "x"), None);
    }
}
