//! One configuration layer (a YAML file or a `-D key=value` flag) read into assignments of
//! t2 keys, with Twister2 aliases translated, unknown keys found and every value checked.

use serde_yaml::{Mapping, Value};

use super::aliases;
use super::fields::{self, Problem, MAX_WORKERS};
use super::{durations, mpi, topology, zookeeper, SpecError};
use crate::text::one_line;

/// Top-level keys whose value replaces the previous layer's (not maps).
pub(super) const PLAIN_KEYS: &[&str] = &[
    "name",
    "workers",
    "workers_per_pod",
    "command",
    "args",
    "max_restarts",
    "barrier_timeout",
    "init_barrier_timeout",
    "join_timeout",
    "heartbeat_interval",
    "heartbeat_timeout",
    "build",
    "include",
    "max_package_bytes",
    "fault_tolerant",
    "dashboard",
    "dashboard_token",
    "dashboard_ca",
    "tls",
];

/// Top-level keys whose value is a map of the user's own keys (`env`, `config`) or of a
/// cluster's settings (`kubernetes`), merged over the previous layer's.
pub(super) const MAP_KEYS: &[&str] = &["env", "config", "kubernetes"];

/// Keys under `resources`.
pub(super) const RESOURCE_KEYS: &[&str] = &["cpu", "memory_mb", "disk_mb", "limits"];

/// Keys under `resources.limits`.
pub(super) const LIMIT_KEYS: &[&str] = &["cpu", "memory_mb"];

/// Keys set from `-D` as the text given, never parsed as YAML (Twister2 aliases of these too).
const TEXT_KEYS: &[&str] = &[
    "name",
    "build",
    "zookeeper.addresses",
    "zookeeper.root",
    "dashboard",
    "dashboard_token",
    "dashboard_ca",
];

/// True when `-D key=...` takes the text as given.
fn is_text_key(key: &str) -> bool {
    TEXT_KEYS.contains(&key) || aliases::target(key).is_some_and(|t| TEXT_KEYS.contains(&t))
}

/// One value set by a layer at a path of t2 keys (`["resources", "cpu"]`).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Assignment {
    /// Where in the spec tree.
    pub path: Vec<String>,
    /// The value.
    pub value: Value,
    /// The key as the user wrote it (a dotted path, or a Twister2 key), for messages.
    pub written: String,
}

impl Assignment {
    /// An assignment of `value` at `path`, written by the user as `written`.
    pub(super) fn new(path: &[&str], value: Value, written: &str) -> Self {
        Self {
            path: path.iter().map(|s| s.to_string()).collect(),
            value,
            written: written.to_string(),
        }
    }

    fn at(path: Vec<String>, value: Value) -> Self {
        let written = path.join(".");
        Self {
            path,
            value,
            written,
        }
    }
}

/// A checked layer.
#[derive(Debug, Clone)]
pub(super) struct ParsedLayer {
    /// Where it came from, for messages.
    pub origin: String,
    /// What it sets, in order.
    pub assignments: Vec<Assignment>,
}

/// Reads a YAML layer.
pub(super) fn parse_yaml(origin: &str, text: &str) -> Result<ParsedLayer, SpecError> {
    let origin = one_line(origin);
    let mut value: Value = serde_yaml::from_str(text).map_err(|e| SpecError::Yaml {
        file: origin.clone(),
        message: one_line(&e.to_string()),
    })?;
    value.apply_merge().map_err(|e| SpecError::Yaml {
        file: origin.clone(),
        message: one_line(&e.to_string()),
    })?;
    let tree = match value {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m,
        other => {
            return Err(SpecError::Yaml {
                file: origin,
                message: format!(
                    "expected `key: value` lines at the top level, found {}",
                    fields::describe(&other)
                ),
            })
        }
    };
    finish(origin, tree)
}

/// Reads a `-D key=value` flag: dotted keys (`resources.cpu=2`, `env.FOO=bar`,
/// `config.a.b=1`), values parsed as YAML scalars or flow collections (`[sh, run.sh]`).
pub(super) fn parse_override(flag: &str) -> Result<ParsedLayer, SpecError> {
    let origin = one_line(&format!("-D {flag}"));
    let bad = || SpecError::BadOverride {
        flag: one_line(flag),
    };
    let (key, text) = flag.split_once('=').ok_or_else(bad)?;
    let key = key.trim();
    if key.is_empty() || (key.split('.').any(str::is_empty) && !aliases::is_alias(key)) {
        return Err(bad());
    }
    let mut tree = Mapping::new();
    if aliases::is_alias(key) || !key.contains('.') {
        let value = if is_text_key(key) {
            text_value(text)
        } else {
            yaml_value(&origin, text)?
        };
        tree.insert(key.into(), value);
    } else {
        let (first, rest) = key.split_once('.').ok_or_else(bad)?;
        let value = match first {
            "env" => text_value(text),
            "zookeeper" if is_text_key(key) => text_value(text),
            "resources" | "config" | "zookeeper" | "kubernetes" | "mpi" | "topology" => {
                yaml_value(&origin, text)?
            }
            _ => {
                return Err(super::unknown_key(&origin, key));
            }
        };
        let inner =
            if first == "config" || first == "kubernetes" || key.starts_with("resources.limits.") {
                rest.rsplit('.').fold(value, |v, seg| {
                    let mut m = Mapping::new();
                    m.insert(seg.into(), v);
                    Value::Mapping(m)
                })
            } else {
                let mut m = Mapping::new();
                m.insert(rest.into(), value);
                Value::Mapping(m)
            };
        tree.insert(first.into(), inner);
    }
    finish(origin, tree)
}

