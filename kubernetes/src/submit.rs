//! `t2 submit kubernetes`: check what must exist before anything is created (the SSH-key
//! Secret of Twister2's MPI mode, the existing claims of `kubernetes.volumes`), choose how
//! the package travels (uploader when one is found, else direct), upload it once if an
//! uploader is used, create the job's objects root first,
//! wait for its pods with reasons (delivering the package directly when needed), then follow
//! it to its end unless detached. Any failure after the root exists deletes the root again.

use std::path::PathBuf;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use t2_core::spec::JobSpec;
use tracing::info_span;
use tracing::Instrument;

use super::client::Kube;
use super::create::{create_job, rollback};
use super::deliver::direct::ExecDeliverer;
use super::deliver::uploader::{find_uploader, upload, uploader_token, Uploaded, Uploader};
use super::deliver::Deliverer;
use super::error::{is_status, KubeError, Op};
use super::follow::{follow, Ended};
use super::manifests::workers::worker_pods;
use super::manifests::JobInfo;
use super::settings::{Settings, UploadMethod};
use super::wait::{wait_started_with, QueueWait, StartWait, Started};

/// A job ready to be submitted.
pub struct SubmitPlan {
    /// Its info (the root uid is filled in here).
    pub info: JobInfo,
    /// Its spec.
    pub spec: JobSpec,
    /// Its settings.
    pub settings: Settings,
    /// The package file.
    pub package: PathBuf,
    /// The uploader token, when given on the command line.
    pub uploader_token: Option<String>,
    /// Return once the job runs.
    pub detach: bool,
    /// Draw a progress bar for direct delivery (a terminal).
    pub progress_bar: bool,
    /// Deliver directly with this instead of the exec API (tests; other transports).
    pub deliverer: Option<Arc<dyn Deliverer>>,
}

/// How a submit ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Started and left running (`--detach`).
    Detached,
    /// Followed to its end.
    Ended(Ended),
}

/// How the package reaches the pods, once decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Streamed into each pod.
    Direct,
    /// Through this uploader.
    Uploader(Uploader),
}

/// Decides the delivery: `direct`, or the uploader the settings select (`auto`: when found).
pub async fn choose_delivery(kube: &Kube, s: &Settings) -> Result<Delivery, KubeError> {
    match s.upload {
        UploadMethod::Direct => Ok(Delivery::Direct),
        UploadMethod::Auto => Ok(find_uploader(kube, &s.uploader_selector)
            .await?
            .map_or(Delivery::Direct, Delivery::Uploader)),
        UploadMethod::Uploader => match find_uploader(kube, &s.uploader_selector).await? {
            Some(u) => Ok(Delivery::Uploader(u)),
            None => Err(KubeError::Config(format!(
                "kubernetes.upload is 'uploader' but no Service labelled {} is in namespace '{}'; deploy one (deploy/uploader.yaml) or use upload: direct",
                s.uploader_selector, kube.namespace
            ))),
        },
    }
}

fn say(line: &str) {
    eprintln!("t2: {line}");
}

/// Submits `plan`; see the module documentation.
pub async fn submit(kube: &Kube, plan: SubmitPlan) -> Result<Outcome, KubeError> {
    let span = info_span!("submit", job_id = %plan.info.id, namespace = %kube.namespace);
    submit_inner(kube, plan).instrument(span).await
}

/// Twister2's MPI mode (`kubernetes.mpi_ssh_secret`) needs its SSH-key Secret, with the keys
/// the agents read: checked before anything is created (pods mounting a missing Secret would
/// wait for their volume until `start_timeout`).
pub async fn check_mpi_ssh_secret(
    kube: &Kube,
    spec: &JobSpec,
    s: &Settings,
) -> Result<(), KubeError> {
    if !spec.mpi.enabled || s.mpi_ssh_secret.is_empty() {
        return Ok(());
    }
    let (name, ns) = (&s.mpi_ssh_secret, &kube.namespace);
    let how = format!(
        "make it as Twister2's guide does: kubectl -n {ns} create secret generic {name} --from-file=id_rsa=$HOME/.ssh/id_rsa --from-file=id_rsa.pub=$HOME/.ssh/id_rsa.pub --from-file=authorized_keys=$HOME/.ssh/id_rsa.pub"
    );
    let secret = match kube
        .api::<k8s_openapi::api::core::v1::Secret>()
        .get(name)
        .await
    {
        Ok(secret) => secret,
        Err(e) if is_status(&e, 404) => {
            return Err(KubeError::Config(format!(
                "kubernetes.mpi_ssh_secret: there is no Secret '{name}' in namespace '{ns}'; {how}"
            )))
        }
        Err(e) => return Err(Op::named("get", "secrets", ns, name).error(&kube.server, e)),
    };
    let has = |k: &str| {
        secret.data.as_ref().is_some_and(|d| d.contains_key(k))
            || secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(k))
    };
    let missing: Vec<&str> = t2_worker::agent::mpi_ssh::SECRET_KEYS
        .into_iter()
        .filter(|k| !has(k))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(KubeError::Config(format!(
            "kubernetes.mpi_ssh_secret: Secret '{name}' in namespace '{ns}' has no key {}; {how}",
            missing.join(" and no key ")
        )))
    }
}

