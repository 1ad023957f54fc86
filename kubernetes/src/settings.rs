//! The `kubernetes` section of a job spec: image, volumes, secrets, placement and how the
//! package travels. It is layered like every other key (`conf/kubernetes/*.yaml` ← `job.yaml`
//! ← `-D kubernetes.image=…`) and checked here, before anything is created: unknown keys get a
//! "did you mean", bad values say what to write.
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `image` | `t2:<version>` (`t2:<version>-jre` for `java` jobs, `t2:<version>-mpi` for MPI jobs) | the image holding `t2` (docker/Dockerfile) |
//! | `image_pull_policy` | `IfNotPresent` | `Always`, `IfNotPresent` or `Never` |
//! | `image_pull_secrets` | `[]` | Secrets to pull the image with |
//! | `service_account` | `""` | empty: the job master runs as the job's own ServiceAccount `<id>-jm`, made at submit with a Role reaching only this job; a name: that existing ServiceAccount instead (the job's Role is bound to it, so job masters sharing it share their jobs' permissions) |
//! | `jobmaster.cpu` / `jobmaster.memory_mb` | `0.25` / `256` | the job master's requests |
//! | `port` | `7710` | the job master's gRPC port |
//! | `memory_volume_mb` | `0` | > 0: an in-memory emptyDir of this size at `/t2/memory`, added to the workers' memory requests and limits (its pages are charged to the pod's memory) |
//! | `storage.size_mb` | — | persistent storage at `storage.mount` (default `/t2/persistent`) |
//! | `storage.class` | cluster default | its StorageClass |
//! | `storage.shared` | `false` | `false`: one ReadWriteOnce claim per worker pod; `true`: one ReadWriteMany claim for all |
//! | `secrets` | `[]` | `[{name: S, env: true}]` (every key as an env var) or `[{name: S, mount: /dir}]` (files) |
//! | `node_selector` | `{}` | node labels workers must have |
//! | `affinity` / `tolerations` | none | Kubernetes `affinity` and `tolerations` of worker pods, as written in a pod spec |
//! | `spread` | `none` | `nodes` or `racks`: spread worker pods evenly (topologySpreadConstraints) |
//! | `spread_strict` | `false` | `true`: never schedule unevenly (DoNotSchedule) |
//! | `pack` | `none` | `racks` or `nodes`: pack worker pods into as few racks (`rack_label`) or nodes as the scheduler can (pod affinity to the job's other workers) |
//! | `pack_strict` | `false` | `true`: a worker pod must join a rack (node) that already has one of the job's workers (required pod affinity), else it is preferred (weight 100) |
//! | `rack_label` | `topology.kubernetes.io/zone` | the node label naming a rack (spreading; workers' rack) |
//! | `datacenter_label` | `topology.kubernetes.io/region` | the node label naming a datacenter (workers' datacenter) |
//! | `cpu_limit` | `false` | also limit CPU to the request (workers and the job master; memory is always limited), which makes the pods Guaranteed; `resources.limits.cpu` sets a higher worker limit instead |
//! | `upload` | `auto` | `direct` (stream into every pod), `uploader` (upload once), `auto` (uploader when one is found) |
//! | `uploader_selector` | `app.kubernetes.io/name=t2-uploader` | labels of the uploader's Service |
//! | `parallel_uploads` | `8` | pods receiving the package at once (direct) |
//! | `package_timeout` | `10m` | how long an init container waits for (or tries to fetch) the package |
//! | `start_timeout` | `5m` | how long pods may stay unschedulable before the submit fails |
//! | `ttl_after_finished` | `5m` | how long a finished job's pods and logs stay for `t2 logs`/`t2 status` before the job is removed (`0s`: at once; at most 7 days) |
//! | `network_policy` | `true` | a NetworkPolicy per job: its pods accept traffic only from the job's pods, the job master's port only from its workers |
//! | `health_port` | `7711` | the job master's plaintext gRPC health port (`grpc.health.v1`, the kubelet's `grpc` probes) |
//! | `volumes` | `[]` | volumes that already exist, mounted into every worker container: `[{claim: NAME, mount: /data, read_only: true}]` (a PersistentVolumeClaim: the submit checks it exists and that its access modes fit the job's pods; t2 never deletes it) or `[{host_path: /node/folder, mount: /cache}]` (a node's folder, needs `allow_host_path`) |
//! | `allow_host_path` | `false` | `true`: `volumes` may mount nodes' folders (`host_path`; Pod Security `baseline` and `restricted` refuse such pods) |
//! | `work_volume_mb` | `0` | the size of each worker pod's `/t2` (package and unpacked workers; its `sizeLimit` and ephemeral-storage request); `0`: sized from the package (see `manifests::sizing`) |
//! | `gang` | `none` | `volcano`: the job's pods are one PodGroup `<id>` (all or none start) scheduled by Volcano; `kueue`: its workloads carry Kueue's queue label |
//! | `queue` | `default` (volcano) | the Volcano Queue, or the Kueue LocalQueue (required with kueue) |
//! | `queue_timeout` | `1h` | gang jobs: how long the submit waits while the job is queued before it fails (at most 7 days) |
//! | `priority_class` | none | the PriorityClass of the job's pods (and of its PodGroup) |
//! | `scheduler_name` | `volcano` with `gang: volcano`, else the cluster's default | the scheduler of the job's pods |
//! | `labels` / `annotations` | `{}` | added to every object and pod of the job (keys t2 sets itself are refused) |
//! | `mpi_ssh_secret` | none | MPI jobs: an SSH-key Secret (keys `id_rsa`, `id_rsa.pub`, `authorized_keys`, as Twister2's `twister2-openmpi-ssh-key`) mounted into the pods, whose agents then start sshd and mpirun uses ssh instead of `t2 worker rsh` |

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use t2_core::spec::JobSpec;

