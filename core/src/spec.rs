//! The job spec (`job.yaml`) and layered configuration:
//! built-in defaults ← `conf/<cluster>/*.yaml` ← job spec ← `-D key=value`.
//!
//! Each layer overrides the ones before it. `env`, `config`, `resources`, `zookeeper` and `topology` merge
//! key by key (`config` at every depth); every other key replaces the earlier value. Every layer is checked
//! on its own, so an error names the file (or `-D` flag) and key at fault, on one line.
//!
//! # Keys
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `name` | the package's file or directory name | job name, made a valid name by [`crate::names`] |
//! | `command` | — (required) | program and arguments: a list (`[./run.sh, -v]`) or a string split as a shell would (`python3 -c "print('a b')"`; quotes, no expansion) |
//! | `args` | `[]` | extra arguments appended after `command` |
//! | `workers` | `1` | number of workers, 1–100000 |
//! | `workers_per_pod` | `1` | workers per pod (Kubernetes); must divide `workers` |
//! | `env` | `{}` | environment variables of the user program; names `[A-Za-z_][A-Za-z0-9_]*` |
//! | `config` | `{}` | free-form user configuration, given to workers as JSON |
//! | `max_restarts` | `3` | restarts of a failed worker before the job fails (locally, also of a fault-tolerant job's job master, at least 10) |
//! | `barrier_timeout` | `30s` | default barrier timeout |
//! | `init_barrier_timeout` | `10m` | default init-barrier timeout |
//! | `join_timeout` | `60s` | wait for all workers to join (or a restarted one to rejoin) |
//! | `heartbeat_interval` | `250ms` | heartbeat interval, both ways (stretched past 1 000 workers: at most 4 000 a second) |
//! | `heartbeat_timeout` | `3s` | silence after which a worker or the job master is lost; > interval |
//! | `resources.cpu` | `1` | cores per worker (`0.5` and `500m` work) |
//! | `resources.memory_mb` | `512` | memory per worker, MiB |
//! | `resources.disk_mb` | `0` | scratch disk per worker, MiB |
//! | `resources.limits.cpu` | none | a CPU limit above the request (Kubernetes), e.g. request 1 core, limit 4; at least `resources.cpu` |
//! | `resources.limits.memory_mb` | `resources.memory_mb` | a memory limit above the request (Kubernetes), MiB; at least `resources.memory_mb` |
//! | `build` | `null` | shell command run in the job directory before packaging |
//! | `include` | `[]` | when non-empty, only these relative paths are packaged |
//! | `max_package_bytes` | `1073741824` | largest package, bytes |
//! | `fault_tolerant` | `false` | keep the job's state in ZooKeeper so workers and the job master survive crashes; `true` or `false` only; needs `zookeeper.addresses` |
//! | `zookeeper.addresses` | `""` | ZooKeeper servers, `host:port,host:port` (no spaces; ports 1–65535; IPv6 as `[::1]:2181`) |
//! | `zookeeper.root` | `/t2` | znode under which jobs live: starts with `/`, no trailing `/`, names of `[A-Za-z0-9._-]`, not under `/zookeeper` |
//! | `kubernetes` | `{}` | settings of the `kubernetes` cluster (image, volumes, secrets, placement), merged key by key at every depth like `config` and checked by the launcher (see its `kubernetes::settings`) |
//! | `dashboard` | `""` | the dashboard the job master reports to, `http[s]://host:port[/path]`; `""` for none (`t2 submit --dashboard` / `$T2_DASHBOARD` override it) |
//! | `dashboard_token` | `""` | the dashboard's token, sent with every report (`--dashboard-token` / `$T2_DASHBOARD_TOKEN`) |
//! | `dashboard_ca` | `""` | for an `https://` dashboard: the PEM certificate(s) its certificate is checked against, and nothing else (`t2 submit --dashboard-ca FILE` reads them) |
//! | `tls` | `false` locally, `true` on Kubernetes ([`KUBERNETES_DEFAULTS`]) | TLS between the agents and the job master with a certificate made for the job at submit (agents trust only the job's own CA); `true` or `false` only |
//! | `mpi` | off | an OpenMPI job: `true`, or a map that turns it on, `{slots_per_worker: 2, mpirun_args: [--bind-to, none]}` (`-D mpi.slots_per_worker=2` too): worker 0 runs `mpirun` over every worker, whose remote daemons t2's agents start |
//! | `mpi.slots_per_worker` | `1` | MPI ranks per worker, 1–1024 |
//! | `mpi.mpirun_args` | `[]` | extra `mpirun` arguments, before the program |
//! | `topology.from` | `auto` | where workers' racks and datacenters come from: `config` (the lists below), `labels` (node labels, Kubernetes), or `auto` (`config` when `racks` lists any rack) |
//! | `topology.racks` | `{}` | rack → node IP addresses, `{rack-a: [10.0.0.11, 10.0.0.12]}` (or Twister2's list of one-entry maps); a node is in one rack; on the local cluster loopback addresses (127.0.0.0/8) become simulated nodes |
//! | `topology.datacenters` | `{}` | datacenter → racks, `{dc1: [rack-a]}`; a rack is in one datacenter, and every rack named needs a node list |
//! | `topology.strict` | `false` | a worker on a node the lists do not name fails the submit (or the job) instead of getting rack and datacenter `unknown` |
//! | `zookeeper.session_timeout` | `10s` | ZooKeeper session timeout, 1s–10m: a crashed process's liveness znode goes after this (the server may clamp it to its own limits) |
//!
//! Durations are `500ms`, `3s`, `2m`, `1h30m` or a bare number of milliseconds, each within
//! its key's bounds (`spec/durations.rs`: waits up to 7 days, `heartbeat_interval` up to 1m,
//! `heartbeat_timeout` up to 1h). The defaults
//! live in `conf/local/job.yaml` ([`BUILT_IN_DEFAULTS`]). Twister2 key names with the same
//! meaning are accepted too; see [`twister2_aliases`] and the table in `spec/aliases.rs`:
//!
//! | Twister2 key | t2 key |
//! |---|---|
//! | `twister2.resource.job.name` | `name` |
//! | `twister2.resource.worker.compute.resources` (one entry: `cpu`, `ram` MB, `disk` GB, `instances`, `workersPerPod`) | `resources.*`, `workers` (= instances × workersPerPod), `workers_per_pod` |
//! | `twister2.fault.tolerance.max.worker.restarts` | `max_restarts` |
//! | `twister2.worker.controller.max.wait.time.on.barrier` (ms) | `barrier_timeout` |
//! | `twister2.worker.controller.max.wait.time.on.init.barrier` (ms) | `init_barrier_timeout` |
//! | `twister2.worker.controller.max.wait.time.for.all.workers.to.join` (ms) | `join_timeout` |
//! | `twister2.fault.tolerant` | `fault_tolerant` |
//! | `twister2.resource.zookeeper.server.addresses` | `zookeeper.addresses`; also turns `fault_tolerant` on unless the job's `job.yaml` or a `-D` flag sets it |
//! | `twister2.resource.zookeeper.root.node.path`, `twister2.zookeeper.root.node.path` | `zookeeper.root` |
//! | `twister2.fault.tolerance.failure.timeout` (ms) | `zookeeper.session_timeout` |
//! | `twister2.dashboard.host` | `dashboard` |
//! | `kubernetes.node.locations.from.config` (`true`/`false`) | `topology.from` (`config`/`labels`) |
//! | `kubernetes.datacenters.list`, `kubernetes.racks.list` | `topology.datacenters`, `topology.racks` |
//! | `rack.labey.key`, `datacenter.labey.key` (sic) | `kubernetes.rack_label`, `kubernetes.datacenter_label` |