/// Text given to `-D` for a key that is always text: empty means unset.
fn text_value(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_string())
    }
}

/// A `-D` value: a YAML flow collection when it starts with `[` or `{`, else a YAML scalar,
/// else the text itself (so `-D command=./run.sh --fast: yes` stays text).
fn yaml_value(origin: &str, text: &str) -> Result<Value, SpecError> {
    let t = text.trim();
    if t.starts_with('[') || t.starts_with('{') {
        return serde_yaml::from_str(t).map_err(|e| SpecError::Yaml {
            file: origin.to_string(),
            message: one_line(&e.to_string()),
        });
    }
    Ok(match serde_yaml::from_str::<Value>(t) {
        Ok(v @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_))) => v,
        _ => Value::String(t.to_string()),
    })
}

/// Normalises, checks for duplicates, and checks every value.
fn finish(origin: String, tree: Mapping) -> Result<ParsedLayer, SpecError> {
    let to_error = |p: Problem| super::problem_error(&origin, p);
    let assignments = normalise(tree).map_err(to_error)?;
    for (i, a) in assignments.iter().enumerate() {
        if let Some(first) = assignments[..i].iter().find(|b| b.path == a.path) {
            return Err(to_error(Problem::bad(
                a.written.clone(),
                format!(
                    "sets '{}', which '{}' in the same place also sets; keep one of them",
                    a.path.join("."),
                    first.written
                ),
            )));
        }
        check(a).map_err(to_error)?;
    }
    Ok(ParsedLayer {
        origin,
        assignments,
    })
}

/// The assignments of a layer's top-level map.
fn normalise(tree: Mapping) -> Result<Vec<Assignment>, Problem> {
    let mut out = Vec::new();
    for (k, v) in tree {
        let key = key_text(&k).ok_or_else(|| Problem::Unknown {
            key: fields::describe(&k),
        })?;
        match key.as_str() {
            k if PLAIN_KEYS.contains(&k) => out.push(Assignment::at(vec![key], v)),
            "resources" => {
                for (sub, sv) in sub_map(&key, v, "{cpu: 1, memory_mb: 512, disk_mb: 0}")? {
                    if !RESOURCE_KEYS.contains(&sub.as_str()) {
                        return Err(Problem::Unknown {
                            key: format!("resources.{sub}"),
                        });
                    }
                    if sub == "limits" {
                        let at = "resources.limits";
                        for (lk, lv) in sub_map(at, sv, "{cpu: 4, memory_mb: 8192}")? {
                            if !LIMIT_KEYS.contains(&lk.as_str()) {
                                return Err(Problem::Unknown {
                                    key: format!("{at}.{lk}"),
                                });
                            }
                            out.push(Assignment::at(vec![key.clone(), sub.clone(), lk], lv));
                        }
                        continue;
                    }
                    out.push(Assignment::at(vec![key.clone(), sub], sv));
                }
            }
            "zookeeper" => {
                let example = "{addresses: '127.0.0.1:2181', root: /t2, session_timeout: 10s}";
                for (sub, sv) in sub_map(&key, v, example)? {
                    if !zookeeper::KEYS.contains(&sub.as_str()) {
                        return Err(Problem::Unknown {
                            key: format!("zookeeper.{sub}"),
                        });
                    }
                    out.push(Assignment::at(vec![key.clone(), sub], sv));
                }
            }
            "topology" => {
                let example = "{from: config, racks: {rack-a: [10.0.0.11]}}";
                for (sub, sv) in sub_map(&key, v, example)? {
                    if !topology::KEYS.contains(&sub.as_str()) {
                        return Err(Problem::Unknown {
                            key: format!("topology.{sub}"),
                        });
                    }
                    out.push(Assignment::at(vec![key.clone(), sub], sv));
                }
            }
            "env" => {
                for (name, sv) in sub_map(&key, v, "{LOG_LEVEL: debug}")? {
                    if !fields::is_env_name(&name) {
                        return Err(Problem::bad(
                            format!("env.{name}"),
                            "is not a valid environment variable name; use letters, digits and '_', not starting with a digit",
                        ));
                    }
                    out.push(Assignment::at(vec![key.clone(), name], sv));
                }
            }
            "mpi" => mpi::normalise(v, &mut out)?,
            "config" | "kubernetes" => {
                let map = sub_map(&key, v, "{iterations: 100}")?;
                flatten_config(vec![key.clone()], map, &mut out)?;
            }
            _ => match aliases::translate(&key, &v) {
                Some(assignments) => out.extend(assignments?),
                None => return Err(Problem::Unknown { key }),
            },
        }
    }
    Ok(out)
}

