//! `t2 submit kubernetes PKG`: prepare the job as for any cluster (spec, name, package), read
//! its `kubernetes` settings, then either print every object (`--dry-run`), have the API
//! server judge every object without storing any (`--dry-run=server`), or submit it. The
//! local job folder only holds the package while the submit runs; it is removed afterwards.

use std::io::IsTerminal;
use std::path::Path;

use t2_core::jobdir::t2_home;
use t2_core::package::{PackageSource, SourceKind};
use t2_kubernetes::client::load_config;
use t2_kubernetes::manifests::{to_json_list_text, DRY_RUN_UID};
use t2_kubernetes::submit::{submit, Outcome, SubmitPlan};
use t2_kubernetes::{build_objects, client, read_settings, to_yaml, JobInfo};

use super::args::{DryRun, ObjectFormat};
use super::{err, user};
use crate::cli::SubmitArgs;
use crate::error::LauncherError;
use crate::prepare::{prepare, Prepared};

/// Runs `t2 submit kubernetes`.
pub fn run(args: SubmitArgs) -> Result<i32, LauncherError> {
    if args.uploader.is_some() {
        return Err(LauncherError::Usage(
            "--uploader URL is for local jobs; on Kubernetes the uploader is found in the namespace (see kubernetes.upload, deploy/uploader.yaml)".into(),
        ));
    }
    // Before anything is built or written: the namespace as the API server would check it.
    if let Some(ns) = &args.kube.kube.namespace {
        t2_kubernetes::client::check_namespace(ns).map_err(err)?;
    }
    // A program the job's build step makes is checked once the build ran (a dry run skips
    // the build, and so the check); any other before anything is made.
    let built = job_yaml(&args).is_some_and(|v| v.get("build").is_some_and(|b| !b.is_null()));
    if !built {
        check_package_command(&args)?;
    }
    let home = t2_home()?;
    let prepared = prepare(&args, &home, "kubernetes")?;
    let root = prepared.dir.root().to_path_buf();
    let checked = if built && !args.kube.is_dry_run() {
        check_package_command(&args)
    } else {
        Ok(())
    };
    let result = checked.and_then(|()| run_prepared(&args, prepared));
    let _ = std::fs::remove_dir_all(&root);
    result
}

/// The job.yaml of a directory package, when it has one that parses.
fn job_yaml(args: &SubmitArgs) -> Option<serde_yaml::Value> {
    let source = PackageSource::detect(&args.package, args.class.as_deref()).ok()?;
    if source.kind != SourceKind::Directory {
        return None;
    }
    let text = source.job_yaml().ok()??;
    serde_yaml::from_str(&text).ok()
}

/// A `./program` command must be in a directory package (the image has the rest).
fn check_package_command(args: &SubmitArgs) -> Result<(), LauncherError> {
    let Ok(source) = PackageSource::detect(&args.package, args.class.as_deref()) else {
        return Ok(()); // prepare() reports it
    };
    if source.kind != SourceKind::Directory {
        return Ok(());
    }
    let program = job_yaml(args).and_then(|v| match v.get("command")? {
        serde_yaml::Value::Sequence(s) => s.first()?.as_str().map(String::from),
        serde_yaml::Value::String(s) => s.split_whitespace().next().map(String::from),
        _ => None,
    });
    if let Some(p) = program.filter(|p| p.contains('/') && !Path::new(p).is_absolute()) {
        if !source.path.join(&p).is_file() {
            return Err(LauncherError::Usage(format!(
                "job.yaml: command '{p}' is not in the package {}",
                source.path.display()
            )));
        }
    }
    Ok(())
}

