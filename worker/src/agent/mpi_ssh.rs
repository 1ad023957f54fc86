//! Twister2's way of running OpenMPI, for images that insist on sshd: with an SSH-key Secret
//! mounted (`kubernetes.mpi_ssh_secret`), every agent of an MPI job starts its own sshd (as the
//! agent's user, on an unprivileged port, only the Secret's `authorized_keys` accepted) and
//! worker 0's mpirun reaches the others with ssh and the Secret's private key. The keys are
//! copied into the worker's scratch folder with mode 0600 (ssh refuses group-readable keys,
//! and Secret volumes are group-readable so that the pods' user can read them).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::info;

use super::exec::Known;
use super::mpi::SSH_PORT;
use super::AgentError;

/// The keys the SSH-key Secret must have: the private key mpirun's ssh uses, and the public
/// keys sshd accepts.
pub const SECRET_KEYS: [&str; 2] = ["id_rsa", "authorized_keys"];

fn io(what: String) -> impl FnOnce(std::io::Error) -> AgentError {
    move |source| AgentError::Io { what, source }
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

/// Prepares the keys and a host key in `scratch/ssh`, starts `sshd -D` listening on `host`,
/// and returns the private key for mpirun's ssh.
pub fn start_sshd(
    secret: &Path,
    scratch: &Path,
    host: &str,
    known: &Arc<Known>,
) -> Result<PathBuf, AgentError> {
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
    let config = dir.join("sshd_config");
    let text = format!(
        "Port {SSH_PORT}\nListenAddress {host}\nHostKey {}\nAuthorizedKeysFile {}\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
         StrictModes no\nPidFile none\nPermitUserEnvironment no\nX11Forwarding no\n",
        host_key.display(),
        authorized.display()
    );
    std::fs::write(&config, text).map_err(io(format!("cannot write {}", config.display())))?;
    let mut cmd = tokio::process::Command::new("/usr/sbin/sshd");
    cmd.arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let child = known.spawn(&mut cmd).map_err(io(
        "cannot start /usr/sbin/sshd (the image needs openssh-server)".into(),
    ))?;
    info!(
        pid = child.id(),
        port = SSH_PORT,
        "sshd started for mpirun (kubernetes.mpi_ssh_secret)"
    );
    // The agent's sweep at its end stops sshd with everything else it started.
    std::mem::forget(child);
    Ok(key)
}
