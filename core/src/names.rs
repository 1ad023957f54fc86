//! Job names and job IDs: the Kubernetes-style naming rules of DESIGN §6.

use thiserror::Error;

/// Longest job name, so that every derived Kubernetes object name stays a DNS-1123 label.
pub const MAX_NAME_LEN: usize = 30;

/// Length of the random suffix appended to a job name to make a job ID.
pub const SUFFIX_LEN: usize = 8;

/// Errors about names and IDs.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    /// Nothing usable was left after sanitising.
    #[error("job name '{raw}' has no usable characters; use lowercase letters, digits and '-', starting with a letter")]
    Unusable {
        /// The name as given.
        raw: String,
    },
    /// A user-given job ID does not follow the rules.
    #[error("invalid job ID '{id}': {why}")]
    InvalidJobId {
        /// The ID as given.
        id: String,
        /// What rule it breaks.
        why: String,
    },
}

/// A sanitised job name and whether sanitising changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanitizedName {
    /// The valid name.
    pub name: String,
    /// True when `name` differs from what the user gave (the launcher then says so).
    pub changed: bool,
}

/// Makes a valid job name from anything: `_`/`.` become `-`, lowercase, other characters
/// dropped, must start with a letter and end with an alphanumeric, at most
/// [`MAX_NAME_LEN`] characters (truncated first, then re-trimmed).
pub fn sanitize_job_name(raw: &str) -> Result<SanitizedName, NameError> {
    todo!("{raw}")
}

/// A new job ID: `<name>-<suffix>` with a random lowercase alphanumeric suffix.
pub fn new_job_id(name: &str) -> String {
    todo!("{name}")
}

/// Checks a job ID given by a user (e.g. to `t2 kill`) against the rules; never trust one.
pub fn validate_job_id(id: &str) -> Result<(), NameError> {
    todo!("{id}")
}

/// True when `s` is a DNS-1123 label: 1–63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn is_dns1123_label(s: &str) -> bool {
    todo!("{s}")
}