use super::error::KubeError;
use super::image::check_image;

/// The image pull policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node lacks it.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "Always",
            Self::IfNotPresent => "IfNotPresent",
            Self::Never => "Never",
        }
    }
}

/// Where worker pods are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Spread {
    /// No spreading constraint.
    None,
    /// Evenly over nodes.
    Nodes,
    /// Evenly over racks (`rack_label`).
    Racks,
}

/// Where worker pods are packed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pack {
    /// No packing.
    None,
    /// Into as few nodes as possible.
    Nodes,
    /// Into as few racks (`rack_label`) as possible.
    Racks,
}

/// How the package reaches the pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadMethod {
    /// The uploader when one is found in the namespace, else direct.
    Auto,
    /// Streamed into every pod over the exec API.
    Direct,
    /// Uploaded once to the uploader; init containers download it.
    Uploader,
}

/// Which batch scheduler takes the job as one unit (issue 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Gang {
    /// None: the pods are scheduled one by one.
    #[default]
    None,
    /// Volcano: a PodGroup of every pod of the job (workers and the job master).
    Volcano,
    /// Kueue: the queue label on the job's workloads.
    Kueue,
}

impl Gang {
    /// As written in the settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Volcano => "volcano",
            Self::Kueue => "kueue",
        }
    }
}

/// The job master's requests.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobMasterResources {
    /// CPU cores.
    pub cpu: f64,
    /// Memory, MiB.
    pub memory_mb: u64,
}

impl Default for JobMasterResources {
    fn default() -> Self {
        Self {
            cpu: 0.25,
            memory_mb: 256,
        }
    }
}

/// Persistent storage.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// StorageClass; the cluster default when absent.
    #[serde(default)]
    pub class: Option<String>,
    /// Size, MiB (per worker pod, or in total when shared).
    pub size_mb: u64,
    /// One ReadWriteMany claim for all workers instead of one claim per pod.
    #[serde(default)]
    pub shared: bool,
    /// Where it is mounted.
    #[serde(default = "default_storage_mount")]
    pub mount: String,
}

fn default_storage_mount() -> String {
    "/t2/persistent".into()
}

/// A user Secret given to workers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretUse {
    /// The Secret's name (it must exist in the namespace).
    pub name: String,
    /// Every key as an environment variable.
    #[serde(default)]
    pub env: bool,
    /// Every key as a file in this folder.
    #[serde(default)]
    pub mount: Option<String>,
}

