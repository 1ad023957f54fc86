//! Everything `t2 submit` does before a cluster starts anything: read and validate the spec,
//! name the job, run its build step, check its command, and write the job folder (package,
//! spec, token, record). On any error the job folder is removed again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use t2_core::jobdir::{now_rfc3339, JobDir, JobRecord, RecordedState, WorkerRecord};
use t2_core::names::{new_job_id, sanitize_job_name};
use t2_core::package::jar::{main_class, MainClass};
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

/// The configuration folder when neither `--conf-dir` nor `$T2_CONF_DIR` names one: the first
/// that exists of `$T2_HOME/conf`, `$XDG_CONFIG_HOME/t2` (else `~/.config/t2`), `/etc/t2`,
/// `conf/` beside the executable (or one level up, as in `bin/t2` + `conf/`), and `conf/`
/// beside the sources this binary was built from; else none (built-in defaults only). With
/// the folder, which rule found it.
pub fn default_conf_dir(home: &Path) -> Option<(PathBuf, &'static str)> {
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(|x| (PathBuf::from(x).join("t2"), "$XDG_CONFIG_HOME/t2"))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| (PathBuf::from(h).join(".config/t2"), "~/.config/t2"))
        });
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf));
    let mut candidates = vec![(home.join("conf"), "$T2_HOME/conf")];
    candidates.extend(xdg);
    candidates.push((PathBuf::from("/etc/t2"), "/etc/t2"));
    if let Some(d) = exe_dir {
        candidates.push((d.join("conf"), "conf/ beside the t2 executable"));
        candidates.extend(
            d.parent()
                .map(|p| (p.join("conf"), "conf/ one level above the t2 executable")),
        );
    }
    candidates.push((
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf"),
        "the source tree t2 was built from",
    ));
    candidates
        .into_iter()
        .find(|(c, _)| c.is_dir())
        .map(|(c, how)| (c.canonicalize().unwrap_or(c), how))
}

