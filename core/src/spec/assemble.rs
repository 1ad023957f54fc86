//! Merging layers into one tree (maps key by key, other values replaced), remembering which
//! layer set each key, and reading the final [`JobSpec`] with its cross-field checks.
//!
//! Fault tolerance: `twister2.resource.zookeeper.server.addresses` turns `fault_tolerant` on
//! unless the job's own layers (`job.yaml`, `-D`) set `fault_tolerant`; see `spec/aliases.rs`.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::fields::{self, MAX_WORKERS};
use super::layer::ParsedLayer;
use super::{
    aliases, durations, mpi, topology, zookeeper, JobSpec, MpiSpec, ResourceLimits, Resources,
    SpecError, ZooKeeperSpec,
};
use crate::topology::{TopologySource, TopologySpec};

/// Origin used when a key has no layer (only if the built-in defaults lack it).
const NOWHERE: &str = "the merged configuration";

/// Whose a layer is: the site's defaults, or the job's own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// The built-in defaults and `conf/<cluster>/*.yaml`.
    Site,
    /// The job's `job.yaml` and `-D` flags.
    Job,
}

/// The merged configuration tree.
#[derive(Debug, Default)]
pub(super) struct Merged {
    tree: Mapping,
    /// Dotted key → the layer that last set it (top-level keys included).
    origins: BTreeMap<String, String>,
    /// Dotted key → the key as the layer that last set it wrote it (a Twister2 alias, say).
    spelled: BTreeMap<String, String>,
    /// True once the job's own layers set `fault_tolerant`.
    fault_tolerant_set_by_job: bool,
    /// True when `twister2.resource.zookeeper.server.addresses` turns fault tolerance on
    /// (cleared again by a later empty `zookeeper.addresses`, so the final list is never
    /// empty while this is set).
    fault_tolerance_implied: bool,
}

