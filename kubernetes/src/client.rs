//! Connecting like kubectl: a kubeconfig from `--kubeconfig`, `KUBECONFIG` (a `:`-separated
//! list, merged) or `~/.kube/config`, the context from `--context` or the current one, the
//! namespace from `-n` or the context; inside a pod, the in-cluster configuration. Every
//! operation then goes through a [`Kube`]: a client, its namespace, and the server's name for
//! messages. Tests build one around a mock service with [`Kube::new`].

use std::path::PathBuf;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::error::{chain, KubeError};

/// How to reach the cluster (the kubectl-like flags).
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// A kubeconfig file (instead of `KUBECONFIG` / `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The context (default: the kubeconfig's current context).
    pub context: Option<String>,
    /// The namespace (default: the context's, else `default`).
    pub namespace: Option<String>,
}

/// A client bound to a namespace.
#[derive(Clone)]
pub struct Kube {
    /// The client.
    pub client: Client,
    /// The namespace every call uses.
    pub namespace: String,
    /// The API server, for messages.
    pub server: String,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube")
            .field("namespace", &self.namespace)
            .field("server", &self.server)
            .finish()
    }
}

impl Kube {
    /// A [`Kube`] around any client (tests: a mock service).
    pub fn new(client: Client, namespace: &str, server: &str) -> Self {
        Self {
            client,
            namespace: namespace.into(),
            server: server.into(),
        }
    }

    /// A namespaced API of `K`.
    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        kube::Api::namespaced(self.client.clone(), &self.namespace)
    }
}

/// How long connecting to the API server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The client configuration the options (and the environment) select.
pub async fn load_config(opts: &ClientOptions) -> Result<Config, KubeError> {
    let files = kubeconfig_files(opts)?;
    let mut config = if files.is_empty() {
        if let Some(dir) = std::env::var_os(SERVICEACCOUNT_DIR_ENV).filter(|d| !d.is_empty()) {
            incluster_from_dir(std::path::Path::new(&dir)).await?
        } else if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            Config::incluster().map_err(|e| {
                KubeError::Config(format!(
                    "cannot use the in-cluster configuration: {}",
                    chain(&e)
                ))
            })?
        } else {
            return Err(KubeError::Config(
                "no kubeconfig: KUBECONFIG is not set and ~/.kube/config does not exist; set KUBECONFIG, pass --kubeconfig FILE, or run inside a pod".into(),
            ));
        }
    } else {
        let mut merged: Option<Kubeconfig> = None;
        for f in &files {
            let kc = Kubeconfig::read_from(f).map_err(|e| {
                KubeError::Config(format!(
                    "cannot read kubeconfig {}: {}",
                    f.display(),
                    chain(&e)
                ))
            })?;
            merged = Some(match merged {
                None => kc,
                Some(m) => m.merge(kc).map_err(|e| {
                    KubeError::Config(format!(
                        "cannot merge kubeconfig {}: {}",
                        f.display(),
                        chain(&e)
                    ))
                })?,
            });
        }
        let kc = merged.unwrap_or_default();
        let shown = files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let contexts: Vec<String> = kc.contexts.iter().map(|c| c.name.clone()).collect();
        let context = match (&opts.context, &kc.current_context) {
            (Some(c), _) => c.clone(),
            (None, Some(c)) if !c.is_empty() => c.clone(),
            _ => {
                return Err(KubeError::Config(format!(
                    "kubeconfig {shown} has no current context; pass --context (one of: {})",
                    list_or_none(&contexts)
                )))
            }
        };
        if !contexts.contains(&context) {
            return Err(KubeError::Config(format!(
                "context '{}' is not in kubeconfig {shown}; use one of: {} (see 'kubectl config get-contexts')",
                context.escape_default(),
                list_or_none(&contexts)
            )));
        }
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        };
        Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| {
                KubeError::Config(format!(
                    "kubeconfig {shown}, context '{context}': {}",
                    chain(&e)
                ))
            })?
    };
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    if let Some(ns) = &opts.namespace {
        config.default_namespace = ns.clone();
    }
    Ok(config)
}

