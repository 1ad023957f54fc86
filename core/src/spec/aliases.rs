//! Twister2 configuration keys that t2 accepts because a t2 key has the same meaning, so a
//! Twister2 user's `resource.yaml` carries over (DESIGN §9; reference §4 and the runtime notes).
//!
//! | Twister2 key | t2 key | note |
//! |---|---|---|
//! | `twister2.resource.job.name` | `name` | |
//! | `twister2.resource.worker.compute.resources` | `workers`, `workers_per_pod`, `resources.*` | a list of exactly one `{cpu, ram, disk, instances, workersPerPod, scalable}`: `workers` = `instances` × `workersPerPod`; `ram` is MB; `disk` is GB (× 1024 → `disk_mb`); `scalable` is ignored |
//! | `twister2.fault.tolerance.max.worker.restarts` | `max_restarts` | |
//! | `twister2.worker.controller.max.wait.time.on.barrier` | `barrier_timeout` | milliseconds |
//! | `twister2.worker.controller.max.wait.time.on.init.barrier` | `init_barrier_timeout` | milliseconds |
//! | `twister2.worker.controller.max.wait.time.for.all.workers.to.join` | `join_timeout` | milliseconds |
//! | `twister2.fault.tolerant` | `fault_tolerant` | only in the Twister2 docs (the code has no such key) |
//! | `twister2.resource.zookeeper.server.addresses` | `zookeeper.addresses` | also turns `fault_tolerant` on, as Twister2 does, unless the job's `job.yaml` or a `-D` flag sets `fault_tolerant` itself (see below) |
//! | `twister2.resource.zookeeper.root.node.path` | `zookeeper.root` | the key the Twister2 code reads (its default is `/twister2`, t2's is `/t2`) |
//! | `twister2.zookeeper.root.node.path` | `zookeeper.root` | the key as the Twister2 docs spell it |
//! | `twister2.fault.tolerance.failure.timeout` | `zookeeper.session_timeout` | milliseconds; in Twister2 the Curator session (and connection) timeout |
//! | `twister2.dashboard.host` | `dashboard` | the dashboard's URL, `http://host:8080` in the Twister2 guide |
//! | `kubernetes.node.locations.from.config` | `topology.from` | `true` → `config`, `false` → `labels`; the key as Twister2's Kubernetes guide writes it (`twister2.resource.…` as its code reads it) |
//! | `kubernetes.datacenters.list` | `topology.datacenters` | a list of one-entry maps `- dc1: [blue-rack, green-rack]` (or a map) |
//! | `kubernetes.racks.list` | `topology.racks` | a list of one-entry maps `- blue-rack: [10.0.0.11, …]` (or a map) |
//! | `rack.labey.key` | `kubernetes.rack_label` | misspelt as in Twister2's guide and code |
//! | `datacenter.labey.key` | `kubernetes.datacenter_label` | misspelt as in Twister2's guide and code |
//!
//! Twister2's code reads the five topology keys with a `twister2.resource.` prefix
//! (`twister2.resource.racks.list`, `twister2.resource.datacenters.list`,
//! `twister2.resource.kubernetes.node.locations.from.config`, `twister2.resource.rack.labey.key`,
//! `twister2.resource.datacenter.labey.key`); those are accepted too.
//!
//! In Twister2, configuring a ZooKeeper server is what turns fault tolerance on. So setting
//! `twister2.resource.zookeeper.server.addresses` (to a non-empty list) makes `fault_tolerant`
//! true, unless `fault_tolerant` (or `twister2.fault.tolerant`) is set in the job's own
//! `job.yaml` or by a `-D` flag: then that value counts, the last one as always, so
//! `-D fault_tolerant=false` turns it back off. A `fault_tolerant` in the built-in defaults or a
//! `conf/<cluster>/` file does not stop it, since `conf/local/job.yaml` (read as a cluster file
//! too) always says `false`. A later empty `zookeeper.addresses` cancels it.
//!
//! Other Twister2 keys (images, namespaces, ports, uploader settings...) have no t2 job-spec
//! equivalent and are reported as unknown keys.

use serde_yaml::{Mapping, Value};

use super::fields::{self, Problem};
use super::layer::Assignment;