impl Merged {
    /// Applies a layer on top of what is there.
    pub(super) fn apply(&mut self, source: Source, layer: &ParsedLayer) {
        for a in &layer.assignments {
            set(&mut self.tree, &a.path, a.value.clone());
            for depth in 1..=a.path.len() {
                self.origins
                    .insert(a.path[..depth].join("."), layer.origin.clone());
            }
            self.spelled.insert(a.path.join("."), a.written.clone());
            match a.path.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                ["fault_tolerant"] if source == Source::Job => {
                    self.fault_tolerant_set_by_job = true;
                }
                ["zookeeper", "addresses"] => {
                    let empty = zookeeper::addresses(&a.value).map_or(true, |s| s.is_empty());
                    if empty {
                        self.fault_tolerance_implied = false;
                    } else if aliases::is_zookeeper_addresses_alias(a) {
                        self.fault_tolerance_implied = true;
                    }
                }
                _ => {}
            }
        }
    }

    /// Dotted key → the layer that last set it.
    pub(super) fn origins(&self) -> &BTreeMap<String, String> {
        &self.origins
    }

    fn origin(&self, key: &str) -> String {
        self.origins
            .get(key)
            .cloned()
            .unwrap_or_else(|| NOWHERE.into())
    }

    /// `key` as the layer that set it wrote it.
    fn spelled(&self, key: &str) -> String {
        self.spelled.get(key).cloned().unwrap_or_else(|| key.into())
    }

    /// [`bad`](Self::bad), naming the key as the user wrote it.
    fn bad_as_written(&self, key: &str, message: String) -> SpecError {
        SpecError::BadValue {
            file: self.origin(key),
            key: self.spelled(key),
            message,
        }
    }

    fn bad(&self, key: &str, message: String) -> SpecError {
        SpecError::BadValue {
            file: self.origin(key),
            key: key.into(),
            message,
        }
    }

    /// A value that must be present (the built-in defaults set it).
    fn get(&self, key: &str) -> Result<&Value, SpecError> {
        self.tree.get(key).ok_or_else(|| SpecError::Missing {
            file: NOWHERE.into(),
            key: key.into(),
            hint: format!("set `{key}` in job.yaml"),
        })
    }

    /// Reads `key` with `read`, naming the layer that set it on error.
    fn read<T>(
        &self,
        key: &str,
        read: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<T, SpecError> {
        read(self.get(key)?).map_err(|m| self.bad(key, m))
    }

    /// A required key that has no default.
    fn required<T>(
        &self,
        key: &str,
        job_origin: &str,
        hint: &str,
        read: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<T, SpecError> {
        match self.tree.get(key) {
            None | Some(Value::Null) => Err(SpecError::Missing {
                file: job_origin.into(),
                key: key.into(),
                hint: hint.into(),
            }),
            Some(v) => read(v).map_err(|m| self.bad(key, m)),
        }
    }

    /// The entries of a map-valued key (`resources`, `env`, `config`).
    fn map(&self, key: &str) -> Result<Vec<(String, &Value)>, SpecError> {
        match self.tree.get(key).unwrap_or(&Value::Null) {
            Value::Null => Ok(Vec::new()),
            Value::Mapping(m) => m
                .iter()
                .map(|(k, v)| {
                    fields::scalar_text(k)
                        .map(|k| (k, v))
                        .ok_or_else(|| self.bad(key, "keys must be text".into()))
                })
                .collect(),
            other => Err(self.bad(
                key,
                format!("must be a map, got {}", fields::describe(other)),
            )),
        }
    }

    /// The final spec; `job_origin` names the job's own spec in "missing" errors.
    pub(super) fn into_spec(self, job_origin: &str) -> Result<JobSpec, SpecError> {
        let name = self.required(
            "name",
            job_origin,
            "add `name: my-job` to job.yaml, or pass -D name=my-job",
            fields::text,
        )?;
        let command = self.required(
            "command",
            job_origin,
            "add `command: [./run.sh]` to job.yaml",
            fields::command,
        )?;
        let workers = self.read("workers", |v| fields::whole_u32(v, 1, MAX_WORKERS as u32))?;
        let workers_per_pod = self.read("workers_per_pod", |v| {
            fields::whole_u32(v, 1, MAX_WORKERS as u32)
        })?;
        if workers % workers_per_pod != 0 {
            return Err(self.bad(
                "workers_per_pod",
                format!(
                    "must divide workers evenly: {workers} workers cannot fill pods of {workers_per_pod}"
                ),
            ));
        }
        let heartbeat_interval = self.read("heartbeat_interval", |v| {
            durations::read("heartbeat_interval", v)
        })?;
        let heartbeat_timeout = self.read("heartbeat_timeout", |v| {
            durations::read("heartbeat_timeout", v)
        })?;
        if heartbeat_timeout <= heartbeat_interval {
            return Err(self.bad(
                "heartbeat_timeout",
                format!(
                    "must be longer than heartbeat_interval ({} is not longer than {})",
                    crate::duration::format_duration(heartbeat_timeout),
                    crate::duration::format_duration(heartbeat_interval)
                ),
            ));
        }
        let (fault_tolerant, zookeeper) = self.fault_tolerance()?;
        Ok(JobSpec {
            name,
            workers,
            workers_per_pod,
            command,
            args: self.read("args", fields::words)?,
            env: self.env()?,
            config: self.config()?,
            max_restarts: self.read("max_restarts", |v| fields::whole_u32(v, 0, u32::MAX))?,
            barrier_timeout: self
                .read("barrier_timeout", |v| durations::read("barrier_timeout", v))?,
            init_barrier_timeout: self.read("init_barrier_timeout", |v| {
                durations::read("init_barrier_timeout", v)
            })?,
            join_timeout: self.read("join_timeout", |v| durations::read("join_timeout", v))?,
            heartbeat_interval,
            heartbeat_timeout,
            resources: self.resources()?,
            build: self.read("build", fields::build)?,
            include: self.read("include", fields::include)?,
            max_package_bytes: self.read("max_package_bytes", |v| fields::whole(v, 1, u64::MAX))?,
            fault_tolerant,
            zookeeper,
            topology: self.topology()?,
            kubernetes: self.free_map("kubernetes")?,
            dashboard: self.read("dashboard", fields::dashboard_url)?,
            dashboard_token: self.read("dashboard_token", fields::token)?,
            dashboard_ca: self.read("dashboard_ca", fields::ca_pem)?,
            mpi: self.mpi()?,
            tls: self.read("tls", fields::boolean)?,
        })
    }

    /// The `mpi` settings (the built-in defaults set every key).
    fn mpi(&self) -> Result<MpiSpec, SpecError> {
        let entries = self.map("mpi")?;
        let find = |sub: &str| -> Result<(String, &Value), SpecError> {
            let key = format!("mpi.{sub}");
            match entries.iter().find(|(k, _)| k == sub) {
                Some((_, v)) => Ok((key, *v)),
                None => Err(SpecError::Missing {
                    file: NOWHERE.into(),
                    hint: format!("set `mpi: {{{sub}: ...}}` in job.yaml"),
                    key,
                }),
            }
        };
        let (key, v) = find("enabled")?;
        let enabled = fields::boolean(v).map_err(|m| self.bad(&key, m))?;
        let (key, v) = find("slots_per_worker")?;
        let slots_per_worker = mpi::slots(v).map_err(|m| self.bad(&key, m))?;
        let (key, v) = find("mpirun_args")?;
        let mpirun_args = mpi::mpirun_args(v).map_err(|m| self.bad(&key, m))?;
        Ok(MpiSpec {
            enabled,
            slots_per_worker,
            mpirun_args,
        })
    }

    /// The `topology` section, with the check that needs both lists.
    fn topology(&self) -> Result<TopologySpec, SpecError> {
        let entries = self.map("topology")?;
        let get = |sub: &str| {
            entries
                .iter()
                .find(|(k, _)| k == sub)
                .map_or(&Value::Null, |(_, v)| *v)
        };
        let from =
            topology::from(get("from")).map_err(|m| self.bad_as_written("topology.from", m))?;
        let racks =
            topology::racks(get("racks")).map_err(|m| self.bad_as_written("topology.racks", m))?;
        let datacenters = topology::datacenters(get("datacenters"))
            .map_err(|m| self.bad_as_written("topology.datacenters", m))?;
        let strict = match get("strict") {
            Value::Null => false,
            v => fields::boolean(v).map_err(|m| self.bad_as_written("topology.strict", m))?,
        };
        let racks_key = self.spelled("topology.racks");
        topology::check_racks_listed(&datacenters, &racks, &racks_key)
            .map_err(|m| self.bad_as_written("topology.datacenters", m))?;
        if from == TopologySource::Config && racks.is_empty() {
            return Err(self.bad_as_written(
                "topology.from",
                format!("asks for racks from the configuration, but no racks are listed; list them in {racks_key} (rack: [node IPs]) or take them from node labels"),
            ));
        }
        Ok(TopologySpec {
            from,
            datacenters,
            racks,
            strict,
        })
    }

    /// `fault_tolerant` and the ZooKeeper settings, checked against each other.
    fn fault_tolerance(&self) -> Result<(bool, ZooKeeperSpec), SpecError> {
        let set = self.read("fault_tolerant", fields::boolean)?;
        let implied = self.fault_tolerance_implied && !self.fault_tolerant_set_by_job;
        let zookeeper = self.zookeeper()?;
        // An implied `fault_tolerant` always has addresses: an empty list cancels it.
        if set && zookeeper.addresses.is_empty() {
            return Err(SpecError::Missing {
                file: self.origin("fault_tolerant"),
                key: "zookeeper.addresses".into(),
                hint: format!(
                    "fault_tolerant: true needs zookeeper.addresses, e.g. -D zookeeper.addresses={}",
                    zookeeper::EXAMPLE_ADDRESSES
                ),
            });
        }
        Ok((set || implied, zookeeper))
    }

    fn zookeeper(&self) -> Result<ZooKeeperSpec, SpecError> {
        let entries = self.map("zookeeper")?;
        let find = |sub: &str| -> Result<(String, &Value), SpecError> {
            let key = format!("zookeeper.{sub}");
            match entries.iter().find(|(k, _)| k == sub) {
                Some((_, v)) => Ok((key, *v)),
                None => Err(SpecError::Missing {
                    file: NOWHERE.into(),
                    hint: format!("set `zookeeper: {{{sub}: ...}}` in job.yaml"),
                    key,
                }),
            }
        };
        let (key, v) = find("addresses")?;
        let addresses = zookeeper::addresses(v).map_err(|m| self.bad(&key, m))?;
        let (key, v) = find("root")?;
        let root = zookeeper::root(v).map_err(|m| self.bad(&key, m))?;
        let (key, v) = find("session_timeout")?;
        let session_timeout = zookeeper::session_timeout(v).map_err(|m| self.bad(&key, m))?;
        Ok(ZooKeeperSpec {
            addresses,
            root,
            session_timeout,
        })
    }

    fn resources(&self) -> Result<Resources, SpecError> {
        let entries = self.map("resources")?;
        let find = |sub: &str| -> Result<&Value, SpecError> {
            entries
                .iter()
                .find(|(k, _)| k == sub)
                .map(|(_, v)| *v)
                .ok_or_else(|| SpecError::Missing {
                    file: NOWHERE.into(),
                    key: format!("resources.{sub}"),
                    hint: format!("set `resources: {{{sub}: ...}}` in job.yaml"),
                })
        };
        let read = |sub: &str, v: &Value, f: &dyn Fn(&Value) -> Result<u64, String>| {
            let key = format!("resources.{sub}");
            f(v).map_err(|m| self.bad(&key, m))
        };
        let cpu = fields::cores(find("cpu")?).map_err(|m| self.bad("resources.cpu", m))?;
        let memory_mb = read("memory_mb", find("memory_mb")?, &|v| {
            fields::whole(v, 1, u64::MAX)
        })?;
        Ok(Resources {
            cpu,
            memory_mb,
            disk_mb: read("disk_mb", find("disk_mb")?, &|v| {
                fields::whole(v, 0, u64::MAX)
            })?,
            limits: self.limits(cpu, memory_mb)?,
        })
    }

    /// `resources.limits`, each at least its request (Kubernetes refuses a limit below it).
    fn limits(&self, cpu: f64, memory_mb: u64) -> Result<ResourceLimits, SpecError> {
        let entries = match self
            .map("resources")?
            .into_iter()
            .find(|(k, _)| k == "limits")
        {
            Some((_, Value::Mapping(m))) => m.clone(),
            _ => return Ok(ResourceLimits::default()),
        };
        let get = |k: &str| entries.get(k).filter(|v| !v.is_null());
        let mut out = ResourceLimits::default();
        if let Some(v) = get("cpu") {
            let key = "resources.limits.cpu";
            let limit = fields::cores(v).map_err(|m| self.bad(key, m))?;
            if limit < cpu {
                return Err(self.bad(
                    key,
                    format!("must be at least resources.cpu ({cpu}), got {limit}"),
                ));
            }
            out.cpu = Some(limit);
        }
        if let Some(v) = get("memory_mb") {
            let key = "resources.limits.memory_mb";
            let limit = fields::whole(v, 1, u64::MAX).map_err(|m| self.bad(key, m))?;
            if limit < memory_mb {
                return Err(self.bad(
                    key,
                    format!("must be at least resources.memory_mb ({memory_mb}), got {limit}"),
                ));
            }
            out.memory_mb = Some(limit);
        }
        Ok(out)
    }

    fn env(&self) -> Result<BTreeMap<String, String>, SpecError> {
        self.map("env")?
            .into_iter()
            .map(|(k, v)| {
                let key = format!("env.{k}");
                if !fields::is_env_name(&k) {
                    return Err(self.bad(&key, "is not a valid environment variable name".into()));
                }
                fields::env_value(v)
                    .map(|v| (k, v))
                    .map_err(|m| self.bad(&key, m))
            })
            .collect()
    }

    fn config(&self) -> Result<BTreeMap<String, serde_json::Value>, SpecError> {
        self.free_map("config")
    }

    /// A free-form map (`config`, `kubernetes`) as JSON values.
    fn free_map(&self, name: &str) -> Result<BTreeMap<String, serde_json::Value>, SpecError> {
        self.map(name)?
            .into_iter()
            .map(|(k, v)| {
                let key = format!("{name}.{k}");
                fields::json(v)
                    .map(|v| (k, v))
                    .map_err(|m| self.bad(&key, m))
            })
            .collect()
    }
}

/// Sets `value` at `path`, making maps on the way (a non-map on the way is replaced).
fn set(map: &mut Mapping, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let key = Value::String(first.clone());
    if rest.is_empty() {
        map.insert(key, value);
        return;
    }
    if !map.get(&key).is_some_and(Value::is_mapping) {
        map.insert(key.clone(), Value::Mapping(Mapping::new()));
    }
    if let Some(Value::Mapping(inner)) = map.get_mut(&key) {
        set(inner, rest, value);
    }
}
