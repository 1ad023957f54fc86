//! The containers of a job's pods, all running the one `t2` binary of the image:
//! `t2 pod init` (fetches or receives the package), one `t2 pod agent` per worker of a pod
//! (worker ID = ordinal × workers_per_pod + container index), and `t2 pod jobmaster`.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvFromSource, EnvVar, GRPCAction, Probe, SecretEnvSource,
    VolumeMount,
};
use t2_core::duration::format_duration;
use t2_core::spec::JobSpec;

use super::placement::container_security;
use super::pod::{env, field, secret_key, var, INIT_CONTAINER, JM_CONTAINER, TLS_DIR};
use super::services::GRPC_PORT_NAME;
use super::sizing;
use super::token::TOKEN_KEY;
use super::JobInfo;
use crate::settings::Settings;

/// The name of the job master's health port (issue 18).
pub const HEALTH_PORT_NAME: &str = "health";

/// The name of the sshd port of MPI jobs in Twister2's mode (`kubernetes.mpi_ssh_secret`).
pub const MPI_SSH_PORT_NAME: &str = "mpi-ssh";

/// The name of worker container `index`.
pub fn worker_container_name(index: u32) -> String {
    format!("worker-{index}")
}

fn base(name: &str, s: &Settings, role: &str) -> Container {
    Container {
        name: name.into(),
        image: Some(s.image.clone()),
        image_pull_policy: Some(s.image_pull_policy.as_str().into()),
        command: Some(vec!["t2".into(), "pod".into(), role.into()]),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    }
}

/// The job's CA certificate from its Secret, for containers that dial the job master (none
/// without TLS).
fn ca_env(job: &JobInfo) -> Option<EnvVar> {
    job.tls.as_ref().map(|_| {
        secret_key(
            env::JOB_CA,
            &job.names().token_secret(),
            t2_core::tls::CA_FILE,
        )
    })
}

/// Env vars every container of the job has.
fn job_env(job: &JobInfo) -> Vec<EnvVar> {
    vec![
        var(env::JOB_ID, &job.id),
        field(env::NAMESPACE, "metadata.namespace"),
        field(env::POD_NAME, "metadata.name"),
    ]
}

/// The init container of worker pods: puts the verified package at `/t2/package/`.
pub fn init_container(
    job: &JobInfo,
    spec: &JobSpec,
    s: &Settings,
    work: &VolumeMount,
) -> Container {
    let mut e = job_env(job);
    e.push(var(env::PACKAGE_SHA256, &job.package_sha256));
    e.push(var(env::PACKAGE_BYTES, job.package_bytes.to_string()));
    e.push(var(
        env::PACKAGE_TIMEOUT,
        format_duration(s.package_timeout),
    ));
    match &job.package_url {
        Some(url) => e.push(var(env::PACKAGE_URL, url)),
        // Direct delivery: pods made later fetch the job master's copy.
        None => {
            e.push(var(env::JOB_MASTER, job.jobmaster_url(s)));
            e.push(secret_key(
                env::JOB_TOKEN,
                &job.names().token_secret(),
                TOKEN_KEY,
            ));
            e.extend(ca_env(job));
        }
    }
    Container {
        env: Some(e),
        volume_mounts: Some(vec![work.clone()]),
        resources: Some(sizing::init_resources(spec)),
        security_context: Some(container_security(true)),
        ..base(INIT_CONTAINER, s, "init")
    }
}

