//! `t2 list` and `t2 status JOB` on Kubernetes: jobs are their root ConfigMaps; a job's pods
//! and the job master's records give its workers.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::ListParams;
use serde::Serialize;

use super::client::Kube;
use super::error::{is_status, KubeError, Op};
use super::kill::check_id;
use super::manifests::labels::{job_selector, APP, APP_VALUE, COMPONENT, ROLE};
use super::manifests::root::keys;
use super::record::{self, WorkerEntry};

/// One job in `t2 list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRow {
    /// Job ID.
    pub id: String,
    /// Recorded state.
    pub state: String,
    /// Desired workers.
    pub workers: String,
    /// Who submitted it.
    pub owner: String,
    /// When.
    pub submitted_at: String,
    /// Why it is in its state (the job master's or `t2 kill`'s reason).
    pub reason: Option<String>,
    /// When the state was recorded.
    pub state_at: Option<String>,
}

/// One pod in `t2 status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodRow {
    /// Pod name.
    pub name: String,
    /// worker or jobmaster.
    pub role: String,
    /// Pod phase.
    pub phase: String,
    /// Ready containers / containers.
    pub ready: String,
    /// Container restarts, summed.
    pub restarts: i32,
    /// Node.
    pub node: String,
    /// A container's waiting reason, if any.
    pub waiting: Option<String>,
    /// Its IP address.
    pub ip: String,
    /// When it was created (RFC 3339): its AGE.
    pub created_at: String,
}

/// `t2 status JOB`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobStatus {
    /// Job ID.
    pub id: String,
    /// Namespace.
    pub namespace: String,
    /// Recorded state.
    pub state: String,
    /// Why it ended.
    pub reason: Option<String>,
    /// When the state was recorded (the job master's clock).
    pub state_at: Option<String>,
    /// Desired workers.
    pub workers: String,
    /// Workers per pod.
    pub workers_per_pod: String,
    /// Who submitted it.
    pub owner: String,
    /// When.
    pub submitted_at: String,
    /// The package's sha256.
    pub package_sha256: String,
    /// The job's pods.
    pub pods: Vec<PodRow>,
    /// Workers as the job master recorded them.
    pub worker_records: Vec<WorkerEntry>,
}

fn data(cm: &ConfigMap) -> std::collections::BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

/// Every job in the namespace, newest first.
pub async fn list_jobs(kube: &Kube) -> Result<Vec<JobRow>, KubeError> {
    let selector = format!("{APP}={APP_VALUE},{COMPONENT}=job");
    let list = kube
        .api::<ConfigMap>()
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            Op::collection("list", "configmaps", &kube.namespace).error(&kube.server, e)
        })?;
    let mut rows: Vec<JobRow> = list.items.iter().map(job_row).collect();
    rows.sort_by(|a, b| b.submitted_at.cmp(&a.submitted_at).then(a.id.cmp(&b.id)));
    Ok(rows)
}

/// A job's row, from its root.
pub fn job_row(cm: &ConfigMap) -> JobRow {
    let d = data(cm);
    let (state, reason) = record::state(&d);
    JobRow {
        id: cm.metadata.name.clone().unwrap_or_default(),
        state,
        workers: d.get(keys::WORKERS).cloned().unwrap_or_default(),
        owner: d.get(keys::OWNER).cloned().unwrap_or_default(),
        submitted_at: d.get(keys::SUBMITTED_AT).cloned().unwrap_or_default(),
        reason,
        state_at: record::state_at(&d),
    }
}

/// The root ConfigMap of job `id`.
pub async fn get_root(kube: &Kube, id: &str) -> Result<ConfigMap, KubeError> {
    check_id(id)?;
    kube.api::<ConfigMap>().get(id).await.map_err(|e| {
        if is_status(&e, 404) {
            KubeError::NoSuchJob {
                id: id.into(),
                namespace: kube.namespace.clone(),
            }
        } else {
            Op::named("get", "configmaps", &kube.namespace, id).error(&kube.server, e)
        }
    })
}

/// The job's pods, by name.
pub async fn job_pods(kube: &Kube, id: &str) -> Result<Vec<Pod>, KubeError> {
    let mut pods = kube
        .api::<Pod>()
        .list(&ListParams::default().labels(&job_selector(id)))
        .await
        .map_err(|e| Op::collection("list", "pods", &kube.namespace).error(&kube.server, e))?
        .items;
    pods.sort_by_key(|p| ordinal_key(p.metadata.name.as_deref().unwrap_or_default()));
    Ok(pods)
}

