//! Errors of the Kubernetes cluster backend. Each displays as one line that names the object
//! or setting at fault and what to do about it.

use std::time::Duration;

use thiserror::Error;

/// What can go wrong talking to (or preparing for) a Kubernetes cluster.
#[derive(Debug, Error)]
pub enum KubeError {
    /// No usable client configuration: missing kubeconfig, unknown context, bad file.
    #[error("{0}")]
    Config(String),
    /// A bad `kubernetes.*` setting (or flag).
    #[error("{key}: {message}")]
    Setting {
        /// The dotted key, e.g. `kubernetes.image`.
        key: String,
        /// What is wrong and what to write instead.
        message: String,
    },
    /// The API server could not be reached at all.
    #[error("cannot reach the Kubernetes API server {server}: {cause}; check that the cluster is up and that the current context is the one you mean ('kubectl cluster-info', or pass --context)")]
    Unreachable {
        /// The server (URL) tried.
        server: String,
        /// The transport error, on one line.
        cause: String,
    },
    /// The API server refused a request (HTTP 403).
    #[error("forbidden: you may not {verb} {resource} in namespace '{namespace}'{}; ask a cluster admin to bind the {} Role (deploy/rbac.yaml) to you, and run 't2 doctor kubernetes' to see every missing permission", name.as_ref().map(|n| format!(" (object '{n}')")).unwrap_or_default(), if resource == "pods/exec" { "t2-direct-delivery (direct package delivery; or deploy an uploader)" } else { "t2 submitter" })]
    Forbidden {
        /// The verb (`create`, `delete`, ...).
        verb: String,
        /// The resource, `plural[.group]` (`statefulsets.apps`).
        resource: String,
        /// The namespace.
        namespace: String,
        /// The object's name, if one.
        name: Option<String>,
    },
    /// An object that had to be new already exists (HTTP 409).
    #[error("{kind} '{name}' already exists in namespace '{namespace}'; a job with this ID is already there (see 't2 list --cluster kubernetes'); submit again for a new ID or delete it with 't2 kill {name}'")]
    AlreadyExists {
        /// The object kind.
        kind: String,
        /// Its name.
        name: String,
        /// The namespace.
        namespace: String,
    },
    /// A job that is not in the namespace.
    #[error("no job '{id}' in namespace '{namespace}' (see 't2 list --cluster kubernetes', or pass -n NAMESPACE)")]
    NoSuchJob {
        /// The job ID.
        id: String,
        /// The namespace searched.
        namespace: String,
    },
    /// Any other API error.
    #[error("cannot {verb} {resource}{} in namespace '{namespace}': {message} (HTTP {code})", name.as_ref().map(|n| format!(" '{n}'")).unwrap_or_default())]
    Api {
        /// The verb.
        verb: String,
        /// The resource.
        resource: String,
        /// The namespace.
        namespace: String,
        /// The object's name, if one.
        name: Option<String>,
        /// The API server's message.
        message: String,
        /// The HTTP status.
        code: u16,
    },
    /// The job could not start; the pod's own reason is given.
    #[error("job {job} failed to start: {reason}")]
    StartFailed {
        /// The job ID.
        job: String,
        /// What went wrong, e.g. `pod x-0: ImagePullBackOff: ...`.
        reason: String,
    },
    /// A wait ran out.
    #[error("{what} did not happen within {}", humantime(*.after))]
    Timeout {
        /// What was awaited.
        what: String,
        /// The deadline.
        after: Duration,
    },
    /// `t2 scale` did not get the job scaled: the job master refused, or did not answer.
    #[error("cannot scale job {job}: {why}")]
    ScaleFailed {
        /// The job ID.
        job: String,
        /// The job master's reason, or what to check.
        why: String,
    },
    /// The package could not be delivered.
    #[error("cannot deliver the package to {target}: {why}")]
    Distribution {
        /// Pod (and container) or uploader.
        target: String,
        /// Why.
        why: String,
    },
    /// A submit failed after the root object was created; it was deleted again.
    #[error("{cause}; job {job} was removed again (its root ConfigMap deleted, Kubernetes removes the rest){}", leftover.as_ref().map(|l| format!(" — but: {l}")).unwrap_or_default())]
    RolledBack {
        /// The job ID.
        job: String,
        /// What failed.
        cause: Box<KubeError>,
        /// When the rollback itself failed: what is left and how to remove it.
        leftover: Option<String>,
    },
    /// Local I/O.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl KubeError {
    /// An I/O error with context.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }

    /// A bad setting.
    pub fn setting(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Setting {
            key: key.into(),
            message: message.into(),
        }
    }
}

fn humantime(d: Duration) -> String {
    t2_core::duration::format_duration(d)
}

/// One request, to name it in errors.
#[derive(Debug, Clone)]
pub struct Op<'a> {
    /// The verb.
    pub verb: &'a str,
    /// The resource, `plural[.group]`.
    pub resource: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// The object's name, if one.
    pub name: Option<&'a str>,
}

impl<'a> Op<'a> {
    /// A request about object `name`.
    pub fn named(verb: &'a str, resource: &'a str, namespace: &'a str, name: &'a str) -> Self {
        Self {
            verb,
            resource,
            namespace,
            name: Some(name),
        }
    }

    /// A request about a collection.
    pub fn collection(verb: &'a str, resource: &'a str, namespace: &'a str) -> Self {
        Self {
            verb,
            resource,
            namespace,
            name: None,
        }
    }

    /// Turns a client error into a one-line [`KubeError`]; `server` names the API server for
    /// transport errors.
    pub fn error(&self, server: &str, e: kube::Error) -> KubeError {
        match e {
            kube::Error::Api(status) => {
                let code = status.code;
                let reason = status.reason.clone();
                let message = one_line(&status.message);
                match (code, reason.as_str()) {
                    (403, _) | (_, "Forbidden") => KubeError::Forbidden {
                        verb: self.verb.into(),
                        resource: self.resource.into(),
                        namespace: self.namespace.into(),
                        name: self.name.map(String::from),
                    },
                    (409, "AlreadyExists") => KubeError::AlreadyExists {
                        kind: kind_of(self.resource),
                        name: self.name.unwrap_or_default().into(),
                        namespace: self.namespace.into(),
                    },
                    _ => KubeError::Api {
                        verb: self.verb.into(),
                        resource: self.resource.into(),
                        namespace: self.namespace.into(),
                        name: self.name.map(String::from),
                        message,
                        code,
                    },
                }
            }
            other => KubeError::Unreachable {
                server: server.into(),
                cause: chain(&other),
            },
        }
    }
}

/// True when `e` is an API answer with HTTP status `code`.
pub fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// The kind an `Op` resource names, for messages.
fn kind_of(resource: &str) -> String {
    match resource.split('.').next().unwrap_or(resource) {
        "configmaps" => "ConfigMap",
        "secrets" => "Secret",
        "services" => "Service",
        "statefulsets" => "StatefulSet",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        "pods" => "Pod",
        other => other,
    }
    .to_string()
}

/// An error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = c.source();
    }
    one_line(&parts.join(": "))
}

/// Text on one line.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