/// Worker container `index` of a worker pod.
pub fn worker_container(
    job: &JobInfo,
    spec: &JobSpec,
    s: &Settings,
    index: u32,
    mounts: &[VolumeMount],
    extra_env: &[EnvVar],
) -> Container {
    let mut e = job_env(job);
    e.extend([
        field(env::POD_IP, "status.podIP"),
        field(env::NODE_IP, "status.hostIP"),
        field(env::NODE_NAME, "spec.nodeName"),
        var(env::CONTAINER_INDEX, index.to_string()),
        var(env::WORKERS_PER_POD, spec.workers_per_pod.to_string()),
        var(env::JOB_MASTER, job.jobmaster_url(s)),
        secret_key(env::JOB_TOKEN, &job.names().token_secret(), TOKEN_KEY),
        var(env::PACKAGE_SHA256, &job.package_sha256),
    ]);
    e.extend(ca_env(job));
    e.extend(extra_env.iter().cloned());
    let env_from: Vec<EnvFromSource> = s
        .secrets
        .iter()
        .filter(|sec| sec.env)
        .map(|sec| EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: sec.name.clone(),
                optional: None,
            }),
            ..EnvFromSource::default()
        })
        .collect();
    // Twister2's MPI mode: the agent's sshd, which mpirun on worker 0 reaches (declared for
    // people and network policies; the agent service's port is chosen at start and travels
    // in the worker list instead).
    let ports = (spec.mpi.enabled && !s.mpi_ssh_secret.is_empty()).then(|| {
        vec![ContainerPort {
            name: Some(MPI_SSH_PORT_NAME.into()),
            container_port: i32::from(t2_worker::agent::mpi::SSH_PORT),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]
    });
    Container {
        env: Some(e),
        env_from: (!env_from.is_empty()).then_some(env_from),
        ports,
        volume_mounts: Some(mounts.to_vec()),
        resources: Some(sizing::worker_resources(job, spec, s)),
        // A read-only root: the agent and the program write to /t2, /tmp and the volumes.
        security_context: Some(container_security(true)),
        ..base(&worker_container_name(index), s, "agent")
    }
}

/// The job master's container; with direct delivery `mounts` hold the work area, where the
/// submitter streams the job master's copy of the package.
pub fn jobmaster_container(job: &JobInfo, s: &Settings, mounts: &[VolumeMount]) -> Container {
    let mut e = job_env(job);
    e.push(var(env::LISTEN, format!("0.0.0.0:{}", s.port)));
    e.push(var(
        env::HEALTH_LISTEN,
        format!("0.0.0.0:{}", s.health_port),
    ));
    e.push(secret_key(
        env::JOB_TOKEN,
        &job.names().token_secret(),
        TOKEN_KEY,
    ));
    if job.tls.is_some() {
        e.push(var(env::TLS_DIR, TLS_DIR));
    }
    if let (Some(url), Some(_)) = (&job.package_url, &job.uploader_ref_key) {
        // Uploader delivery: the job master keeps the job's lease on the package.
        e.push(var(env::PACKAGE_URL, url));
        e.push(var(env::PACKAGE_SHA256, &job.package_sha256));
        e.push(secret_key(
            env::UPLOADER_REF_KEY,
            &job.names().token_secret(),
            super::token::UPLOADER_REF_KEY,
        ));
    }
    Container {
        env: Some(e),
        ports: Some(vec![
            ContainerPort {
                name: Some(GRPC_PORT_NAME.into()),
                container_port: i32::from(s.port),
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some(HEALTH_PORT_NAME.into()),
                container_port: i32::from(s.health_port),
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            },
        ]),
        // The kubelet's own gRPC probes (grpc.health.v1 on the plaintext health port,
        // `incluster::health`): ready while it serves workers, alive while it runs.
        readiness_probe: Some(Probe {
            grpc: Some(GRPCAction {
                port: i32::from(s.health_port),
                service: Some(crate::incluster::health::SERVICE.into()),
            }),
            period_seconds: Some(2),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            grpc: Some(GRPCAction {
                port: i32::from(s.health_port),
                service: None,
            }),
            initial_delay_seconds: Some(10),
            period_seconds: Some(10),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        volume_mounts: Some(mounts.to_vec()),
        resources: Some(sizing::jobmaster_resources(job, s)),
        security_context: Some(container_security(true)),
        ..base(JM_CONTAINER, s, "jobmaster")
    }
}
