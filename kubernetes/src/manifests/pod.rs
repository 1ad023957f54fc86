//! What pods of a job look like inside: the folders t2 uses, the environment the hidden
//! `t2 pod …` roles read, and small builders for env vars and quantities.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, SecretKeySelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The pod's work area (an emptyDir): package, unpacked workers, sockets.
pub const T2_DIR: &str = "/t2";
/// Where the init container puts the package.
pub const PACKAGE_PATH: &str = "/t2/package/package.tar.gz";
/// Where the root ConfigMap (the job spec) is mounted.
pub const JOB_CONFIG_DIR: &str = "/etc/t2/job";
/// The in-memory volume.
pub const MEMORY_DIR: &str = "/t2/memory";
/// The volatile disk volume.
pub const VOLATILE_DIR: &str = "/t2/volatile";
/// The workers' `/tmp` (an emptyDir: their root file system is read-only).
pub const TMP_DIR: &str = "/tmp";
/// Where the job master's certificate and key are mounted (jobs with TLS).
pub const TLS_DIR: &str = "/etc/t2/tls";
/// The uid the image runs as (docker/Dockerfile).
pub const RUN_AS: i64 = 10001;
/// The name of the init container.
pub const INIT_CONTAINER: &str = "t2-init";
/// The job master's container.
pub const JM_CONTAINER: &str = "jobmaster";

/// Environment variable names the `t2 pod …` roles read.
pub mod env {
    /// The job ID.
    pub const JOB_ID: &str = "T2_JOB_ID";
    /// The namespace (downward API).
    pub const NAMESPACE: &str = "T2_NAMESPACE";
    /// The pod's name (downward API); its ordinal gives the worker ID.
    pub const POD_NAME: &str = "T2_POD_NAME";
    /// The pod's IP (downward API): the worker's address.
    pub const POD_IP: &str = "T2_POD_IP";
    /// The node's IP (downward API).
    pub const NODE_IP: &str = "T2_NODE_IP";
    /// The node's name (downward API).
    pub const NODE_NAME: &str = "T2_NODE_NAME";
    /// Which worker container of the pod this is (0-based).
    pub const CONTAINER_INDEX: &str = "T2_CONTAINER_INDEX";
    /// Worker containers per pod.
    pub const WORKERS_PER_POD: &str = "T2_WORKERS_PER_POD";
    /// The job master, `http://host:port`.
    pub const JOB_MASTER: &str = "T2_JOB_MASTER";
    /// The job token (from the job's Secret).
    pub const JOB_TOKEN: &str = "T2_JOB_TOKEN";
    /// The job's CA certificate, PEM (from the job's Secret; jobs with TLS).
    pub const JOB_CA: &str = "T2_JOB_CA";
    /// Where the job master finds its certificate, key and CA (jobs with TLS).
    pub const TLS_DIR: &str = "T2_TLS_DIR";
    /// The package's sha256.
    pub const PACKAGE_SHA256: &str = "T2_PACKAGE_SHA256";
    /// The package's size in bytes.
    pub const PACKAGE_BYTES: &str = "T2_PACKAGE_BYTES";
    /// Where to download the package from (uploader); absent for direct delivery.
    pub const PACKAGE_URL: &str = "T2_PACKAGE_URL";
    /// The key the job master renews the job's reference to its package on the uploader
    /// with (from the job's Secret; uploader delivery).
    pub const UPLOADER_REF_KEY: &str = "T2_UPLOADER_REF_KEY";
    /// How long the init container waits for (or tries to fetch) the package.
    pub const PACKAGE_TIMEOUT: &str = "T2_PACKAGE_TIMEOUT";
    /// The job master's listening address.
    pub const LISTEN: &str = "T2_LISTEN";
    /// The job master's health service's address (plaintext grpc.health.v1).
    pub const HEALTH_LISTEN: &str = "T2_HEALTH_LISTEN";
    /// The in-memory volume, when there is one.
    pub const MEMORY_DIR: &str = "T2_MEMORY_DIR";
    /// The volatile disk, when there is one.
    pub const VOLATILE_DIR: &str = "T2_VOLATILE_DIR";
    /// Persistent storage, when there is some.
    pub const PERSISTENT_DIR: &str = "T2_PERSISTENT_DIR";
}

/// A plain env var.
pub fn var(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

/// An env var from a field of the pod (downward API).
pub fn field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: path.into(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// An env var from key `key` of Secret `secret`.
pub fn secret_key(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// CPU cores as a quantity: whole cores as `2`, fractions in millicores (`250m`).
pub fn cpu(cores: f64) -> Quantity {
    let millis = (cores * 1000.0).round().max(1.0) as u64;
    if millis.is_multiple_of(1000) {
        Quantity((millis / 1000).to_string())
    } else {
        Quantity(format!("{millis}m"))
    }
}

/// MiB as a quantity (`512Mi`).
pub fn mib(mb: u64) -> Quantity {
    Quantity(format!("{mb}Mi"))
}

/// A resource map.
pub fn quantities(items: &[(&str, Quantity)]) -> BTreeMap<String, Quantity> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}