/// A key as text: strings, numbers and booleans.
fn key_text(k: &Value) -> Option<String> {
    fields::scalar_text(k)
}

/// The entries of a map-valued key; null means no entries.
fn sub_map(key: &str, v: Value, example: &str) -> Result<Vec<(String, Value)>, Problem> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Mapping(m) => m
            .into_iter()
            .map(|(k, v)| {
                key_text(&k).map(|k| (k, v)).ok_or_else(|| {
                    Problem::bad(
                        key,
                        format!("keys must be text, got {}", fields::describe(&k)),
                    )
                })
            })
            .collect(),
        other => Err(Problem::bad(
            key,
            format!(
                "must be a map such as {example}, got {}",
                fields::describe(&other)
            ),
        )),
    }
}

/// Config maps merge key by key at every depth, so they are flattened to their leaves
/// (an empty map is a leaf).
fn flatten_config(
    path: Vec<String>,
    entries: Vec<(String, Value)>,
    out: &mut Vec<Assignment>,
) -> Result<(), Problem> {
    for (k, v) in entries {
        let mut p = path.clone();
        p.push(k);
        match v {
            Value::Mapping(m) if !m.is_empty() => {
                let written = p.join(".");
                let sub = sub_map(&written, Value::Mapping(m), "{a: 1}")?;
                flatten_config(p, sub, out)?;
            }
            other => out.push(Assignment::at(p, other)),
        }
    }
    Ok(())
}

/// Checks the value of one assignment.
fn check(a: &Assignment) -> Result<(), Problem> {
    let v = &a.value;
    let bad = |m: String| Problem::bad(a.written.clone(), m);
    let path: Vec<&str> = a.path.iter().map(String::as_str).collect();
    match path.as_slice() {
        ["name"] if v.is_null() => Ok(()),
        ["name"] => fields::text(v).map(drop),
        ["workers" | "workers_per_pod"] => fields::whole(v, 1, MAX_WORKERS).map(drop),
        ["command"] if v.is_null() => Ok(()),
        ["command"] => fields::command(v).map(drop),
        ["args"] => fields::words(v).map(drop),
        ["max_restarts"] => fields::whole_u32(v, 0, u32::MAX).map(drop),
        [key] if durations::is_duration_key(key) => durations::read(key, v).map(drop),
        ["build"] => fields::build(v).map(drop),
        ["include"] => fields::include(v).map(drop),
        ["max_package_bytes"] => fields::whole(v, 1, u64::MAX).map(drop),
        ["resources", "cpu"] => fields::cores(v).map(drop),
        ["resources", "memory_mb"] => fields::whole(v, 1, u64::MAX).map(drop),
        ["resources", "disk_mb"] => fields::whole(v, 0, u64::MAX).map(drop),
        ["resources", "limits", "cpu"] => fields::cores(v).map(drop),
        ["resources", "limits", "memory_mb"] => fields::whole(v, 1, u64::MAX).map(drop),
        ["fault_tolerant" | "tls"] => fields::boolean(v).map(drop),
        ["dashboard"] => fields::dashboard_url(v).map(drop),
        ["dashboard_token"] => fields::token(v).map(drop),
        ["dashboard_ca"] => fields::ca_pem(v).map(drop),
        ["zookeeper", "addresses"] => zookeeper::addresses(v).map(drop),
        ["zookeeper", "root"] => zookeeper::root(v).map(drop),
        ["zookeeper", "session_timeout"] => zookeeper::session_timeout(v).map(drop),
        ["mpi", "enabled"] => fields::boolean(v).map(drop),
        ["mpi", "slots_per_worker"] => mpi::slots(v).map(drop),
        ["mpi", "mpirun_args"] => mpi::mpirun_args(v).map(drop),
        ["topology", "from"] => topology::from(v).map(drop),
        ["topology", "racks"] => topology::racks(v).map(drop),
        ["topology", "datacenters"] => topology::datacenters(v).map(drop),
        ["topology", "strict"] => fields::boolean(v).map(drop),
        ["env", _] => fields::env_value(v).map(drop),
        ["config" | "kubernetes", ..] => fields::json(v).map(drop),
        _ => {
            return Err(Problem::Unknown {
                key: a.written.clone(),
            })
        }
    }
    .map_err(bad)
}