async fn submit_inner(kube: &Kube, mut plan: SubmitPlan) -> Result<Outcome, KubeError> {
    let id = plan.info.id.clone();
    check_mpi_ssh_secret(kube, &plan.spec, &plan.settings).await?;
    super::claims::check_claims(kube, &plan.settings, worker_pods(&plan.spec)).await?;
    let delivery = choose_delivery(kube, &plan.settings).await?;
    if let Delivery::Uploader(up) = &delivery {
        let token = uploader_token(kube, up, plan.uploader_token.as_deref()).await?;
        let how = upload(
            kube,
            up,
            &token,
            &plan.package,
            &plan.info.package_sha256,
            &id,
        )
        .await?;
        say(&match how {
            Uploaded::Sent => format!("uploaded the package to the uploader '{}'", up.service),
            Uploaded::AlreadyThere => {
                format!("the uploader '{}' already has the package", up.service)
            }
        });
        plan.info.package_url = Some(up.package_url(&kube.namespace, &plan.info.package_sha256));
        plan.info.uploader_ref_key = Some(t2_uploader::auth::ref_key(
            &token,
            &plan.info.package_sha256,
            &id,
        ));
    }
    let objects = create_job(kube, &mut plan.info, &plan.spec, &plan.settings).await?;
    say(&format!(
        "job {id} submitted to namespace '{}': {} worker(s) in {} pod(s); created {}",
        kube.namespace,
        plan.spec.workers,
        worker_pods(&plan.spec),
        std::iter::once(format!("ConfigMap/{id}"))
            .chain(objects.iter().map(|o| format!("{}/{}", o.kind(), o.name())))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let pods = worker_pods(&plan.spec) as usize;
    let bar = Arc::new(if plan.progress_bar && delivery == Delivery::Direct {
        let b = ProgressBar::with_draw_target(
            Some(plan.info.package_bytes * pods as u64),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) = ProgressStyle::with_template(
            "t2: package {bytes}/{total_bytes} {wide_bar} {bytes_per_sec}",
        ) {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    });
    let custom = plan.deliverer.take();
    let deliverer: Option<Arc<dyn Deliverer>> = (delivery == Delivery::Direct).then(|| {
        custom.unwrap_or_else(|| {
            Arc::new(ExecDeliverer::new(
                kube.clone(),
                plan.package.clone(),
                &plan.info.package_sha256,
                plan.info.package_bytes,
                bar.clone(),
            )) as Arc<dyn Deliverer>
        })
    });
    let wait = StartWait {
        job_id: id.clone(),
        worker_pods: pods,
        unschedulable_deadline: plan.settings.start_timeout,
        // A crash loop the job allows (`max_restarts`) waits for the kubelet's back-off.
        deadline: super::gc::start_deadline(&plan.settings)
            + super::podstate::crash_loop_allowance(plan.spec.max_restarts),
        crash: super::podstate::CrashRules {
            max_restarts: plan.spec.max_restarts,
            workers_per_pod: plan.spec.workers_per_pod,
        },
        deliverer,
        parallel: plan.settings.parallel_uploads as usize,
        queue: QueueWait::of(&plan.settings),
    };
    let mut report = |p: &super::podstate::Progress| bar.suspend(|| say(&format!("{id}: {p}")));
    let mut queued = |line: &str| bar.suspend(|| say(&format!("{id}: {line}")));
    let started = match wait_started_with(kube, &wait, &mut report, &mut queued).await {
        Ok(s) => s,
        Err(cause) => {
            bar.finish_and_clear();
            return Err(rollback(kube, &id, cause).await);
        }
    };
    bar.finish_and_clear();
    if let Started::Running(_) = started {
        say(&format!("job {id} is running"));
    }
    if plan.detach {
        say(&format!(
            "follow it with 't2 status {id}' and 't2 logs {id} -f'; end it with 't2 kill {id}'"
        ));
        return Ok(Outcome::Detached);
    }
    say("Ctrl-C stops following; the job keeps running (end it with 't2 kill')");
    let mut on_state = |s: &str| say(&format!("job {id} {s}"));
    let ended = follow(kube, &id, &mut on_state).await?;
    Ok(Outcome::Ended(ended))
}
