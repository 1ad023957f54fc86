//! `t2 config view [PKG]`: the job spec a submit would make, every key with the layer it
//! came from (built-in defaults, a `conf/<cluster>/*.yaml` file, `job.yaml`, `-D`, a flag),
//! and which configuration folder was read and why.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;
use t2_core::package::PackageSource;
use t2_core::spec::{explain_job_spec, Layer, SpecError};

use crate::cli::{ClusterKind, ConfigViewArgs, Output};
use crate::error::LauncherError;
use crate::prepare::{find_conf_dir, yaml_has_key};

/// Where a key no layer named comes from.
const DEFAULTS: &str = "built-in defaults";

/// Prints the merged spec and where each value came from.
pub fn view(args: &ConfigViewArgs) -> Result<(), LauncherError> {
    let home = t2_core::jobdir::t2_home()?;
    let cluster = match args.cluster {
        ClusterKind::Local => "local",
        ClusterKind::Kubernetes => "kubernetes",
    };
    let conf = find_conf_dir(args.conf_dir.as_deref(), &home, cluster)?;
    let files = match &conf {
        Some((dir, _)) => t2_core::spec::conf_files(dir, cluster)?,
        None => Vec::new(),
    };
    let mut overrides = Vec::new();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let layer = match &args.package {
        Some(pkg) => {
            let source = PackageSource::detect(pkg, None)?;
            let origin = format!("{} (job.yaml)", pkg.display());
            let text = source.job_yaml()?.ok_or_else(|| SpecError::Missing {
                file: origin.clone(),
                key: "job.yaml".into(),
                hint: "add a job.yaml with at least `command:` (see examples/shell/job.yaml)"
                    .into(),
            })?;
            if !yaml_has_key(&text, "name") && !yaml_has_key(&text, "twister2.resource.job.name") {
                let flag = format!("name={}", source.default_name());
                labels.insert(format!("-D {flag}"), "the package's name".into());
                overrides.push(flag);
            }
            Some(Layer { origin, text })
        }
        None => {
            // Without a job, what a job.yaml must set gets a placeholder.
            for flag in ["name=your-job", "command=[your-program]"] {
                labels.insert(format!("-D {flag}"), "(your job.yaml)".into());
                overrides.push(flag.to_string());
            }
            None
        }
    };
    overrides.extend(args.overrides.iter().cloned());
    if let Some(w) = &args.workers {
        labels.insert(format!("-D workers={w}"), format!("--workers {w}"));
        overrides.push(format!("workers={w}"));
    }
    if let Some(n) = &args.name {
        labels.insert(format!("-D name={n}"), format!("--name {n}"));
        overrides.push(format!("name={n}"));
    }
    let conf_dir = conf.as_ref().map(|(d, _)| d.as_path());
    let (spec, origins) = explain_job_spec(cluster, conf_dir, layer.as_ref(), &overrides)?;
    let value =
        serde_json::to_value(&spec).map_err(LauncherError::json("cannot encode the spec"))?;
    let mut leaves = Vec::new();
    flatten("", &value, &mut leaves);
    let from = |key: &str| -> String {
        let mut k = key.to_string();
        loop {
            if let Some(o) = origins.get(&k) {
                let o = labels.get(o).cloned().unwrap_or_else(|| o.clone());
                return if o.starts_with("built-in defaults") {
                    DEFAULTS.into()
                } else {
                    o
                };
            }
            match k.rsplit_once('.') {
                Some((parent, _)) => k = parent.to_string(),
                None => return DEFAULTS.into(),
            }
        }
    };
    let found = match &conf {
        Some((dir, how)) => format!("{} (found by {how})", dir.display()),
        None => "none (built-in defaults only)".into(),
    };
    match args.output {
        Output::Json | Output::Yaml => {
            let doc = serde_json::json!({
                "cluster": cluster,
                "conf_dir": conf.as_ref().map(|(d, _)| d.display().to_string()),
                "conf_dir_found_by": conf.as_ref().map(|(_, how)| *how),
                "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                "spec": value,
                "origins": leaves.iter().map(|(k, _)| (k.clone(), Value::String(from(k)))).collect::<serde_json::Map<_, _>>(),
            });
            crate::cluster::print_as(args.output, &doc, |_, _| String::new())?;
        }
        Output::Text | Output::Wide => {
            let mut out = String::new();
            let _ = writeln!(out, "cluster:      {cluster}");
            let _ = writeln!(out, "configuration folder: {found}");
            for f in &files {
                let _ = writeln!(out, "  read {}", f.display());
            }
            let width = leaves
                .iter()
                .map(|(k, _)| k.len())
                .max()
                .unwrap_or(3)
                .min(40);
            let vwidth = leaves
                .iter()
                .map(|(_, v)| v.len())
                .max()
                .unwrap_or(5)
                .min(40);
            let _ = writeln!(out);
            let _ = writeln!(out, "{:<width$}  {:<vwidth$}  FROM", "KEY", "VALUE");
            for (k, v) in &leaves {
                let _ = writeln!(out, "{k:<width$}  {v:<vwidth$}  {}", from(k));
            }
            crate::stdout::out!("{out}");
        }
    }
    Ok(())
}

/// The leaves of `v` as dotted keys with their values in compact JSON (strings bare); an
/// empty map or list is one leaf.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, child, out);
            }
        }
        Value::String(s) => out.push((prefix.into(), s.clone())),
        other => out.push((prefix.into(), other.to_string())),
    }
}
