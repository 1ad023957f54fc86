//! The local cluster behind the [`Cluster`] trait: jobs are folders under `$T2_HOME/jobs`
//! and processes on this machine (`crate::local`); the commands read the job folder
//! (`crate::commands`).

use std::path::PathBuf;

use t2_core::jobdir::{t2_home, RecordedState};

use super::Cluster;
use crate::cli::{Output, SubmitArgs};
use crate::commands::logs::LogOptions;
use crate::error::LauncherError;
use crate::{commands, local, prepare, uploader};

/// This machine, with its jobs under `$T2_HOME`.
pub struct LocalCluster {
    home: PathBuf,
}

impl LocalCluster {
    /// The local cluster of `$T2_HOME`.
    pub fn new() -> Result<Self, LauncherError> {
        Ok(Self { home: t2_home()? })
    }
}

impl Cluster for LocalCluster {
    fn submit(&self, args: SubmitArgs) -> Result<i32, LauncherError> {
        if let Some(flag) = args.kube.first_given() {
            return Err(LauncherError::Usage(format!(
                "{flag} is for kubernetes jobs (t2 submit kubernetes …); a local job runs on this machine"
            )));
        }
        uploader::job::check(
            args.uploader.as_deref(),
            args.uploader_token.as_deref(),
            args.uploader_ca.as_deref(),
        )?;
        let prepared = prepare::prepare(&args, &self.home, "local")?;
        if let Err(e) = uploader::job::configure(
            &prepared.dir,
            args.uploader.as_deref(),
            args.uploader_token.as_deref(),
            args.uploader_ca.as_deref(),
        ) {
            let _ = std::fs::remove_dir_all(prepared.dir.root());
            return Err(e);
        }
        let state = crate::runtime()?.block_on(local::run(prepared, args.detach))?;
        Ok(match state {
            RecordedState::Completed => 0,
            RecordedState::Starting | RecordedState::Running if args.detach => 0,
            RecordedState::Killed => 3,
            _ => 1,
        })
    }

    fn list(&self, output: Output, watch: bool) -> Result<i32, LauncherError> {
        commands::list::run(&self.home, output, watch).map(|_| 0)
    }

    fn status(&self, job: &str, output: Output) -> Result<i32, LauncherError> {
        commands::status::run(&self.home, job, output).map(|_| 0)
    }

    fn logs(&self, job: &str, options: &LogOptions) -> Result<i32, LauncherError> {
        commands::logs::run(&self.home, job, options).map(|_| 0)
    }

    fn describe(&self, job: &str) -> Result<i32, LauncherError> {
        commands::describe::run(&self.home, job).map(|_| 0)
    }

    fn kill(&self, job: &str) -> Result<i32, LauncherError> {
        commands::kill::run(&self.home, job).map(|_| 0)
    }

    fn scale(&self, job: &str, workers: u32) -> Result<i32, LauncherError> {
        commands::scale::run(&self.home, job, workers).map(|_| 0)
    }
}