mod aliases;
mod assemble;
mod durations;
mod fields;
mod layer;
mod mpi;
mod suggest;
#[cfg(test)]
mod tests;
mod topology;
#[cfg(test)]
mod topology_tests;
mod zookeeper;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::text;
use crate::topology::TopologySpec;

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
    /// Limits above the requests (Kubernetes); unset ones follow the requests.
    #[serde(default, skip_serializing_if = "ResourceLimits::is_empty")]
    pub limits: ResourceLimits,
}

/// Resource limits of one worker above its requests (`resources.limits`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// CPU cores; none: no CPU limit unless the cluster's settings ask for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory in MiB; none: the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
}

impl ResourceLimits {
    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory_mb.is_none()
    }
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
    /// Keep the job's state in ZooKeeper so that workers and the job master survive crashes.
    #[serde(default)]
    pub fault_tolerant: bool,
    /// Where ZooKeeper is (used when `fault_tolerant`).
    #[serde(default)]
    pub zookeeper: ZooKeeperSpec,
    /// Racks and datacenters of the nodes, and where they come from.
    #[serde(default)]
    pub topology: TopologySpec,
    /// Settings of the `kubernetes` cluster, free-form here (merged like `config`); the
    /// launcher's Kubernetes backend reads and checks them. Ignored by the local cluster.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kubernetes: BTreeMap<String, serde_json::Value>,
    /// The dashboard the job master reports to (`http://host:port`), empty for none.
    #[serde(default)]
    pub dashboard: String,
    /// The dashboard's token (reports need it).
    #[serde(default)]
    pub dashboard_token: String,
    /// For an `https://` dashboard: the CA certificates (PEM) trusted, no others.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub dashboard_ca: String,
    /// OpenMPI settings; `mpi.enabled` makes this an MPI job.
    #[serde(default)]
    pub mpi: MpiSpec,
    /// TLS between the agents and the job master, with a certificate made for the job at
    /// submit. A spec written before the key existed reads as `false`: the job it belongs to
    /// was made without a certificate.
    #[serde(default)]
    pub tls: bool,
}

