//! Everything `t2 submit` does before a cluster starts anything: read and validate the spec,
//! name the job, run its build step, check its command, and write the job folder (package,
//! spec, token, record). On any error the job folder is removed again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use t2_core::jobdir::{now_rfc3339, JobDir, JobRecord, RecordedState, WorkerRecord};
use t2_core::names::{new_job_id, sanitize_job_name};
use t2_core::package::{build_package, unpack_package, PackageSource, SourceKind, UnpackLimits};
use t2_core::secret::Existing;
use t2_core::spec::{load_job_spec, JobSpec, Layer, SpecError};

use crate::cli::SubmitArgs;
use crate::error::LauncherError;

/// Longest a build step may run.
const BUILD_DEADLINE: Duration = Duration::from_secs(30 * 60);

/// A job ready to start.
#[derive(Debug)]
pub struct Prepared {
    /// Its folder.
    pub dir: JobDir,
    /// Its merged spec.
    pub spec: JobSpec,
    /// Its record as first written.
    pub record: JobRecord,
}

/// The default configuration folder: `$T2_CONF_DIR`, else `conf/` beside the sources this
/// binary was built from, else none (built-in defaults only).
pub fn default_conf_dir() -> Option<PathBuf> {
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    built.is_dir().then_some(built)
}

/// Prepares a job under `home` for `cluster`.
pub fn prepare(args: &SubmitArgs, home: &Path, cluster: &str) -> Result<Prepared, LauncherError> {
    let source = PackageSource::detect(&args.package, args.class.as_deref())?;
    let origin = match source.kind {
        SourceKind::Directory => source.path.join("job.yaml").display().to_string(),
        SourceKind::Tarball => format!("{} (job.yaml)", source.path.display()),
        _ => format!("{} (generated job.yaml)", source.path.display()),
    };
    let text = source.job_yaml()?.ok_or_else(|| SpecError::Missing {
        file: origin.clone(),
        key: "job.yaml".into(),
        hint: "add a job.yaml with at least `command:` (see examples/shell/job.yaml)".into(),
    })?;
    let mut overrides = Vec::new();
    if !yaml_has_key(&text, "name") {
        overrides.push(format!("name={}", source.default_name()));
    }
    overrides.extend(args.overrides.iter().cloned());
    if let Some(w) = &args.workers {
        overrides.push(format!("workers={w}"));
    }
    if let Some(n) = &args.name {
        overrides.push(format!("name={n}"));
    }
    let conf_dir = args.conf_dir.clone().or_else(default_conf_dir);
    let layer = Layer {
        origin,
        text: text.clone(),
    };
    let spec = load_job_spec(cluster, conf_dir.as_deref(), Some(&layer), &overrides)?;

    let name = sanitize_job_name(&spec.name)?;
    if name.changed {
        eprintln!(
            "t2: job name '{}' is not a valid name; using '{}'",
            spec.name, name.name
        );
    }
    let id = new_job_id(&name.name);
    if let (Some(build), SourceKind::Directory) = (&spec.build, &source.kind) {
        run_build(build, &source.path)?;
    }
    // On Kubernetes the program runs in the image, not on this machine's PATH.
    if cluster == "local" {
        check_command(&spec, &source)?;
    }

    let dir = JobDir::new(&home.join(""), &id);
    std::fs::create_dir_all(dir.root()).map_err(LauncherError::io(format!(
        "cannot create {}",
        dir.root().display()
    )))?;
    match write_job(&dir, &id, &name.name, cluster, &spec, &source, &text) {
        Ok(record) => Ok(Prepared { dir, spec, record }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(dir.root());
            Err(e)
        }
    }
}

fn yaml_has_key(text: &str, key: &str) -> bool {
    serde_yaml::from_str::<serde_yaml::Value>(text)
        .ok()
        .and_then(|v| v.as_mapping().map(|m| m.contains_key(key)))
        .unwrap_or(false)
}

