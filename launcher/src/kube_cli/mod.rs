//! The command line of the `kubernetes` cluster: flags shared by its commands
//! ([`args`]), `t2 submit kubernetes` ([`submit`]), and `t2 gc/doctor` and the hidden `t2 pod
//! …` roles ([`commands`]). The work itself is in the library (`t2_kubernetes`);
//! which cluster a command means, and the commands every cluster has, are `crate::cluster`.

pub mod args;
pub mod commands;
pub mod submit;

pub use args::{ClusterTarget, KubeCommand};

use crate::error::LauncherError;

/// A Kubernetes error as a launcher error (one line; the error is kept as the source).
pub fn err(e: t2_kubernetes::KubeError) -> LauncherError {
    LauncherError::Kubernetes(Box::new(e))
}

/// Who runs this command, for the owner label: `$USER`, else `$LOGNAME`.
pub fn user() -> String {
    let raw = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    t2_kubernetes::checks::label_value(&raw)
}