/// Names the folder holding the pod's ServiceAccount files (`token`, `ca.crt`, `namespace`)
/// when it is not where the kubelet mounts them (`/var/run/secrets/kubernetes.io/serviceaccount`):
/// the tests' local container runtime (`launcher/tests/kube_real_support`) cannot mount there.
/// The API server is still `KUBERNETES_SERVICE_HOST`:`KUBERNETES_SERVICE_PORT`, as in a pod.
pub const SERVICEACCOUNT_DIR_ENV: &str = "T2_SERVICEACCOUNT_DIR";

/// The in-cluster configuration with the ServiceAccount files of `dir` (the token is read
/// again as it is renewed, as with the kubelet's mount).
async fn incluster_from_dir(dir: &std::path::Path) -> Result<Config, KubeError> {
    let var = |n: &str| {
        std::env::var(n).map_err(|_| {
            KubeError::Config(format!(
                "{SERVICEACCOUNT_DIR_ENV} is set but {n} is not; both name the API server inside a pod"
            ))
        })
    };
    let (host, port) = (
        var("KUBERNETES_SERVICE_HOST")?,
        var("KUBERNETES_SERVICE_PORT")?,
    );
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let namespace = std::fs::read_to_string(dir.join("namespace"))
        .map(|n| n.trim().to_string())
        .unwrap_or_else(|_| "default".into());
    let kc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "in-cluster", "cluster": {
            "server": format!("https://{host}:{port}"),
            "certificate-authority": dir.join("ca.crt"),
        }}],
        "users": [{"name": "in-cluster", "user": {"tokenFile": dir.join("token")}}],
        "contexts": [{"name": "in-cluster", "context": {
            "cluster": "in-cluster", "user": "in-cluster", "namespace": namespace,
        }}],
        "current-context": "in-cluster",
    });
    let kc: Kubeconfig = serde_json::from_value(kc).map_err(|e| {
        KubeError::Config(format!(
            "cannot use the ServiceAccount files in {}: {e}",
            dir.display()
        ))
    })?;
    Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| {
            KubeError::Config(format!(
                "cannot use the ServiceAccount files in {}: {}",
                dir.display(),
                chain(&e)
            ))
        })
}

/// Refuses a namespace name that is not a DNS-1123 label, as the API server would.
pub fn check_namespace(ns: &str) -> Result<(), KubeError> {
    if t2_core::names::is_dns1123_label(ns) {
        return Ok(());
    }
    Err(KubeError::Config(format!(
        "-n {}: not a valid namespace name: a namespace must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters), e.g. {}",
        ns.escape_default(),
        suggest_label(ns)
    )))
}

/// `s` made into a DNS-1123 label, for the example in the error.
fn suggest_label(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "t2".into()
    } else {
        out
    }
}

/// Connects (no request is made yet).
pub async fn connect(opts: &ClientOptions) -> Result<Kube, KubeError> {
    if let Some(ns) = &opts.namespace {
        check_namespace(ns)?;
    }
    let config = load_config(opts).await?;
    let server = config.cluster_url.to_string();
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| {
        KubeError::Config(format!(
            "cannot set up a client for {server}: {}",
            chain(&e)
        ))
    })?;
    Ok(Kube::new(client, &namespace, server.trim_end_matches('/')))
}

/// The kubeconfig files to read: `--kubeconfig`, else those of `KUBECONFIG`, else
/// `~/.kube/config` when it exists. Named files must exist.
fn kubeconfig_files(opts: &ClientOptions) -> Result<Vec<PathBuf>, KubeError> {
    if let Some(f) = &opts.kubeconfig {
        if !f.is_file() {
            return Err(KubeError::Config(format!(
                "--kubeconfig {}: no such file",
                f.display()
            )));
        }
        return Ok(vec![f.clone()]);
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let files: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let existing: Vec<PathBuf> = files.iter().filter(|p| p.is_file()).cloned().collect();
        if existing.is_empty() {
            return Err(KubeError::Config(format!(
                "KUBECONFIG={} names no existing file; fix KUBECONFIG or pass --kubeconfig FILE",
                list.to_string_lossy()
            )));
        }
        return Ok(existing);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    Ok(home
        .map(|h| h.join(".kube").join("config"))
        .filter(|p| p.is_file())
        .into_iter()
        .collect())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".into()
    } else {
        items.join(", ")
    }
}
