//! The volumes of a job's pods: the work area `/t2` (package and unpacked workers), the job
//! spec from the root ConfigMap, the optional in-memory and volatile emptyDirs, persistent
//! storage (a claim per worker pod, or one shared ReadWriteMany claim), user Secrets as
//! files, the workers' `/tmp`, and existing volumes ([`super::existing`]).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy;
use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, EmptyDirVolumeSource, EnvVar, KeyToPath, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, SecretVolumeSource, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use t2_core::spec::JobSpec;

use super::labels::{labels, owned_meta};
use super::pod::{env, mib, var, JOB_CONFIG_DIR, MEMORY_DIR, T2_DIR, TMP_DIR, VOLATILE_DIR};
use super::root::keys;
use super::JobInfo;
use crate::settings::Settings;

/// The work-area volume.
pub const WORK: &str = "t2";
/// The job-spec volume.
pub const JOB: &str = "job";
/// The in-memory volume.
pub const MEMORY: &str = "memory";
/// The volatile-disk volume.
pub const VOLATILE: &str = "volatile";
/// The persistent volume (claim template or shared claim).
pub const DATA: &str = "data";
/// The workers' `/tmp`.
pub const TMP: &str = "tmp";

/// Volumes, mounts and env vars of worker pods.
#[derive(Debug, Clone, Default)]
pub struct WorkerVolumes {
    /// The pod's volumes (per-worker claims come from the claim template instead).
    pub volumes: Vec<Volume>,
    /// Mounts of each worker container.
    pub mounts: Vec<VolumeMount>,
    /// Env vars naming the optional folders.
    pub env: Vec<EnvVar>,
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str, medium: Option<&str>, size_mb: Option<u64>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(String::from),
            size_limit: size_mb.map(mib),
        }),
        ..Volume::default()
    }
}

/// The work area, mounted by every container of worker pods.
pub fn work_volume() -> (Volume, VolumeMount) {
    (empty_dir(WORK, None, None), mount(WORK, T2_DIR, false))
}

/// The work area with a `sizeLimit` of `size_mb` MiB ([`super::sizing`]).
pub fn work_volume_sized(size_mb: u64) -> (Volume, VolumeMount) {
    (
        empty_dir(WORK, None, Some(size_mb)),
        mount(WORK, T2_DIR, false),
    )
}

/// The job spec from the root ConfigMap.
pub fn job_volume(job: &JobInfo) -> (Volume, VolumeMount) {
    let v = Volume {
        name: JOB.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: job.names().root(),
            items: Some(vec![KeyToPath {
                key: keys::SPEC.into(),
                path: keys::SPEC.into(),
                mode: None,
            }]),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    (v, mount(JOB, JOB_CONFIG_DIR, true))
}

/// The job master's certificate volume.
pub const TLS: &str = "tls";

/// The job master's certificate, key and CA from the token Secret (jobs with TLS), mounted
/// read-only at [`TLS_DIR`](super::pod::TLS_DIR), readable by the pod's group only; the
/// token itself stays out of it.
pub fn tls_volume(job: &JobInfo) -> Option<(Volume, VolumeMount)> {
    use t2_core::tls::{CA_FILE, CERT_FILE, KEY_FILE};
    job.tls.as_ref()?;
    Some(secret_files(job, &[CA_FILE, CERT_FILE, KEY_FILE]))
}

/// The agents' certificate and key from the token Secret (MPI jobs with TLS: their agents
/// serve commands to one another over TLS), mounted read-only at
/// [`TLS_DIR`](super::pod::TLS_DIR) in worker pods, readable by the pod's group only.
pub fn agent_tls_volume(job: &JobInfo, spec: &JobSpec) -> Option<(Volume, VolumeMount)> {
    use t2_core::tls::{AGENT_CERT_FILE, AGENT_KEY_FILE};
    job.tls.as_ref()?;
    spec.mpi
        .enabled
        .then(|| secret_files(job, &[AGENT_CERT_FILE, AGENT_KEY_FILE]))
}

/// Keys `keys` of the token Secret as files of the [`TLS`] volume at `TLS_DIR`.
fn secret_files(job: &JobInfo, keys: &[&str]) -> (Volume, VolumeMount) {
    let item = |key: &str| KeyToPath {
        key: key.into(),
        path: key.into(),
        mode: None,
    };
    let v = Volume {
        name: TLS.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(job.names().token_secret()),
            items: Some(keys.iter().map(|k| item(k)).collect()),
            default_mode: Some(0o440),
            optional: None,
        }),
        ..Volume::default()
    };
    (v, mount(TLS, super::pod::TLS_DIR, true))
}

/// The volume of an MPI job's SSH-key Secret, and where agents find it.
const MPI_SSH: &str = "mpi-ssh";
/// Where the SSH-key Secret of an MPI job is mounted.
pub const MPI_SSH_DIR: &str = "/etc/t2/mpi-ssh";