/// The Twister2 key for a list of compute resources.
const COMPUTE_RESOURCES: &str = "twister2.resource.worker.compute.resources";

/// Keys of one compute-resource entry.
const COMPUTE_FIELDS: &[&str] = &[
    "cpu",
    "ram",
    "disk",
    "instances",
    "workersPerPod",
    "scalable",
];

/// Twister2 keys accepted, with the t2 key(s) each one sets.
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("twister2.resource.job.name", "name"),
    (COMPUTE_RESOURCES, "workers, workers_per_pod, resources"),
    (
        "twister2.fault.tolerance.max.worker.restarts",
        "max_restarts",
    ),
    (
        "twister2.worker.controller.max.wait.time.on.barrier",
        "barrier_timeout",
    ),
    (
        "twister2.worker.controller.max.wait.time.on.init.barrier",
        "init_barrier_timeout",
    ),
    (
        "twister2.worker.controller.max.wait.time.for.all.workers.to.join",
        "join_timeout",
    ),
    ("twister2.fault.tolerant", "fault_tolerant"),
    (ZOOKEEPER_ADDRESSES, "zookeeper.addresses"),
    (
        "twister2.resource.zookeeper.root.node.path",
        "zookeeper.root",
    ),
    ("twister2.zookeeper.root.node.path", "zookeeper.root"),
    (
        "twister2.fault.tolerance.failure.timeout",
        "zookeeper.session_timeout",
    ),
    ("twister2.dashboard.host", "dashboard"),
    (FROM_CONFIG, "topology.from"),
    ("kubernetes.datacenters.list", "topology.datacenters"),
    ("kubernetes.racks.list", "topology.racks"),
    ("rack.labey.key", "kubernetes.rack_label"),
    ("datacenter.labey.key", "kubernetes.datacenter_label"),
    (FROM_CONFIG_CODE, "topology.from"),
    ("twister2.resource.datacenters.list", "topology.datacenters"),
    ("twister2.resource.racks.list", "topology.racks"),
    ("twister2.resource.rack.labey.key", "kubernetes.rack_label"),
    (
        "twister2.resource.datacenter.labey.key",
        "kubernetes.datacenter_label",
    ),
];

/// Twister2's switch between the topology lists (`true`) and node labels (`false`), as its
/// guide writes it and as its code reads it.
const FROM_CONFIG: &str = "kubernetes.node.locations.from.config";
const FROM_CONFIG_CODE: &str = "twister2.resource.kubernetes.node.locations.from.config";

/// The Twister2 key for the ZooKeeper servers; setting it turns fault tolerance on.
pub(super) const ZOOKEEPER_ADDRESSES: &str = "twister2.resource.zookeeper.server.addresses";

/// True for an assignment written as [`ZOOKEEPER_ADDRESSES`].
pub(super) fn is_zookeeper_addresses_alias(a: &Assignment) -> bool {
    a.written == ZOOKEEPER_ADDRESSES
}

/// The t2 key (dotted) that Twister2 key `key` sets, for aliases of exactly one t2 key.
pub(super) fn target(key: &str) -> Option<&'static str> {
    ALIASES
        .iter()
        .find(|(a, t)| *a == key && *a != COMPUTE_RESOURCES && !t.contains(' '))
        .map(|(_, t)| *t)
}

/// True when `key` is an accepted Twister2 key.
pub(super) fn is_alias(key: &str) -> bool {
    ALIASES.iter().any(|(a, _)| *a == key)
}

/// The t2 assignments for Twister2 key `key` set to `value`; `None` if `key` is not an alias.
pub(super) fn translate(key: &str, value: &Value) -> Option<Result<Vec<Assignment>, Problem>> {
    let (alias, target) = ALIASES.iter().find(|(a, _)| *a == key)?;
    if *alias == COMPUTE_RESOURCES {
        return Some(compute_resources(value));
    }
    if *alias == FROM_CONFIG || *alias == FROM_CONFIG_CODE {
        return Some(from_config(alias, value));
    }
    let path: Vec<&str> = target.split('.').collect();
    Some(Ok(vec![Assignment::new(&path, value.clone(), alias)]))
}

