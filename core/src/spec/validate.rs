//! Turning the merged configuration tree into a [`JobSpec`], with one precise error per bad
//! field (naming the file it came from and, where possible, what to write instead).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_yaml::{Mapping, Value};

use super::{JobSpec, Resources, SpecError};
use crate::duration::parse_duration;

/// Largest worker count accepted.
const MAX_WORKERS: i64 = 100_000;

struct Fields<'a> {
    map: &'a Mapping,
    from: &'a dyn Fn(&str) -> String,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn bad(&self, key: &str, message: impl Into<String>) -> SpecError {
        let top = key.split('.').next().unwrap_or(key);
        SpecError::BadValue { file: (self.from)(top), key: key.into(), message: message.into() }
    }

    fn missing(&self, key: &str, hint: &str) -> SpecError {
        SpecError::Missing { file: "job.yaml".into(), key: key.into(), hint: hint.into() }
    }

    fn shown(v: &Value) -> String {
        match v {
            Value::String(s) => format!("'{s}'"),
            other => serde_yaml::to_string(other).map(|s| s.trim().to_string()).unwrap_or_default(),
        }
    }

    fn whole(&self, key: &str, v: &Value, min: i64, max: i64) -> Result<i64, SpecError> {
        let n = match v {
            Value::Number(n) => n.as_i64(),
            _ => None,
        };
        match n {
            Some(n) if n >= min && n <= max => Ok(n),
            Some(n) if n >= 0 && n < min => Err(self.bad(key, format!("must be at least {min}, got {n}"))),
            Some(n) if n > max => Err(self.bad(key, format!("must be at most {max}, got {n}"))),
            _ if min >= 1 => Err(self.bad(key, format!("must be a positive whole number, got {}", Self::shown(v)))),
            _ => Err(self.bad(key, format!("must be a whole number ≥ {min}, got {}", Self::shown(v)))),
        }
    }

    fn u(&self, key: &str, min: i64, max: i64) -> Result<i64, SpecError> {
        let v = self.get(key).ok_or_else(|| self.missing(key, "it has a built-in default; was it set to null?"))?;
        self.whole(key, v, min, max)
    }

    fn duration(&self, key: &str) -> Result<Duration, SpecError> {
        let v = self.get(key).ok_or_else(|| self.missing(key, "write e.g. 30s"))?;
        let d = match v {
            Value::Number(n) => n.as_u64().map(Duration::from_millis).ok_or_else(|| self.bad(key, "must be a duration such as 500ms or 30s")),
            Value::String(s) => parse_duration(s).map_err(|e| self.bad(key, e)),
            _ => Err(self.bad(key, "must be a duration such as 500ms or 30s")),
        }?;
        if d.is_zero() {
            return Err(self.bad(key, "must be longer than zero"));
        }
        Ok(d)
    }

    fn string_list(&self, key: &str, split_text: bool) -> Result<Vec<String>, SpecError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) if split_text => Ok(s.split_whitespace().map(str::to_string).collect()),
            Some(Value::Sequence(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    Value::Number(n) => Ok(n.to_string()),
                    Value::Bool(b) => Ok(b.to_string()),
                    other => Err(self.bad(key, format!("must be a list of words, found {}", Self::shown(other)))),
                })
                .collect(),
            Some(other) => Err(self.bad(key, format!("must be a list, got {}", Self::shown(other)))),
        }
    }
}

