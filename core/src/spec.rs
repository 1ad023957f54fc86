//! The job spec (`job.yaml`) and layered configuration:
//! built-in defaults ← `conf/<cluster>/*.yaml` ← job spec ← `-D key=value`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Errors found while reading or validating configuration; each displays as one readable line.
#[derive(Debug, Error)]
pub enum SpecError {
    /// YAML that does not parse.
    #[error("{file}: invalid YAML: {message}")]
    Yaml {
        /// Which file (or `-D` flag) it came from.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A key t2 does not know.
    #[error("{file}: unknown key '{key}'{}", suggestion.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default())]
    UnknownKey {
        /// Where it was found.
        file: String,
        /// The full dotted key.
        key: String,
        /// The closest known key, if any is close.
        suggestion: Option<String>,
    },
    /// A known key with a bad value.
    #[error("{file}: '{key}' {message}")]
    BadValue {
        /// Where it was found.
        file: String,
        /// The full dotted key.
        key: String,
        /// What is wrong and, where possible, what to write instead.
        message: String,
    },
    /// A `-D` flag that is not `key=value`.
    #[error("-D {flag}: expected key=value, e.g. -D workers=4")]
    BadOverride {
        /// The flag as given.
        flag: String,
    },
    /// A required key is absent.
    #[error("{file}: '{key}' is required; {hint}")]
    Missing {
        /// Where it should be.
        file: String,
        /// The key.
        key: String,
        /// How to provide it.
        hint: String,
    },
    /// A configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Resource requests of one worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores (may be fractional).
    pub cpu: f64,
    /// Memory in MiB.
    pub memory_mb: u64,
    /// Volatile disk in MiB (0 = none).
    pub disk_mb: u64,
}

/// A fully merged and validated job spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Job name as given (sanitised separately by [`crate::names`]).
    pub name: String,
    /// Number of workers (≥ 1).
    pub workers: u32,
    /// Workers per pod/slot group (Kubernetes), ≥ 1, dividing `workers`.
    pub workers_per_pod: u32,
    /// Program and its arguments; the program is relative to the package root or on `PATH`.
    pub command: Vec<String>,
    /// Extra arguments appended after `command`.
    pub args: Vec<String>,
    /// Environment variables for the user program.
    pub env: BTreeMap<String, String>,
    /// Free-form user configuration, given to workers as JSON (`WorkerContext::config`).
    pub config: BTreeMap<String, serde_json::Value>,
    /// Times a failed worker is restarted before the job fails.
    pub max_restarts: u32,
    /// Default timeout of a barrier.
    #[serde(with = "crate::duration::serde_human")]
    pub barrier_timeout: Duration,
    /// Default timeout of the init barrier.
    #[serde(with = "crate::duration::serde_human")]
    pub init_barrier_timeout: Duration,
    /// How long the job master waits for all workers to join (and a restarted one to rejoin).
    #[serde(with = "crate::duration::serde_human")]
    pub join_timeout: Duration,
    /// Heartbeat interval, both ways.
    #[serde(with = "crate::duration::serde_human")]
    pub heartbeat_interval: Duration,
    /// Silence after which a worker (or the job master) is declared lost.
    #[serde(with = "crate::duration::serde_human")]
    pub heartbeat_timeout: Duration,
    /// Resources of each worker.
    pub resources: Resources,
    /// Shell command run in the job directory before packaging (e.g. to compile the job).
    pub build: Option<String>,
    /// When non-empty, only these paths (relative to the job directory) go into the package.
    pub include: Vec<String>,
    /// Largest package accepted, in bytes (compressed and unpacked each).
    pub max_package_bytes: u64,
}

/// Where a configuration layer came from, for error messages.
#[derive(Debug, Clone)]
pub struct Layer {
    /// e.g. `conf/local/job.yaml`, `job.yaml`, `-D workers=4`.
    pub origin: String,
    /// The YAML text.
    pub text: String,
}

/// Loads the spec: built-in defaults, then every `conf/<cluster>/*.yaml` in `conf_dir` (sorted),
/// then the job's own `job.yaml` (if any), then `-D` overrides (`key=value`, dotted keys such
/// as `resources.cpu=2` or `env.FOO=bar`; values parsed as YAML scalars). Unknown keys are an
/// error with a "did you mean"; Twister2 key names with the same meaning are accepted.
pub fn load_job_spec(
    cluster: &str,
    conf_dir: Option<&Path>,
    job_yaml: Option<&Layer>,
    overrides: &[String],
) -> Result<JobSpec, SpecError> {
    todo!("{cluster} {conf_dir:?} {job_yaml:?} {overrides:?}")
}