/// `kubernetes.node.locations.from.config: true|false` → `topology.from: config|labels`.
fn from_config(alias: &str, value: &Value) -> Result<Vec<Assignment>, Problem> {
    let from = match value {
        Value::Bool(true) => "config",
        Value::Bool(false) => "labels",
        other => {
            return Err(Problem::bad(
                alias,
                format!(
                    "must be true (racks and datacenters from kubernetes.racks.list and kubernetes.datacenters.list) or false (from node labels), got {}",
                    fields::describe(other)
                ),
            ))
        }
    };
    Ok(vec![Assignment::new(
        &["topology", "from"],
        Value::from(from),
        alias,
    )])
}

/// `twister2.resource.worker.compute.resources: [{cpu, ram, disk, instances, workersPerPod}]`.
fn compute_resources(value: &Value) -> Result<Vec<Assignment>, Problem> {
    let entry = match value {
        Value::Sequence(items) if items.len() == 1 => &items[0],
        Value::Mapping(_) => value,
        other => {
            return Err(Problem::bad(
                COMPUTE_RESOURCES,
                format!(
                    "must be a list of exactly one resource (t2 runs one kind of worker per job), got {}",
                    describe_list(other)
                ),
            ))
        }
    };
    let key = format!("{COMPUTE_RESOURCES}[0]");
    let Value::Mapping(map) = entry else {
        return Err(Problem::bad(
            key,
            format!(
                "must be a map such as {{cpu: 1, ram: 1024, disk: 1, instances: 4}}, got {}",
                fields::describe(entry)
            ),
        ));
    };
    let get = |name: &str| map.get(name);
    check_fields(map, &key)?;
    let mut out = Vec::new();
    let field = |name: &str| format!("{key}.{name}");
    if let Some(cpu) = get("cpu") {
        out.push(Assignment::new(
            &["resources", "cpu"],
            cpu.clone(),
            &field("cpu"),
        ));
    }
    if let Some(ram) = get("ram") {
        out.push(Assignment::new(
            &["resources", "memory_mb"],
            ram.clone(),
            &field("ram"),
        ));
    }
    if let Some(disk) = get("disk") {
        let gb = match disk {
            Value::Number(n) => n.as_f64().filter(|g| g.is_finite() && *g >= 0.0),
            _ => None,
        }
        .ok_or_else(|| {
            Problem::bad(
                field("disk"),
                format!(
                    "must be a number of GB (0 or more), got {}",
                    fields::describe(disk)
                ),
            )
        })?;
        let mb = (gb * 1024.0).round() as u64;
        out.push(Assignment::new(
            &["resources", "disk_mb"],
            Value::from(mb),
            &field("disk"),
        ));
    }
    let per_pod = match get("workersPerPod") {
        Some(v) => {
            let n = fields::whole(v, 1, fields::MAX_WORKERS)
                .map_err(|m| Problem::bad(field("workersPerPod"), m))?;
            out.push(Assignment::new(
                &["workers_per_pod"],
                v.clone(),
                &field("workersPerPod"),
            ));
            n
        }
        None => 1,
    };
    if let Some(v) = get("instances") {
        let pods = fields::whole(v, 1, fields::MAX_WORKERS)
            .map_err(|m| Problem::bad(field("instances"), m))?;
        let workers = pods.saturating_mul(per_pod);
        out.push(Assignment::new(
            &["workers"],
            Value::from(workers),
            &field("instances"),
        ));
    }
    Ok(out)
}

/// Rejects keys of a compute-resource entry that Twister2 does not define.
fn check_fields(map: &Mapping, key: &str) -> Result<(), Problem> {
    for k in map.keys() {
        let name = fields::scalar_text(k).unwrap_or_else(|| fields::describe(k));
        if !COMPUTE_FIELDS.contains(&name.as_str()) {
            return Err(Problem::Unknown {
                key: format!("{key}.{name}"),
            });
        }
    }
    Ok(())
}

fn describe_list(v: &Value) -> String {
    match v {
        Value::Sequence(items) => format!("a list of {}", items.len()),
        other => fields::describe(other),
    }
}

/// Candidate keys for "did you mean" inside a compute-resource entry.
pub(super) fn compute_field_candidates() -> Vec<String> {
    COMPUTE_FIELDS
        .iter()
        .map(|f| format!("{COMPUTE_RESOURCES}[0].{f}"))
        .collect()
}