/// The OpenMPI settings of a job (`mpi:` in the job spec).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpiSpec {
    /// An MPI job: worker 0's agent runs `mpirun` over every worker (through the others'
    /// agents); the other agents run only what mpirun asks of them.
    pub enabled: bool,
    /// MPI slots (ranks) per worker.
    pub slots_per_worker: u32,
    /// Extra `mpirun` arguments, placed before the program.
    pub mpirun_args: Vec<String>,
}

impl Default for MpiSpec {
    fn default() -> Self {
        Self {
            enabled: false,
            slots_per_worker: 1,
            mpirun_args: Vec::new(),
        }
    }
}

/// ZooKeeper settings of a fault-tolerant job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZooKeeperSpec {
    /// `host:port,host:port`.
    pub addresses: String,
    /// Root znode under which jobs live (`/t2`).
    pub root: String,
    /// ZooKeeper session timeout: a crashed process's liveness znode goes after this.
    #[serde(with = "crate::duration::serde_human")]
    pub session_timeout: Duration,
}

impl Default for ZooKeeperSpec {
    fn default() -> Self {
        Self {
            addresses: String::new(),
            root: "/t2".into(),
            session_timeout: Duration::from_secs(10),
        }
    }
}

/// Where a configuration layer came from, for error messages.
#[derive(Debug, Clone)]
pub struct Layer {
    /// e.g. `conf/local/job.yaml`, `job.yaml`, `-D workers=4`.
    pub origin: String,
    /// The YAML text.
    pub text: String,
}

/// The most workers a job may have, in `workers` and in `t2 scale` on every cluster.
pub const MAX_WORKERS: u32 = 100_000;

/// Checks a worker count for `t2 scale` (every cluster): 1 to [`MAX_WORKERS`]. The error is
/// the one line to show, e.g. "the number of workers must be 1-100000, got 0".
pub fn check_worker_count(workers: u32) -> Result<u32, String> {
    if workers == 0 || workers > MAX_WORKERS {
        return Err(format!(
            "the number of workers must be 1-{MAX_WORKERS}, got {workers}"
        ));
    }
    Ok(workers)
}

/// The built-in defaults: `conf/local/job.yaml`, compiled in.
pub const BUILT_IN_DEFAULTS: &str = include_str!("../../conf/local/job.yaml");

/// How errors name the built-in defaults.
const DEFAULTS_ORIGIN: &str = "built-in defaults (conf/local/job.yaml)";

/// The built-in defaults of the `kubernetes` cluster, over [`BUILT_IN_DEFAULTS`].
pub const KUBERNETES_DEFAULTS: &str = "tls: true\n";

/// How `t2 config view` and errors name them.
const KUBERNETES_DEFAULTS_ORIGIN: &str = "built-in defaults of the kubernetes cluster";

/// Every key t2 knows, dotted for nested ones (`resources.cpu`), derived from the key lists
/// the layer reader checks against, so the two cannot drift. Keys under `env` and `config` are
/// the user's own. See the module documentation for the table.
pub fn known_keys() -> Vec<String> {
    let nested = |parent: &str, keys: &[&str]| -> Vec<String> {
        std::iter::once(parent.to_string())
            .chain(keys.iter().map(|k| format!("{parent}.{k}")))
            .collect()
    };
    let mut keys: Vec<String> = layer::PLAIN_KEYS.iter().map(|k| k.to_string()).collect();
    keys.extend(layer::MAP_KEYS.iter().map(|k| k.to_string()));
    keys.extend(nested("resources", layer::RESOURCE_KEYS));
    keys.extend(
        layer::LIMIT_KEYS
            .iter()
            .map(|k| format!("resources.limits.{k}")),
    );
    keys.extend(nested("zookeeper", zookeeper::KEYS));
    keys.extend(nested("mpi", mpi::KEYS));
    keys.extend(nested("topology", topology::KEYS));
    keys
}

/// The Twister2 keys accepted, each with the t2 key(s) it sets.
pub fn twister2_aliases() -> &'static [(&'static str, &'static str)] {
    aliases::ALIASES
}