fn run_prepared(args: &SubmitArgs, prepared: Prepared) -> Result<i32, LauncherError> {
    let spec = prepared.spec.clone();
    let settings = read_settings(&spec).map_err(err)?;
    let record = &prepared.record;
    let token = crate::jobfiles::read_token(&prepared.dir)?;
    let bytes = std::fs::metadata(prepared.dir.package_path())
        .map_err(LauncherError::io("cannot read the package"))?
        .len();
    let rt = crate::runtime()?;
    let flags = &args.kube.kube;
    let mut info = JobInfo {
        id: record.id.clone(),
        owner: user(),
        namespace: String::new(),
        token,
        package_sha256: record.package_sha256.clone(),
        package_bytes: bytes,
        package_url: None,
        uploader_ref_key: None,
        submitted_at: record.submitted_at.clone(),
        root_uid: DRY_RUN_UID.into(),
        tls: None,
    };
    if args.kube.dry_run == Some(DryRun::Server) {
        return server_dry_run(&rt, flags, info, &spec, &settings);
    }
    if args.kube.is_dry_run() {
        // The namespace as a submit would use it; no cluster is contacted.
        info.namespace = match &flags.namespace {
            Some(ns) => ns.clone(),
            None => rt
                .block_on(load_config(&flags.options()))
                .map(|c| c.default_namespace)
                .unwrap_or_else(|_| "default".into()),
        };
        t2_kubernetes::client::check_namespace(&info.namespace).map_err(err)?;
        info.tls = job_certs(&info, &spec)?;
        let info = info.with_placeholders();
        let objects = build_objects(&info, &spec, &settings);
        match args.kube.output.unwrap_or_default() {
            ObjectFormat::Yaml => crate::stdout::out!("{}", to_yaml(&objects)),
            ObjectFormat::Json => crate::stdout::outln!("{}", to_json_list_text(&objects)),
        }
        eprintln!(
            "t2: dry run: {} objects of job {} printed, nothing created (the token and certificate are placeholders; owner references carry an empty uid, which the API server refuses, until the root exists; the package is streamed directly unless an uploader is found)",
            objects.len(),
            info.id
        );
        return Ok(0);
    }
    let kube = rt
        .block_on(client::connect(&flags.options()))
        .map_err(err)?;
    info.namespace = kube.namespace.clone();
    // The owner label: who the cluster says the submitter is (issue 18).
    info.owner = rt
        .block_on(t2_kubernetes::identity::owner(&kube, &user()))
        .map_err(err)?;
    info.tls = job_certs(&info, &spec)?;
    let id = info.id.clone();
    let plan = SubmitPlan {
        info,
        spec,
        settings,
        package: prepared.dir.package_path(),
        uploader_token: args.uploader_token.clone(),
        detach: args.detach,
        progress_bar: std::io::stderr().is_terminal(),
        deliverer: None,
    };
    let outcome = rt.block_on(submit(&kube, plan)).map_err(err)?;
    Ok(match outcome {
        Outcome::Detached => {
            crate::stdout::outln!("{id}");
            0
        }
        Outcome::Ended(end) => {
            let state = end.state.clone().unwrap_or_else(|| "GONE".into());
            match &end.reason {
                Some(r) => crate::stdout::outln!("job {id} {state}: {r}"),
                None if end.state.is_none() => crate::stdout::outln!("job {id} ended: its root ConfigMap was deleted before it recorded a final state"),
                None => crate::stdout::outln!("job {id} {state}"),
            }
            match state.as_str() {
                "COMPLETED" => 0,
                "KILLED" => 3,
                _ => 1,
            }
        }
    })
}

/// `--dry-run=server`: every object judged by the API server (see
/// `t2_kubernetes::dry_run`), one line each on stdout; 0 when all would be created, else 1.
fn server_dry_run(
    rt: &tokio::runtime::Runtime,
    flags: &super::args::KubeFlags,
    mut info: JobInfo,
    spec: &t2_core::spec::JobSpec,
    settings: &t2_kubernetes::Settings,
) -> Result<i32, LauncherError> {
    let kube = rt
        .block_on(client::connect(&flags.options()))
        .map_err(err)?;
    info.namespace = kube.namespace.clone();
    info.owner = rt
        .block_on(t2_kubernetes::identity::owner(&kube, &user()))
        .map_err(err)?;
    info.tls = job_certs(&info, spec)?;
    let mut info = info.with_placeholders();
    let judged = rt
        .block_on(t2_kubernetes::dry_run::server_dry_run(
            &kube, &mut info, spec, settings,
        ))
        .map_err(err)?;
    for j in &judged {
        match &j.verdict {
            t2_kubernetes::dry_run::Verdict::Accepted => {
                crate::stdout::outln!("{}: accepted (server dry run)", j.object)
            }
            t2_kubernetes::dry_run::Verdict::Refused { code, message } => {
                crate::stdout::outln!("{}: refused ({code}): {message}", j.object)
            }
        }
        for w in &j.warnings {
            crate::stdout::outln!("  warning: {w}");
        }
    }
    let refused = judged.iter().filter(|j| !j.accepted()).count();
    eprintln!(
        "t2: server dry run in namespace '{}': {} of {} objects of job {} would be created, {refused} refused; nothing was created",
        kube.namespace,
        judged.len() - refused,
        judged.len(),
        info.id
    );
    Ok(i32::from(refused > 0))
}

/// The job's certificate (a job with `tls: true`), for the job master Service's names in the
/// job's namespace.
fn job_certs(
    info: &JobInfo,
    spec: &t2_core::spec::JobSpec,
) -> Result<Option<t2_core::tls::JobCerts>, LauncherError> {
    if !spec.tls {
        return Ok(None);
    }
    t2_core::tls::mint(&info.id, &info.jobmaster_names())
        .map(Some)
        .map_err(|e| LauncherError::Failed(e.to_string()))
}
