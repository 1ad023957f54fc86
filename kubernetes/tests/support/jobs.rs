//! The representative jobs of the Kubernetes tests, with fixed IDs, tokens and
//! package hashes so that their objects are the same on every run.

use t2_core::spec::{load_job_spec, JobSpec, Layer};
use t2_kubernetes::manifests::DRY_RUN_UID;
use t2_kubernetes::{read_settings, JobInfo, Settings};

/// A job: its info, spec and settings.
pub struct TestJob {
    /// Golden file stem.
    pub name: &'static str,
    /// What objects are made from.
    pub info: JobInfo,
    /// The merged spec.
    pub spec: JobSpec,
    /// The checked settings.
    pub settings: Settings,
}

/// The spec from `job_yaml` layered for the kubernetes cluster (no conf folder).
pub fn spec(job_yaml: &str, overrides: &[&str]) -> JobSpec {
    let layer = Layer {
        origin: "job.yaml".into(),
        text: job_yaml.into(),
    };
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    load_job_spec("kubernetes", None, Some(&layer), &o).expect("spec")
}

/// Fixed job info for `id`.
pub fn info(id: &str, package_url: Option<String>) -> JobInfo {
    JobInfo {
        id: id.into(),
        owner: "alice".into(),
        namespace: "t2-jobs".into(),
        token: "0123456789abcdef0123456789abcdef".into(),
        package_sha256: "5e1f".repeat(16),
        package_bytes: 123_456,
        uploader_ref_key: package_url.as_ref().map(|_| "5e1f-ref-key".into()),
        package_url,
        submitted_at: "2025-01-02T03:04:05Z".into(),
        root_uid: DRY_RUN_UID.into(),
        tls: None,
    }
}

/// Fixed stand-ins for a job's certificate (the objects only carry them), so that golden
/// files stay the same on every run.
pub fn fixed_certs() -> t2_core::tls::JobCerts {
    let pem =
        |kind: &str, body: &str| format!("-----BEGIN {kind}-----\n{body}\n-----END {kind}-----\n");
    t2_core::tls::JobCerts {
        ca_pem: pem("CERTIFICATE", "dGVzdCBDQQ=="),
        cert_pem: pem("CERTIFICATE", "dGVzdCBqb2IgbWFzdGVy"),
        key_pem: pem("PRIVATE KEY", "dGVzdCBrZXk="),
        agent_cert_pem: pem("CERTIFICATE", "dGVzdCBhZ2VudHM="),
        agent_key_pem: pem("PRIVATE KEY", "dGVzdCBhZ2VudCBrZXk="),
    }
}

fn job(name: &'static str, id: &str, url: Option<String>, yaml: &str) -> TestJob {
    let spec = spec(yaml, &[]);
    let settings = read_settings(&spec).expect("settings");
    let mut info = info(id, url);
    info.tls = spec.tls.then(fixed_certs);
    TestJob {
        name,
        info,
        spec,
        settings,
    }
}

/// A plain job: 4 workers, defaults everywhere.
pub fn plain() -> TestJob {
    job(
        "plain",
        "shell-k2j4x9q1",
        None,
        "name: shell\ncommand: [./run.sh]\nworkers: 4\n",
    )
}

/// Per-worker persistent storage, user Secrets (env and files), an in-memory volume, a
/// volatile disk, a node selector, tolerations and spreading over nodes.
pub fn storage_secrets_memory() -> TestJob {
    job(
        "storage-secrets-memory",
        "etl-nightly-0a1b2c3d",
        None,
        r#"name: etl-nightly
command: [./etl, --all]
workers: 3
resources: {cpu: 1.5, memory_mb: 2048, disk_mb: 1024}
kubernetes:
  image: registry.example.com/data/t2:0.1.0
  image_pull_policy: Always
  image_pull_secrets: [regcred]
  memory_volume_mb: 256
  storage: {class: fast-ssd, size_mb: 10240}
  secrets:
    - {name: s3-credentials, env: true}
    - {name: tls-keys, mount: /etc/keys}
  node_selector: {disktype: ssd}
  tolerations:
    - {key: dedicated, operator: Equal, value: batch, effect: NoSchedule}
  spread: nodes
  cpu_limit: true
"#,
    )
}

/// A jar with 2 workers per pod, shared ReadWriteMany storage, delivered by the uploader,
/// spread strictly over racks.
pub fn jar_two_per_pod() -> TestJob {
    job(
        "jar-two-per-pod",
        "wordcount-zz99yy88",
        Some(format!(
            "http://t2-uploader.t2-jobs.svc:8080/packages/{}",
            "5e1f".repeat(16)
        )),
        r#"name: wordcount
command: [java, -cp, wordcount.jar, org.example.WordCount]
workers: 4
workers_per_pod: 2
resources: {cpu: 2, memory_mb: 1024}
kubernetes:
  storage: {size_mb: 2048, shared: true, mount: /data}
  spread: racks
  spread_strict: true
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - {key: kubernetes.io/arch, operator: In, values: [amd64]}
"#,
    )
}

/// Racks and datacenters from Twister2's lists (key names as its guide writes them, the job
/// master maps each pod's hostIP), its rack label, and workers packed into few racks.
pub fn rack_packed() -> TestJob {
    job(
        "rack-packed",
        "allreduce-r4ck5p4k",
        None,
        r#"name: allreduce
command: [./allreduce]
workers: 6
kubernetes.node.locations.from.config: true
kubernetes.datacenters.list:
- dc1: ['blue-rack', 'green-rack']
kubernetes.racks.list:
- blue-rack: ['10.0.0.1', '10.0.0.2']
- green-rack: ['10.0.1.1', '10.0.1.2']
rack.labey.key: example.com/rack
tls: false
kubernetes:
  pack: racks
"#,
    )
}