/// Everything worker containers mount.
pub fn worker_volumes(job: &JobInfo, spec: &JobSpec, s: &Settings) -> WorkerVolumes {
    let mut out = WorkerVolumes::default();
    let work = work_volume_sized(super::sizing::work_area_mb(job, spec, s));
    let tmp = (empty_dir(TMP, None, None), mount(TMP, TMP_DIR, false));
    for (v, m) in [work, job_volume(job), tmp] {
        out.volumes.push(v);
        out.mounts.push(m);
    }
    if s.memory_volume_mb > 0 {
        out.volumes
            .push(empty_dir(MEMORY, Some("Memory"), Some(s.memory_volume_mb)));
        out.mounts.push(mount(MEMORY, MEMORY_DIR, false));
        out.env.push(var(env::MEMORY_DIR, MEMORY_DIR));
    }
    if spec.resources.disk_mb > 0 {
        let size = spec.resources.disk_mb * u64::from(spec.workers_per_pod);
        out.volumes.push(empty_dir(VOLATILE, None, Some(size)));
        out.mounts.push(mount(VOLATILE, VOLATILE_DIR, false));
        out.env.push(var(env::VOLATILE_DIR, VOLATILE_DIR));
    }
    if let Some(st) = &s.storage {
        if st.shared {
            out.volumes.push(Volume {
                name: DATA.into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: job.names().shared_claim(),
                    read_only: None,
                }),
                ..Volume::default()
            });
        }
        out.mounts.push(mount(DATA, &st.mount, false));
        out.env.push(var(env::PERSISTENT_DIR, &st.mount));
    }
    if let Some((v, m)) = agent_tls_volume(job, spec) {
        out.volumes.push(v);
        out.mounts.push(m);
        out.env.push(var(env::TLS_DIR, super::pod::TLS_DIR));
    }
    if spec.mpi.enabled && !s.mpi_ssh_secret.is_empty() {
        // Twister2's mode: the keys for sshd and ssh, read by the agent (copied with 0600).
        out.volumes.push(Volume {
            name: MPI_SSH.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(s.mpi_ssh_secret.clone()),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        out.mounts.push(mount(MPI_SSH, MPI_SSH_DIR, true));
        out.env
            .push(var(t2_worker::agent::mpi::SSH_DIR_ENV, MPI_SSH_DIR));
    }
    for (i, sec) in s.secrets.iter().enumerate() {
        if let Some(path) = &sec.mount {
            let name = format!("secret-{i}");
            out.volumes.push(Volume {
                name: name.clone(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(sec.name.clone()),
                    default_mode: Some(0o440),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            });
            out.mounts.push(mount(&name, path, true));
        }
    }
    super::existing::add(s, &mut out.volumes, &mut out.mounts);
    out
}

fn claim_spec(access: &str, class: Option<&String>, size_mb: u64) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec![access.into()]),
        storage_class_name: class.cloned(),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([("storage".to_string(), mib(size_mb))])),
            limits: None,
        }),
        ..PersistentVolumeClaimSpec::default()
    }
}

/// The shared ReadWriteMany claim `<id>-data`, when storage is shared.
pub fn shared_claim(job: &JobInfo, s: &Settings) -> Option<PersistentVolumeClaim> {
    let st = s.storage.as_ref().filter(|st| st.shared)?;
    Some(PersistentVolumeClaim {
        metadata: owned_meta(job, job.names().shared_claim(), "storage"),
        spec: Some(claim_spec("ReadWriteMany", st.class.as_ref(), st.size_mb)),
        ..PersistentVolumeClaim::default()
    })
}

/// The claim template of per-worker storage, and the policy that deletes every claim t2
/// made: with the StatefulSet (`whenDeleted: Delete`, so garbage collection of the root
/// reaches them too) and with the pod a scale-down removes (`whenScaled: Delete`: the
/// StatefulSet controller makes the pod the claim's owner, so it goes with the pod). A
/// scaled-down worker's ID leaves the job, and a later scale-up starts it afresh, so its
/// data is not kept for it; `Retain` left those claims until the job ended.
pub fn claim_templates(
    job: &JobInfo,
    spec: &JobSpec,
    s: &Settings,
) -> Option<(
    Vec<PersistentVolumeClaim>,
    StatefulSetPersistentVolumeClaimRetentionPolicy,
)> {
    let st = s.storage.as_ref().filter(|st| !st.shared)?;
    let size = st.size_mb * u64::from(spec.workers_per_pod);
    let template = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(job.names().claim_template().into()),
            labels: Some(labels(job, "storage")),
            ..ObjectMeta::default()
        },
        spec: Some(claim_spec("ReadWriteOnce", st.class.as_ref(), size)),
        ..PersistentVolumeClaim::default()
    };
    let policy = StatefulSetPersistentVolumeClaimRetentionPolicy {
        when_deleted: Some("Delete".into()),
        when_scaled: Some("Delete".into()),
    };
    Some((vec![template], policy))
}
