//! The name of every Kubernetes object of a job, derived from its job ID (DESIGN §5, §6).
//!
//! A job ID is at most [`MAX_JOB_ID_LEN`](t2_core::names::MAX_JOB_ID_LEN) (39) characters, so
//! every name here — including the ones Kubernetes derives itself (pod names with an ordinal,
//! the `controller-revision-hash` label, per-worker claims) — stays a DNS-1123 label (≤ 63).

/// Longest StatefulSet ordinal: `workers` is at most 100000, so ordinals are below that.
pub const MAX_ORDINAL: u32 = 99_999;

/// Length of the hash Kubernetes appends in the `controller-revision-hash` label value.
pub const REVISION_HASH_LEN: usize = 10;

/// The object names of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobNames {
    /// The job ID.
    pub id: String,
}

impl JobNames {
    /// Names of job `id` (a validated job ID).
    pub fn new(id: &str) -> Self {
        Self { id: id.to_string() }
    }

    /// The root ConfigMap, owner of everything else.
    pub fn root(&self) -> String {
        self.id.clone()
    }

    /// The job token Secret.
    pub fn token_secret(&self) -> String {
        format!("{}-token", self.id)
    }

    /// The worker StatefulSet.
    pub fn workers(&self) -> String {
        self.id.clone()
    }

    /// The headless worker Service (the worker StatefulSet's governing Service).
    pub fn workers_service(&self) -> String {
        self.id.clone()
    }

    /// The job master StatefulSet.
    pub fn jobmaster(&self) -> String {
        format!("{}-jm", self.id)
    }

    /// The job master Service.
    pub fn jobmaster_service(&self) -> String {
        format!("{}-jm", self.id)
    }

    /// The shared ReadWriteMany claim (when storage is shared).
    pub fn shared_claim(&self) -> String {
        format!("{}-data", self.id)
    }

    /// The claim template of per-worker storage.
    pub fn claim_template(&self) -> &'static str {
        "data"
    }

    /// Worker pod `ordinal`.
    pub fn worker_pod(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.workers())
    }

    /// The job master's pod.
    pub fn jobmaster_pod(&self) -> String {
        format!("{}-0", self.jobmaster())
    }

    /// The per-worker claim of pod `ordinal` (named by the StatefulSet controller).
    pub fn worker_claim(&self, ordinal: u32) -> String {
        format!("{}-{}", self.claim_template(), self.worker_pod(ordinal))
    }

    /// Every name Kubernetes will see for this job, the longest cases included: object names,
    /// pod names at the largest ordinal, claim names and revision-hash label values.
    pub fn all_for_check(&self) -> Vec<String> {
        let hash = "x".repeat(REVISION_HASH_LEN);
        vec![
            self.root(),
            self.token_secret(),
            self.workers(),
            self.workers_service(),
            self.jobmaster(),
            self.jobmaster_service(),
            self.shared_claim(),
            self.worker_pod(MAX_ORDINAL),
            self.jobmaster_pod(),
            self.worker_claim(MAX_ORDINAL),
            format!("{}-{hash}", self.workers()),
            format!("{}-{hash}", self.jobmaster()),
        ]
    }
}
