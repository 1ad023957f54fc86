//! Reading a local job's own files (its merged spec and its token) with one-line errors; the
//! job master and agent roles, the supervisor and the job commands all read them this way.

use t2_core::jobdir::JobDir;
use t2_core::spec::JobSpec;

use crate::error::LauncherError;

/// The job's merged spec (`spec.json`).
pub fn read_spec(dir: &JobDir) -> Result<JobSpec, LauncherError> {
    let text = std::fs::read_to_string(dir.spec_path()).map_err(LauncherError::io(format!(
        "cannot read {}",
        dir.spec_path().display()
    )))?;
    serde_json::from_str(&text).map_err(LauncherError::json(dir.spec_path().display().to_string()))
}

/// The job token (the `token` file, mode 0600), without surrounding whitespace.
pub fn read_token(dir: &JobDir) -> Result<String, LauncherError> {
    std::fs::read_to_string(dir.token_path())
        .map(|t| t.trim().to_string())
        .map_err(LauncherError::io(format!(
            "cannot read {}",
            dir.token_path().display()
        )))
}