fn env_name_ok(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Builds and validates the spec.
pub(super) fn build(map: &Mapping, from: &dyn Fn(&str) -> String) -> Result<JobSpec, SpecError> {
    let f = Fields { map, from };
    let name = match f.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(f.bad("name", format!("must be text, got {}", Fields::shown(other)))),
        None => return Err(f.missing("name", "add `name: my-job` to job.yaml or pass --name")),
    };
    let workers = f.u("workers", 1, MAX_WORKERS)? as u32;
    let workers_per_pod = f.u("workers_per_pod", 1, MAX_WORKERS)? as u32;
    if workers % workers_per_pod != 0 {
        return Err(f.bad("workers_per_pod", format!("must divide workers ({workers}), got {workers_per_pod}")));
    }
    let command = f.string_list("command", true)?;
    if command.is_empty() {
        return Err(f.missing("command", "add `command: [./run.sh]` to job.yaml"));
    }
    let args = f.string_list("args", false)?;
    let include = f.string_list("include", false)?;
    let mut env = BTreeMap::new();
    match f.get("env") {
        None => {}
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                let k = k.as_str().map(str::to_string).unwrap_or_else(|| Fields::shown(k));
                if !env_name_ok(&k) {
                    return Err(f.bad(&format!("env.{k}"), "is not a valid environment variable name (letters, digits, _)"));
                }
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => Fields::shown(other),
                };
                env.insert(k, v);
            }
        }
        Some(other) => return Err(f.bad("env", format!("must be a mapping NAME: value, got {}", Fields::shown(other)))),
    }
    let config: BTreeMap<String, serde_json::Value> = match f.get("config") {
        None => BTreeMap::new(),
        Some(v @ Value::Mapping(_)) => serde_json::to_value(v)
            .ok()
            .and_then(|j| serde_json::from_value(j).ok())
            .ok_or_else(|| f.bad("config", "must be a mapping with text keys"))?,
        Some(other) => return Err(f.bad("config", format!("must be a mapping, got {}", Fields::shown(other)))),
    };
    let max_restarts = f.u("max_restarts", 0, 1000)? as u32;
    let barrier_timeout = f.duration("barrier_timeout")?;
    let init_barrier_timeout = f.duration("init_barrier_timeout")?;
    let join_timeout = f.duration("join_timeout")?;
    let heartbeat_interval = f.duration("heartbeat_interval")?;
    let heartbeat_timeout = f.duration("heartbeat_timeout")?;
    if heartbeat_timeout <= heartbeat_interval {
        return Err(f.bad("heartbeat_timeout", format!("must be longer than heartbeat_interval ({heartbeat_interval:?})")));
    }
    let resources = match f.get("resources") {
        Some(Value::Mapping(r)) => {
            let rf = Fields { map: r, from };
            let cpu = match rf.get("cpu") {
                Some(Value::Number(n)) => n.as_f64().filter(|c| *c > 0.0),
                _ => None,
            }
            .ok_or_else(|| f.bad("resources.cpu", "must be a number of cores greater than 0, e.g. 0.5 or 2"))?;
            let memory_mb = rf.u("memory_mb", 1, 1 << 30).map_err(|_| f.bad("resources.memory_mb", "must be a whole number of MiB ≥ 1"))? as u64;
            let disk_mb = rf.u("disk_mb", 0, 1 << 40).map_err(|_| f.bad("resources.disk_mb", "must be a whole number of MiB ≥ 0"))? as u64;
            Resources { cpu, memory_mb, disk_mb }
        }
        _ => return Err(f.bad("resources", "must be a mapping with cpu, memory_mb and disk_mb")),
    };
    let build = match f.get("build") {
        None => None,
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(other) => return Err(f.bad("build", format!("must be a shell command, got {}", Fields::shown(other)))),
    };
    let max_package_bytes = f.u("max_package_bytes", 1, i64::MAX)? as u64;
    Ok(JobSpec {
        name,
        workers,
        workers_per_pod,
        command,
        args,
        env,
        config,
        max_restarts,
        barrier_timeout,
        init_barrier_timeout,
        join_timeout,
        heartbeat_interval,
        heartbeat_timeout,
        resources,
        build,
        include,
        max_package_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{load_job_spec, Layer};

    fn load(yaml: &str, overrides: &[&str]) -> Result<super::JobSpec, String> {
        let layer = Layer { origin: "job.yaml".into(), text: yaml.into() };
        let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        load_job_spec("local", None, Some(&layer), &o).map_err(|e| e.to_string())
    }

    const OK: &str = "name: pi\ncommand: [./pi]\n";

    #[test]
    fn defaults_then_job_then_overrides() {
        let s = load(&format!("{OK}workers: 4\nenv: {{A: x}}\nresources: {{cpu: 2}}\n"), &["workers=8", "env.B=y", "config.n=5"]).unwrap();
        assert_eq!(s.workers, 8);
        assert_eq!(s.env.len(), 2);
        assert_eq!(s.resources.cpu, 2.0);
        assert_eq!(s.resources.memory_mb, 512);
        assert_eq!(s.config["n"], 5);
        assert_eq!(s.max_restarts, 3);
        assert_eq!(s.command, vec!["./pi"]);
        let s = load("name: x\ncommand: sh run.sh\n", &["command=[bash, go.sh]"]).unwrap();
        assert_eq!(s.command, vec!["bash", "go.sh"]);
    }

    #[test]
    fn errors_are_one_line_and_precise() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("wrokers: 2\n", &[], "unknown key 'wrokers'; did you mean 'workers'?"),
            ("workers: 0\n", &[], "'workers' must be at least 1, got 0"),
            ("workers: -3\n", &[], "'workers' must be a positive whole number, got -3"),
            ("workers: many\n", &[], "'workers' must be a positive whole number, got 'many'"),
            ("", &["workers=-3"], "-D workers=-3: 'workers' must be a positive whole number"),
            ("workers: 3\nworkers_per_pod: 2\n", &[], "must divide workers"),
            ("heartbeat_timeout: 100ms\n", &[], "must be longer than heartbeat_interval"),
            ("barrier_timeout: soon\n", &[], "'barrier_timeout' 'soon' is not a duration"),
            ("resources: {gpu: 1}\n", &[], "unknown key 'resources.gpu'"),
            ("env: {1BAD: x}\n", &[], "'env.1BAD' is not a valid environment variable name"),
            ("workers: [\n", &[], "invalid YAML"),
        ];
        for (extra, o, want) in cases {
            let e = load(&format!("{OK}{extra}"), o).unwrap_err();
            assert!(e.contains(want), "{extra:?} {o:?}: {e}");
            assert!(!e.contains('\n'), "multi-line error: {e}");
        }
        assert!(load("name: x\n", &[]).unwrap_err().contains("'command' is required"));
        assert!(load(OK, &["novalue"]).unwrap_err().contains("expected key=value"));
    }

    #[test]
    fn twister2_keys_are_aliases() {
        let s = load(&format!("{OK}twister2.fault.tolerance.max.worker.restarts: 7\n"), &["twister2.worker.controller.max.wait.time.on.barrier=5000"]).unwrap();
        assert_eq!(s.max_restarts, 7);
        assert_eq!(s.barrier_timeout, std::time::Duration::from_secs(5));
    }
}