/// The configuration folder a job reads, and how it was found: `given` (`--conf-dir` or
/// `$T2_CONF_DIR`; it must hold `CLUSTER/*.yaml`, or it would be silently ignored), else
/// [`default_conf_dir`].
pub fn find_conf_dir(
    given: Option<&Path>,
    home: &Path,
    cluster: &str,
) -> Result<Option<(PathBuf, &'static str)>, LauncherError> {
    let Some(dir) = given else {
        return Ok(default_conf_dir(home));
    };
    let by_env = std::env::var_os("T2_CONF_DIR").is_some_and(|v| Path::new(&v) == dir);
    let flag = if by_env { "T2_CONF_DIR" } else { "--conf-dir" };
    let has_yaml = std::fs::read_dir(dir.join(cluster))
        .map(|d| {
            d.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .unwrap_or(false);
    if !dir.is_dir() || !has_yaml {
        return Err(LauncherError::Usage(format!(
            "{flag} {}: holds no {cluster}/*.yaml, so nothing in it would be read; point it at a folder like the repository's conf/ (conf/{cluster}/job.yaml)",
            dir.display()
        )));
    }
    Ok(Some((
        dir.to_path_buf(),
        if by_env { "$T2_CONF_DIR" } else { "--conf-dir" },
    )))
}

/// Where the jobs of clusters other than `local` are staged under `$T2_HOME` while their
/// submit runs (`staging/CLUSTER/jobs/ID`), apart from the local jobs in `jobs/`.
pub const STAGING: &str = "staging";

/// An `https://` dashboard needs the CA its certificate is checked against, and that CA must
/// load: refused here, before anything is made, rather than by the job master's reports.
fn check_dashboard_tls(spec: &JobSpec) -> Result<(), LauncherError> {
    if !spec.dashboard.starts_with("https://") {
        return Ok(());
    }
    if spec.dashboard_ca.is_empty() {
        return Err(LauncherError::Usage(format!(
            "dashboard {} is https, but no CA to check its certificate against was given; pass --dashboard-ca FILE (the CA that signed the dashboard's --tls-cert)",
            spec.dashboard
        )));
    }
    t2_core::tls::client_config(&spec.dashboard_ca, &[], "dashboard_ca (--dashboard-ca)")
        .map(drop)
        .map_err(|e| LauncherError::Usage(e.to_string()))
}

/// Prepares a job under `home` for `cluster`.
pub fn prepare(args: &SubmitArgs, home: &Path, cluster: &str) -> Result<Prepared, LauncherError> {
    let given = PackageSource::detect(&args.package, args.class.as_deref())?;
    // A tarball made with `tar czf x.tar.gz shell/` has its job one folder down: unpacked
    // (safely) and packaged again as that folder, removed when `unwrapped` drops.
    let unwrapped = unwrap_tarball(&given, home)?;
    let source = match &unwrapped {
        Some(u) => u.source.clone(),
        None => given.clone(),
    };
    let origin = match source.kind {
        SourceKind::Directory if unwrapped.is_some() => format!(
            "{} ({}/job.yaml)",
            given.path.display(),
            source
                .path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        ),
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
    // Without a name in job.yaml (`name`, or its Twister2 alias), the package's name is the
    // default; `-D name=…` and `--name` still win over it.
    if !yaml_has_key(&text, "name") && !yaml_has_key(&text, "twister2.resource.job.name") {
        overrides.push(format!("name={}", given.default_name()));
    }
    overrides.extend(args.overrides.iter().cloned());
    if let Some(w) = &args.workers {
        overrides.push(format!("workers={w}"));
    }
    if let Some(n) = &args.name {
        overrides.push(format!("name={n}"));
    }
    if let Some(url) = &args.dashboard {
        overrides.push(format!("dashboard={url}"));
    }
    if let Some(token) = &args.dashboard_token {
        overrides.push(format!("dashboard_token={token}"));
    }
    if let Some(path) = &args.dashboard_ca {
        let pem = std::fs::read_to_string(path).map_err(|e| {
            LauncherError::Usage(format!(
                "--dashboard-ca {}: cannot read it ({e}); give the PEM file of the CA that signed the dashboard's certificate",
                path.display()
            ))
        })?;
        overrides.push(format!("dashboard_ca={pem}"));
    }
    let conf_dir = find_conf_dir(args.conf_dir.as_deref(), home, cluster)?.map(|(d, _)| d);
    let layer = Layer {
        origin,
        text: text.clone(),
    };
    let mut spec = load_job_spec(cluster, conf_dir.as_deref(), Some(&layer), &overrides)
        .map_err(|e| as_given(e, args))?;
    // `t2 submit local job -- a b`: as spark-submit and `ray job submit --` pass them.
    spec.args.extend(args.program_args.iter().cloned());
    check_dashboard_tls(&spec)?;

    let name = sanitize_job_name(&spec.name)?;
    if name.changed {
        eprintln!(
            "t2: job name '{}' is not a valid name; using '{}'",
            spec.name, name.name
        );
    }
    let id = new_job_id(&name.name);
    if cluster == "local" {
        if let Some(line) = crate::local::topology::check(&spec)? {
            eprintln!("t2: {line}");
        }
    }
    if let (Some(build), SourceKind::Directory) = (&spec.build, &source.kind) {
        if args.kube.is_dry_run() {
            eprintln!("t2: dry run: build step '{build}' skipped (the package is made from the folder as it is)");
        } else {
            run_build(build, &source.path)?;
        }
    }
    check_jar(&source)?;
    // On Kubernetes the program runs in the image, not on this machine's PATH.
    if cluster == "local" {
        check_command(&spec, &source)?;
    }

    // A local job's folder is `$T2_HOME/jobs/ID`. Another cluster's job is only staged here
    // while its submit runs, elsewhere: in `jobs/` it would be taken for a local job, and
    // `t2 kill ID` or `t2 status ID` would act on it instead of the real job.
    let base = if cluster == "local" {
        home.to_path_buf()
    } else {
        home.join(STAGING).join(cluster)
    };
    let dir = JobDir::new(&base, &id);
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

/// A tarball unpacked into a temporary folder under `$T2_HOME/tmp`, removed on drop.
struct Unwrapped {
    /// The one top-level folder of the tarball, as a directory source.
    source: PackageSource,
    tmp: PathBuf,
}

impl Drop for Unwrapped {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tmp);
    }
}

/// When `source` is a tarball without `job.yaml` at its root but with one top-level folder
/// holding one, that folder (unpacked with the usual checks and limits).
fn unwrap_tarball(source: &PackageSource, home: &Path) -> Result<Option<Unwrapped>, LauncherError> {
    if source.kind != SourceKind::Tarball || source.job_yaml()?.is_some() {
        return Ok(None);
    }
    let tmp = home
        .join("tmp")
        .join(format!("unpack-{}", hex::encode(rand::random::<[u8; 8]>())));
    std::fs::create_dir_all(home.join("tmp")).map_err(LauncherError::io(format!(
        "cannot create {}",
        home.join("tmp").display()
    )))?;
    let mut guard = Unwrapped {
        source: source.clone(),
        tmp: tmp.clone(),
    };
    unpack_package(&source.path, &tmp, None, &UnpackLimits::default())?;
    let entries: Vec<PathBuf> = std::fs::read_dir(&tmp)
        .map_err(LauncherError::io(format!("cannot read {}", tmp.display())))?
        .flatten()
        .map(|e| e.path())
        .collect();
    match entries.as_slice() {
        [only] if only.is_dir() && !only.is_symlink() && only.join("job.yaml").is_file() => {
            guard.source = PackageSource::detect(only, None)?;
            Ok(Some(guard))
        }
        _ => Ok(None),
    }
}

/// An error about the `-D workers=…`/`-D name=…` that `--workers`/`--name` became, named as
/// the flag the user wrote.
fn as_given(e: SpecError, args: &SubmitArgs) -> SpecError {
    let flags = [
        ("workers", "--workers", &args.workers),
        ("name", "--name", &args.name),
    ];
    let rename = |file: String| {
        flags
            .iter()
            .find_map(|(key, flag, value)| {
                let v = value.as_ref()?;
                let passed = args.overrides.iter().any(|o| o == &format!("{key}={v}"));
                (file == format!("-D {key}={v}") && !passed).then(|| format!("{flag} {v}"))
            })
            .unwrap_or(file)
    };
    match e {
        SpecError::BadValue { file, key, message } => SpecError::BadValue {
            file: rename(file),
            key,
            message,
        },
        SpecError::Yaml { file, message } => SpecError::Yaml {
            file: rename(file),
            message,
        },
        other => other,
    }
}

/// True when the YAML mapping `text` has top-level key `key`.
pub fn yaml_has_key(text: &str, key: &str) -> bool {
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
    if spec.tls && cluster == "local" {
        // The job master's certificate for how local agents dial it (a Kubernetes job's is
        // made with its namespace's names and goes into its Secret, see kube_cli::submit).
        t2_core::tls::mint(id, &t2_core::tls::local_names())
            .and_then(|certs| certs.write(dir.root()))
            .map_err(|e| LauncherError::Failed(e.to_string()))?;
    }
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
        supervisor_mark: None,
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

/// A jar run as `java -jar` needs a `Main-Class` (on every cluster).
fn check_jar(source: &PackageSource) -> Result<(), LauncherError> {
    if source.kind == (SourceKind::Jar { class: None })
        && main_class(&source.path) == MainClass::Missing
    {
        return Err(LauncherError::Usage(format!(
            "'{}' has no Main-Class in its META-INF/MANIFEST.MF; pass --class with the class to run (e.g. --class org.example.Main)",
            source.path.display()
        )));
    }
    Ok(())
}

/// True when `path` has an execute bit.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// The command must be in the package (paths, executable) or on PATH (bare names); a jar needs
/// java.
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
            let file = root.join(program);
            if program.contains('/') && !Path::new(program).is_absolute() && !is_executable(&file) {
                let rel = program.trim_start_matches("./");
                return Err(LauncherError::Usage(format!(
                    "job.yaml: command '{program}' is not executable (chmod +x {rel}), so no worker could start it"
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