/// All of them.
pub fn all() -> Vec<TestJob> {
    vec![
        plain(),
        storage_secrets_memory(),
        jar_two_per_pod(),
        rack_packed(),
        mpi(),
        mpi_ssh(),
        network_ttl(),
        no_network_policy(),
        guaranteed(),
        limits(),
        existing_volumes(),
        host_path(),
        gang_volcano(),
        gang_kueue(),
        priority_labels(),
    ]
}

/// Issue 18 (res18): whole CPUs limited to the request, so every container (the init
/// container too) has requests equal to its limits: Guaranteed pods.
pub fn guaranteed() -> TestJob {
    job(
        "guaranteed",
        "solver-9u4r4n7d",
        None,
        r#"name: solver
command: [./solve]
workers: 2
resources: {cpu: 2, memory_mb: 1024}
kubernetes:
  cpu_limit: true
"#,
    )
}

/// Issue 18 (res18): limits above the requests (request 1 CPU, limit 4), two workers per
/// pod sharing an in-memory volume (added to their memory), `/t2` sized by hand.
pub fn limits() -> TestJob {
    job(
        "limits",
        "sim-l1m1t5xx",
        None,
        r#"name: sim
command: [./sim]
workers: 4
workers_per_pod: 2
resources: {cpu: 1, memory_mb: 2048, limits: {cpu: 4, memory_mb: 8192}}
kubernetes:
  memory_volume_mb: 1024
  work_volume_mb: 4096
"#,
    )
}

/// Issue 18 (res18): existing claims, as the research-pipeline practical has them: a
/// ReadOnlyMany data source and a ReadWriteMany shared output.
pub fn existing_volumes() -> TestJob {
    job(
        "existing-volumes",
        "variants-3x1st1ng",
        None,
        r#"name: variants
command: [./call.sh]
workers: 3
kubernetes:
  volumes:
    - {claim: pv1000g, mount: /datasource, read_only: true}
    - {claim: shared-workspace, mount: /workspace}
"#,
    )
}

/// Issue 18 (res18): a node's cache folder, as Toil's TOIL_KUBERNETES_HOST_PATH mounts it.
pub fn host_path() -> TestJob {
    job(
        "host-path",
        "toil-h0stp4th",
        None,
        r#"name: toil
command: [./run.sh]
workers: 2
kubernetes:
  allow_host_path: true
  volumes:
    - {host_path: /data/scratch, mount: /var/lib/toil}
"#,
    )
}

/// Issue 18 (k18b): TLS, the NetworkPolicies on a custom port, a finished job kept an hour,
/// the job master's health port moved.
pub fn network_ttl() -> TestJob {
    job(
        "network-ttl",
        "train-n3tp0l1c",
        None,
        r#"name: train
command: [./train]
workers: 2
tls: true
kubernetes:
  port: 7000
  health_port: 7001
  ttl_after_finished: 1h
  network_policy: true
"#,
    )
}

/// Issue 18 (k18b): `kubernetes.network_policy: false`, removed at once when finished.
pub fn no_network_policy() -> TestJob {
    job(
        "no-network-policy",
        "open-n0p0l1cy",
        None,
        r#"name: open
command: [./serve]
workers: 1
tls: false
kubernetes:
  network_policy: false
  ttl_after_finished: 0s
"#,
    )
}

/// An MPI job (t2 as OpenMPI's remote shell): 4 workers of 2 slots, the `-mpi` image.
pub fn mpi() -> TestJob {
    job(
        "mpi",
        "mpi-allreduce-m4p1r2s3",
        None,
        "name: mpi-allreduce\ncommand: [./allreduce]\nworkers: 4\nmpi: {slots_per_worker: 2}\n",
    )
}

/// An MPI job in Twister2's mode: the SSH-key Secret of Twister2's guide mounted for sshd.
pub fn mpi_ssh() -> TestJob {
    job(
        "mpi-ssh",
        "mpi-allreduce-s5s6h7k8",
        None,
        r#"name: mpi-allreduce
command: [./allreduce]
workers: 3
mpi: true
kubernetes:
  mpi_ssh_secret: twister2-openmpi-ssh-key
"#,
    )
}

/// Issue 18 (gang18): a Volcano gang of 3 worker pods and the job master in queue
/// `research`, with a priority class.
pub fn gang_volcano() -> TestJob {
    job(
        "gang-volcano",
        "sim-v0lc4n0g",
        None,
        r#"name: sim
command: [./sim]
workers: 3
tls: false
kubernetes:
  gang: volcano
  queue: research
  priority_class: batch-high
  queue_timeout: 30m
"#,
    )
}

/// Issue 18 (gang18): a Kueue job in LocalQueue `team-a` (the queue label on its
/// StatefulSets and pods).
pub fn gang_kueue() -> TestJob {
    job(
        "gang-kueue",
        "sim-ku3u3j0b",
        None,
        r#"name: sim
command: [./sim]
workers: 2
tls: false
kubernetes:
  gang: kueue
  queue: team-a
"#,
    )
}

/// Issue 18 (gang18): no gang, but a priority class, another scheduler, and the user's
/// labels and annotations on every object and pod.
pub fn priority_labels() -> TestJob {
    job(
        "priority-labels",
        "report-pr10r1ty",
        None,
        r#"name: report
command: [./report]
workers: 1
tls: false
kubernetes:
  priority_class: low-priority
  scheduler_name: my-scheduler
  labels:
    example.com/team: ml-infra
    cost-center: "4711"
  annotations:
    example.com/contact: "alice@example.com"
    note: "made by t2, see README"
"#,
    )
}