fn write_job(
    dir: &JobDir,
    id: &str,
    name: &str,
    cluster: &str,
    spec: &JobSpec,
    source: &PackageSource,
    job_yaml: &str,
) -> Result<JobRecord, LauncherError> {
    let token = new_token();
    write_private(&dir.token_path(), &token)?;
    std::fs::create_dir_all(dir.logs_dir()).map_err(LauncherError::io(format!(
        "cannot create {}",
        dir.logs_dir().display()
    )))?;
    let pkg = build_package(
        source,
        job_yaml,
        &spec.include,
        &dir.package_path(),
        spec.max_package_bytes,
    )?;
    if source.kind == SourceKind::Tarball {
        // A package we did not build is untrusted: prove it unpacks safely before starting anything.
        let check = dir.root().join("verify");
        let limits = UnpackLimits {
            max_package_bytes: spec.max_package_bytes,
            max_unpacked_bytes: spec.max_package_bytes.saturating_mul(4),
            ..UnpackLimits::default()
        };
        unpack_package(&pkg.path, &check, Some(&pkg.sha256), &limits)?;
        let _ = std::fs::remove_dir_all(&check);
    }
    let spec_json = serde_json::to_string_pretty(spec)
        .map_err(LauncherError::json("cannot encode the job spec"))?;
    std::fs::write(dir.spec_path(), spec_json).map_err(LauncherError::io(format!(
        "cannot write {}",
        dir.spec_path().display()
    )))?;
    let record = JobRecord {
        id: id.into(),
        name: name.into(),
        cluster: cluster.into(),
        state: RecordedState::Starting,
        reason: None,
        num_workers: spec.workers,
        joined: 0,
        package_sha256: pkg.sha256,
        submitted_at: now_rfc3339(),
        ended_at: None,
        supervisor_pid: None,
        jobmaster_pid: None,
        jobmaster_addr: None,
        workers: (0..spec.workers)
            .map(|i| WorkerRecord {
                id: i,
                state: "PENDING".into(),
                restart_count: 0,
                pid: None,
                exit_code: None,
            })
            .collect(),
    };
    dir.write_record(&record)?;
    Ok(record)
}

/// 32 random bytes, hex.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

fn write_private(path: &Path, text: &str) -> Result<(), LauncherError> {
    t2_core::secret::write_private(path, text, Existing::Refuse).map_err(LauncherError::io(
        format!("cannot create {}", path.display()),
    ))
}

/// Runs the job's build step in its folder, with a deadline.
fn run_build(build: &str, dir: &Path) -> Result<(), LauncherError> {
    eprintln!("t2: building: {build}");
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(build)
        .current_dir(dir)
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .map_err(|e| t2_core::package::PackageError::BuildFailed {
            command: build.into(),
            why: e.to_string(),
        })?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(t2_core::package::PackageError::BuildFailed {
                    command: build.into(),
                    why: status.to_string(),
                }
                .into())
            }
            Ok(None) if started.elapsed() > BUILD_DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(t2_core::package::PackageError::BuildFailed {
                    command: build.into(),
                    why: format!("still running after {BUILD_DEADLINE:?}"),
                }
                .into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                return Err(t2_core::package::PackageError::BuildFailed {
                    command: build.into(),
                    why: e.to_string(),
                }
                .into())
            }
        }
    }
}

/// The command must be in the package (paths) or on PATH (bare names).
fn check_command(spec: &JobSpec, source: &PackageSource) -> Result<(), LauncherError> {
    let Some(program) = spec.command.first() else {
        return Err(SpecError::Missing {
            file: "job.yaml".into(),
            key: "command".into(),
            hint: "add `command: [./run.sh]` to job.yaml".into(),
        }
        .into());
    };
    let path_var = t2_worker::agent::program::path_with_t2();
    match source.kind {
        SourceKind::Directory => {
            let root = &source.path;
            let found = if program.contains('/') {
                !Path::new(program).is_absolute() && root.join(program).is_file()
                    || Path::new(program).is_absolute() && Path::new(program).is_file()
            } else {
                std::env::split_paths(&path_var).any(|d| d.join(program).is_file())
            };
            if !found {
                let where_ = if program.contains('/') {
                    format!("is not in the package {}", root.display())
                } else {
                    "is neither in the package (write ./NAME for a file in it) nor on PATH".into()
                };
                return Err(LauncherError::Usage(format!(
                    "job.yaml: command '{program}' {where_}"
                )));
            }
        }
        SourceKind::Jar { .. } => {
            if !std::env::split_paths(&path_var).any(|d| d.join("java").is_file()) {
                return Err(LauncherError::Usage(
                    "a .jar job needs 'java' on PATH: install a JRE (e.g. apt-get install default-jre-headless)".into(),
                ));
            }
        }
        SourceKind::Tarball | SourceKind::Executable => {}
    }
    Ok(())
}