/// Sorts `x-jm-0` first, then `x-2` before `x-10`.
fn ordinal_key(name: &str) -> (u8, u64, String) {
    let jm = name.contains("-jm-");
    let n = name
        .rsplit('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (u8::from(!jm), n, name.to_string())
}

fn pod_row(p: &Pod) -> PodRow {
    let st = p.status.clone().unwrap_or_default();
    let cs = st.container_statuses.clone().unwrap_or_default();
    let total = p.spec.as_ref().map_or(cs.len(), |s| s.containers.len());
    let waiting = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(cs.iter())
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    PodRow {
        name: p.metadata.name.clone().unwrap_or_default(),
        role: p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ROLE).cloned())
            .unwrap_or_default(),
        phase: st.phase.clone().unwrap_or_else(|| "Unknown".into()),
        ready: format!("{}/{total}", cs.iter().filter(|c| c.ready).count()),
        restarts: cs.iter().map(|c| c.restart_count).sum(),
        node: p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        waiting,
        ip: st.pod_ip.clone().unwrap_or_default(),
        created_at: p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
    }
}

/// `t2 status JOB`.
pub async fn job_status(kube: &Kube, id: &str) -> Result<JobStatus, KubeError> {
    let root = get_root(kube, id).await?;
    let d = data(&root);
    let (state, reason) = record::state(&d);
    let pods = job_pods(kube, id).await?;
    Ok(JobStatus {
        id: id.into(),
        namespace: kube.namespace.clone(),
        state,
        reason,
        state_at: record::state_at(&d),
        workers: d.get(keys::WORKERS).cloned().unwrap_or_default(),
        workers_per_pod: d.get(keys::WORKERS_PER_POD).cloned().unwrap_or_default(),
        owner: d.get(keys::OWNER).cloned().unwrap_or_default(),
        submitted_at: d.get(keys::SUBMITTED_AT).cloned().unwrap_or_default(),
        package_sha256: d.get(keys::PACKAGE_SHA256).cloned().unwrap_or_default(),
        pods: pods.iter().map(pod_row).collect(),
        worker_records: record::workers(&d),
    })
}

/// `t2 status` as text: the job, its pods (with their AGE, as `age` shows an RFC 3339 time)
/// and the workers the job master recorded; `wide` adds each pod's IP and each worker's node.
pub fn render_status(s: &JobStatus, wide: bool, age: &dyn Fn(&str) -> String) -> String {
    let mut out = format!(
        "job {} ({}) {}{}\nworkers {} ({} per pod), owner {}, submitted {} ({} ago), package {}\n",
        s.id,
        s.namespace,
        s.state,
        s.reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default(),
        s.workers,
        s.workers_per_pod,
        s.owner,
        s.submitted_at,
        age(&s.submitted_at),
        s.package_sha256.get(..12).unwrap_or(&s.package_sha256),
    );
    let head = format!(
        "{:<46} {:<10} {:<10} {:>6} {:>8} {:>6} {:<14}{}",
        "POD",
        "ROLE",
        "PHASE",
        "READY",
        "RESTARTS",
        "AGE",
        "NODE",
        if wide { " IP" } else { "" }
    );
    out.push_str(head.trim_end());
    out.push('\n');
    for p in &s.pods {
        let line = format!(
            "{:<46} {:<10} {:<10} {:>6} {:>8} {:>6} {:<14}{}{}",
            p.name,
            p.role,
            p.phase,
            p.ready,
            p.restarts,
            age(&p.created_at),
            p.node,
            if wide {
                format!(" {:<16}", if p.ip.is_empty() { "-" } else { &p.ip })
            } else {
                String::new()
            },
            p.waiting
                .as_ref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if !s.worker_records.is_empty() {
        let head = format!(
            "{:<8} {:<14} {:>8} {:<22} {}",
            "WORKER",
            "STATE",
            "RESTARTS",
            "ADDRESS",
            if wide { "NODE" } else { "" }
        );
        out.push_str(head.trim_end());
        out.push('\n');
        for w in &s.worker_records {
            let address = format!("{}:{}", w.host, w.port);
            let line = if wide {
                format!(
                    "{:<8} {:<14} {:>8} {address:<22} {}",
                    w.id, w.state, w.restart_count, w.node
                )
            } else {
                format!(
                    "{:<8} {:<14} {:>8} {address}",
                    w.id, w.state, w.restart_count
                )
            };
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}
