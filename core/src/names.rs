//! Job names and job IDs: the Kubernetes-style naming rules of DESIGN §6.

use rand::Rng;
use thiserror::Error;

use crate::text::one_line;

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

/// Longest job ID: a name of [`MAX_NAME_LEN`], `-`, and a suffix of [`SUFFIX_LEN`].
pub const MAX_JOB_ID_LEN: usize = MAX_NAME_LEN + 1 + SUFFIX_LEN;

/// Longest DNS-1123 label, the limit of every Kubernetes object name derived from a job ID.
pub const MAX_DNS1123_LABEL_LEN: usize = 63;

/// Characters of the random suffix of a job ID.
const SUFFIX_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Makes a valid job name from anything: `_`/`.` become `-`, lowercase, other characters
/// dropped, must start with a letter and end with an alphanumeric, at most
/// [`MAX_NAME_LEN`] characters (truncated first, then re-trimmed).
pub fn sanitize_job_name(raw: &str) -> Result<SanitizedName, NameError> {
    let mut name = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = match c {
            '_' | '.' | '-' => '-',
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
            _ => continue,
        };
        if c == '-' && name.ends_with('-') {
            continue;
        }
        name.push(c);
    }
    // Must start with a letter: drop leading digits and dashes.
    let start = name
        .find(|c: char| c.is_ascii_lowercase())
        .unwrap_or(name.len());
    let mut name = name[start..].trim_end_matches('-').to_string();
    // Only ASCII is left, so byte length is character count.
    name.truncate(MAX_NAME_LEN);
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        return Err(NameError::Unusable { raw: one_line(raw) });
    }
    Ok(SanitizedName {
        changed: name != raw,
        name,
    })
}

/// A new job ID: `<name>-<suffix>` with a random lowercase alphanumeric suffix of
/// [`SUFFIX_LEN`] characters. `name` should come from [`sanitize_job_name`].
pub fn new_job_id(name: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..SUFFIX_LEN)
        .map(|_| char::from(SUFFIX_CHARS[rng.random_range(0..SUFFIX_CHARS.len())]))
        .collect();
    format!("{name}-{suffix}")
}

/// Checks a job ID given by a user (e.g. to `t2 kill`) against the rules; never trust one.
/// A valid ID is a DNS-1123 label of at most [`MAX_JOB_ID_LEN`] characters starting with a
/// letter (so it is also safe as a file name).
pub fn validate_job_id(id: &str) -> Result<(), NameError> {
    let why = if id.is_empty() {
        Some("it is empty".to_string())
    } else if let Some(bad) = id.chars().find(|c| !is_label_char(*c)) {
        Some(format!(
            "'{}' is not allowed; use lowercase letters, digits and '-'",
            bad.escape_default()
        ))
    } else if id.len() > MAX_JOB_ID_LEN {
        Some(format!(
            "it is {} characters long, over the limit of {MAX_JOB_ID_LEN}",
            id.len()
        ))
    } else if !id.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("it must start with a lowercase letter".to_string())
    } else if id.ends_with('-') {
        Some("it must end with a letter or a digit".to_string())
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(NameError::InvalidJobId {
            id: one_line(id),
            why,
        }),
    }
}

/// True when `s` is a DNS-1123 label: 1–63 of `[a-z0-9-]`, alphanumeric at both ends.
pub fn is_dns1123_label(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= MAX_DNS1123_LABEL_LEN
        && s.chars().all(is_label_char)
        && s.starts_with(alnum)
        && s.ends_with(alnum)
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

#[cfg(test)]
mod tests;
