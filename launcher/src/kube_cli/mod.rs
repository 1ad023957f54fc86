//! The command line of the `kubernetes` cluster: flags shared by its commands
//! ([`args`]), `t2 submit kubernetes` ([`submit`]), and `t2 gc/doctor` and the hidden `t2 pod
//! …` roles ([`commands`]). The work itself is in the library (`t2_launcher::kubernetes`);
//! which cluster a command means, and the commands every cluster has, are `crate::cluster`.

pub mod args;
pub mod commands;
pub mod submit;

pub use args::{ClusterTarget, KubeCommand, KubeSubmitArgs};

use crate::error::LauncherError;

/// A Kubernetes error as a launcher error (one line).
pub fn err(e: t2_launcher::kubernetes::KubeError) -> LauncherError {
    LauncherError::Cluster(e.to_string())
}

/// Who runs this command, for the owner label: `$USER`, else `$LOGNAME`.
pub fn user() -> String {
    let raw = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    t2_launcher::kubernetes::checks::label_value(&raw)
}