/// Loads the spec: built-in defaults, then every `conf/<cluster>/*.yaml` in `conf_dir` (sorted),
/// then the job's own `job.yaml` (if any), then `-D` overrides (`key=value`, dotted keys such
/// as `resources.cpu=2` or `env.FOO=bar`; values parsed as YAML scalars). Unknown keys are an
/// error with a "did you mean"; Twister2 key names with the same meaning are accepted.
/// `fault_tolerant: true` needs `zookeeper.addresses`.
/// A `conf_dir` that does not exist is an error; one without a `<cluster>` folder is not.
pub fn load_job_spec(
    cluster: &str,
    conf_dir: Option<&Path>,
    job_yaml: Option<&Layer>,
    overrides: &[String],
) -> Result<JobSpec, SpecError> {
    explain_job_spec(cluster, conf_dir, job_yaml, overrides).map(|(spec, _)| spec)
}

/// As [`load_job_spec`], and for every dotted key a layer set (`workers`, `resources.cpu`,
/// and each parent of a nested key), the layer that set it last: the built-in defaults, a
/// `conf/<cluster>/*.yaml` file, the job's `job.yaml`, or `-D key=value` (`t2 config view`).
pub fn explain_job_spec(
    cluster: &str,
    conf_dir: Option<&Path>,
    job_yaml: Option<&Layer>,
    overrides: &[String],
) -> Result<(JobSpec, BTreeMap<String, String>), SpecError> {
    let mut merged = assemble::Merged::default();
    let site = assemble::Source::Site;
    merged.apply(
        site,
        &layer::parse_yaml(DEFAULTS_ORIGIN, BUILT_IN_DEFAULTS)?,
    );
    if cluster == "kubernetes" {
        // The job master link crosses the pod network: TLS is on there whatever conf/ holds
        // (a conf/ layer or the job may still turn it off).
        merged.apply(
            site,
            &layer::parse_yaml(KUBERNETES_DEFAULTS_ORIGIN, KUBERNETES_DEFAULTS)?,
        );
    }
    if let Some(dir) = conf_dir {
        for path in cluster_files(dir, cluster)? {
            let text = std::fs::read_to_string(&path).map_err(|source| SpecError::Io {
                path: text::one_line(&path.display().to_string()),
                source,
            })?;
            merged.apply(
                site,
                &layer::parse_yaml(&path.display().to_string(), &text)?,
            );
        }
    }
    let own = assemble::Source::Job;
    if let Some(job) = job_yaml {
        merged.apply(own, &layer::parse_yaml(&job.origin, &job.text)?);
    }
    for flag in overrides {
        merged.apply(own, &layer::parse_override(flag)?);
    }
    let job_origin = job_yaml.map_or("job.yaml".to_string(), |l| text::one_line(&l.origin));
    let origins = merged.origins().clone();
    Ok((merged.into_spec(&job_origin)?, origins))
}

/// The `*.yaml` files `load_job_spec` reads from `conf_dir` for `cluster`, in order.
pub fn conf_files(conf_dir: &Path, cluster: &str) -> Result<Vec<PathBuf>, SpecError> {
    cluster_files(conf_dir, cluster)
}

/// The `*.yaml` files of `conf_dir/<cluster>/`, sorted by file name (hidden files skipped).
fn cluster_files(conf_dir: &Path, cluster: &str) -> Result<Vec<PathBuf>, SpecError> {
    let io = |path: &Path| {
        let path = text::one_line(&path.display().to_string());
        move |source| SpecError::Io { path, source }
    };
    let simple = !cluster.is_empty()
        && cluster != "."
        && cluster != ".."
        && !cluster.contains(['/', '\\', '\0']);
    if !simple {
        return Err(SpecError::BadValue {
            file: "command line".into(),
            key: "cluster".into(),
            message: format!(
                "must be a cluster name such as local or kubernetes, got '{}'",
                text::one_line(cluster)
            ),
        });
    }
    std::fs::metadata(conf_dir).map_err(io(conf_dir))?;
    let dir = conf_dir.join(cluster);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
        let entry = entry.map_err(io(&dir))?;
        let name = entry.file_name();
        let path = entry.path();
        let yaml = Path::new(&name).extension().is_some_and(|e| e == "yaml");
        let hidden = name.as_encoded_bytes().starts_with(b".");
        if yaml && !hidden && path.is_file() {
            files.push((name, path));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// An unknown-key error with a "did you mean" when a known key is close.
fn unknown_key(origin: &str, key: &str) -> SpecError {
    SpecError::UnknownKey {
        file: text::one_line(origin),
        key: text::one_line(key),
        suggestion: suggest::closest(key),
    }
}

/// The error for a problem found in the layer from `origin`.
fn problem_error(origin: &str, problem: fields::Problem) -> SpecError {
    match problem {
        fields::Problem::Unknown { key } => unknown_key(origin, &key),
        fields::Problem::Bad { key, message } => SpecError::BadValue {
            file: text::one_line(origin),
            key: text::one_line(&key),
            message: text::one_line(&message),
        },
    }
}