/// The checked `kubernetes` settings of a job.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The image; empty means the default for the job's command.
    pub image: String,
    /// Its pull policy.
    pub image_pull_policy: PullPolicy,
    /// Secrets to pull it with.
    pub image_pull_secrets: Vec<String>,
    /// The job master's ServiceAccount; empty: the job's own (`<id>-jm`).
    pub service_account: String,
    /// The job master's requests.
    pub jobmaster: JobMasterResources,
    /// The job master's gRPC port.
    pub port: u16,
    /// Size of the in-memory volume, MiB (0: none).
    pub memory_volume_mb: u64,
    /// Persistent storage.
    pub storage: Option<Storage>,
    /// User Secrets.
    pub secrets: Vec<SecretUse>,
    /// Node selector of worker pods.
    pub node_selector: BTreeMap<String, String>,
    /// Affinity of worker pods, as in a pod spec (checked when read).
    pub affinity: Option<Value>,
    /// Tolerations of worker pods, as in a pod spec (checked when read).
    pub tolerations: Vec<Value>,
    /// Spreading of worker pods.
    pub spread: Spread,
    /// Never schedule unevenly.
    pub spread_strict: bool,
    /// Packing of worker pods.
    pub pack: Pack,
    /// Packing is required (else preferred).
    pub pack_strict: bool,
    /// The node label naming a rack.
    pub rack_label: String,
    /// The node label naming a datacenter.
    pub datacenter_label: String,
    /// Limit CPU to the request.
    pub cpu_limit: bool,
    /// How the package travels.
    pub upload: UploadMethod,
    /// Labels of the uploader's Service.
    pub uploader_selector: String,
    /// Pods receiving the package at once.
    pub parallel_uploads: u32,
    /// How long an init container waits for the package.
    #[serde(with = "t2_core::duration::serde_human")]
    pub package_timeout: Duration,
    /// How long pods may stay unschedulable.
    #[serde(with = "t2_core::duration::serde_human")]
    pub start_timeout: Duration,
    /// MPI jobs: the SSH-key Secret for OpenMPI over sshd (empty: t2 is the remote shell).
    pub mpi_ssh_secret: String,

    // Issue 18, lifecycle, network and probes (k18b).
    /// How long a finished job's pods stay (for `t2 logs`) before its root is deleted.
    #[serde(with = "t2_core::duration::serde_human")]
    pub ttl_after_finished: Duration,
    /// A NetworkPolicy per job (ingress only from the job's own pods).
    pub network_policy: bool,
    /// The job master's plaintext gRPC health port (kubelet probes).
    pub health_port: u16,

    // Issue 18, resources and existing volumes (res18).
    /// Existing volumes mounted into worker containers.
    pub volumes: Vec<crate::claims::VolumeUse>,
    /// `volumes` may mount nodes' folders.
    pub allow_host_path: bool,
    /// Size of each worker pod's `/t2`, MiB (0: from the package).
    pub work_volume_mb: u64,
    // Issue 18, gang scheduling and queues (gang18).
    /// The batch scheduler taking the job as one unit.
    pub gang: Gang,
    /// Its queue (empty: Volcano's `default`).
    pub queue: String,
    /// How long the submit waits while the job is queued.
    #[serde(with = "t2_core::duration::serde_human")]
    pub queue_timeout: Duration,
    /// The PriorityClass of the job's pods (empty: none).
    pub priority_class: String,
    /// The scheduler of the job's pods (empty: Volcano's with `gang: volcano`, else the default).
    pub scheduler_name: String,
    /// Labels added to every object and pod of the job.
    pub labels: BTreeMap<String, String>,
    /// Annotations added to every object and pod of the job.
    pub annotations: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            image: String::new(),
            image_pull_policy: PullPolicy::IfNotPresent,
            image_pull_secrets: Vec::new(),
            service_account: String::new(),
            jobmaster: JobMasterResources::default(),
            port: 7710,
            memory_volume_mb: 0,
            storage: None,
            secrets: Vec::new(),
            node_selector: BTreeMap::new(),
            affinity: None,
            tolerations: Vec::new(),
            spread: Spread::None,
            spread_strict: false,
            pack: Pack::None,
            pack_strict: false,
            rack_label: "topology.kubernetes.io/zone".into(),
            datacenter_label: "topology.kubernetes.io/region".into(),
            cpu_limit: false,
            upload: UploadMethod::Auto,
            uploader_selector: "app.kubernetes.io/name=t2-uploader".into(),
            parallel_uploads: 8,
            package_timeout: Duration::from_secs(600),
            start_timeout: Duration::from_secs(300),
            mpi_ssh_secret: String::new(),
            // Issue 18 (k18b).
            ttl_after_finished: DEFAULT_TTL_AFTER_FINISHED,
            network_policy: true,
            health_port: 7711,
            // Issue 18 (res18).
            volumes: Vec::new(),
            allow_host_path: false,
            work_volume_mb: 0,
            // Issue 18 (gang18).
            gang: Gang::None,
            queue: String::new(),
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            priority_class: String::new(),
            scheduler_name: String::new(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// How long a gang job may wait in its queue by default (`kubernetes.queue_timeout`).
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(3600);

/// How long a finished job stays by default (`kubernetes.ttl_after_finished`).
pub const DEFAULT_TTL_AFTER_FINISHED: Duration = Duration::from_secs(300);

/// The default image for a job: `t2:<version>`, with OpenMPI for MPI jobs, with a JRE for
/// `java` commands.
pub fn default_image(spec: &JobSpec) -> String {
    let version = env!("CARGO_PKG_VERSION");
    if spec.mpi.enabled {
        format!("t2:{version}-mpi")
    } else if spec.command.first().is_some_and(|c| c == "java") {
        format!("t2:{version}-jre")
    } else {
        format!("t2:{version}")
    }
}

/// Top-level keys, and the keys of nested maps, for "did you mean".
const KEYS: &[&str] = &[
    "image",
    "image_pull_policy",
    "image_pull_secrets",
    "service_account",
    "jobmaster",
    "port",
    "memory_volume_mb",
    "storage",
    "secrets",
    "node_selector",
    "affinity",
    "tolerations",
    "spread",
    "spread_strict",
    "pack",
    "pack_strict",
    "rack_label",
    "datacenter_label",
    "cpu_limit",
    "upload",
    "uploader_selector",
    "parallel_uploads",
    "package_timeout",
    "start_timeout",
    "mpi_ssh_secret",
    // Issue 18 (k18b).
    "ttl_after_finished",
    "network_policy",
    "health_port",
    // Issue 18 (res18).
    "volumes",
    "allow_host_path",
    "work_volume_mb",
    // Issue 18 (gang18).
    "gang",
    "queue",
    "queue_timeout",
    "priority_class",
    "scheduler_name",
    "labels",
    "annotations",
];
const JOBMASTER_KEYS: &[&str] = &["cpu", "memory_mb"];
const STORAGE_KEYS: &[&str] = &["class", "size_mb", "shared", "mount"];
const SECRET_KEYS: &[&str] = &["name", "env", "mount"];

/// Reads and checks the `kubernetes` section of `spec`.
pub fn read_settings(spec: &JobSpec) -> Result<Settings, KubeError> {
    let map: serde_json::Map<String, Value> = spec
        .kubernetes
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    check_keys("kubernetes", &map, KEYS)?;
    if let Some(Value::Object(m)) = map.get("jobmaster") {
        check_keys("kubernetes.jobmaster", m, JOBMASTER_KEYS)?;
    }
    if let Some(Value::Object(m)) = map.get("storage") {
        check_keys("kubernetes.storage", m, STORAGE_KEYS)?;
    }
    if let Some(Value::Array(items)) = map.get("volumes") {
        for (i, item) in items.iter().enumerate() {
            if let Value::Object(m) = item {
                check_keys(
                    &format!("kubernetes.volumes[{i}]"),
                    m,
                    crate::claims::VOLUME_KEYS,
                )?;
            }
        }
    }
    if let Some(Value::Array(items)) = map.get("secrets") {
        for (i, item) in items.iter().enumerate() {
            if let Value::Object(m) = item {
                check_keys(&format!("kubernetes.secrets[{i}]"), m, SECRET_KEYS)?;
            }
        }
    }
    let mut settings = Settings::default();
    for (key, value) in map {
        let mut one = serde_json::Map::new();
        one.insert(key.clone(), normalise(&key, value));
        let parsed: Settings = serde_json::from_value(Value::Object(one)).map_err(|e| {
            KubeError::setting(format!("kubernetes.{key}"), serde_message(&e.to_string()))
        })?;
        settings.take(&key, parsed);
    }
    if settings.image.is_empty() {
        settings.image = default_image(spec);
    }
    super::checks::check(&settings, spec)?;
    super::gang::check(&settings)?;
    check_image(&settings.image).map_err(|m| KubeError::setting("kubernetes.image", m))?;
    Ok(settings)
}

/// Numbers given for durations become text; the rest is as written.
fn normalise(key: &str, value: Value) -> Value {
    match (key, value) {
        (
            "package_timeout" | "start_timeout" | "ttl_after_finished" | "queue_timeout",
            Value::Number(n),
        ) => Value::String(n.to_string()),
        (_, v) => v,
    }
}

impl Settings {
    /// Takes field `key` from `other` (which was read from that key alone).
    fn take(&mut self, key: &str, o: Settings) {
        match key {
            "image" => self.image = o.image,
            "image_pull_policy" => self.image_pull_policy = o.image_pull_policy,
            "image_pull_secrets" => self.image_pull_secrets = o.image_pull_secrets,
            "service_account" => self.service_account = o.service_account,
            "jobmaster" => self.jobmaster = o.jobmaster,
            "port" => self.port = o.port,
            "memory_volume_mb" => self.memory_volume_mb = o.memory_volume_mb,
            "storage" => self.storage = o.storage,
            "secrets" => self.secrets = o.secrets,
            "node_selector" => self.node_selector = o.node_selector,
            "affinity" => self.affinity = o.affinity,
            "tolerations" => self.tolerations = o.tolerations,
            "spread" => self.spread = o.spread,
            "spread_strict" => self.spread_strict = o.spread_strict,
            "pack" => self.pack = o.pack,
            "pack_strict" => self.pack_strict = o.pack_strict,
            "rack_label" => self.rack_label = o.rack_label,
            "datacenter_label" => self.datacenter_label = o.datacenter_label,
            "cpu_limit" => self.cpu_limit = o.cpu_limit,
            "upload" => self.upload = o.upload,
            "uploader_selector" => self.uploader_selector = o.uploader_selector,
            "parallel_uploads" => self.parallel_uploads = o.parallel_uploads,
            "package_timeout" => self.package_timeout = o.package_timeout,
            "start_timeout" => self.start_timeout = o.start_timeout,
            "mpi_ssh_secret" => self.mpi_ssh_secret = o.mpi_ssh_secret,
            // Issue 18 (k18b).
            "ttl_after_finished" => self.ttl_after_finished = o.ttl_after_finished,
            "network_policy" => self.network_policy = o.network_policy,
            "health_port" => self.health_port = o.health_port,
            // Issue 18 (res18).
            "volumes" => self.volumes = o.volumes,
            "allow_host_path" => self.allow_host_path = o.allow_host_path,
            "work_volume_mb" => self.work_volume_mb = o.work_volume_mb,
            // Issue 18 (gang18).
            "gang" => self.gang = o.gang,
            "queue" => self.queue = o.queue,
            "queue_timeout" => self.queue_timeout = o.queue_timeout,
            "priority_class" => self.priority_class = o.priority_class,
            "scheduler_name" => self.scheduler_name = o.scheduler_name,
            "labels" => self.labels = o.labels,
            "annotations" => self.annotations = o.annotations,
            _ => {}
        }
    }
}

fn check_keys(
    at: &str,
    map: &serde_json::Map<String, Value>,
    known: &[&str],
) -> Result<(), KubeError> {
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            let close = known
                .iter()
                .map(|k| (strsim::jaro_winkler(k, key), *k))
                .filter(|(score, _)| *score > 0.8)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, k)| format!("; did you mean '{at}.{k}'?"))
                .unwrap_or_else(|| format!("; known keys: {}", known.join(", ")));
            return Err(KubeError::setting(
                format!("{at}.{key}"),
                format!("unknown key{close}"),
            ));
        }
    }
    Ok(())
}

/// serde's message, made friendlier.
fn serde_message(m: &str) -> String {
    let m = m.split(" at line ").next().unwrap_or(m);
    m.replace("unknown variant", "unknown value")
        .replace("invalid type: ", "")
        .replace("variant", "value")
}
