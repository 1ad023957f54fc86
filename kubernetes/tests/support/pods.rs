//! Pod objects in the states the start watch cares about.

use serde_json::{json, Value};

/// A pod of job `job` named `name` (`role`: worker or jobmaster) with `status`.
pub fn pod(job: &str, name: &str, role: &str, rv: &str, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": super::mock::NS, "uid": format!("uid-{name}"),
                     "resourceVersion": rv,
                     "labels": {"app.kubernetes.io/name": "t2", "t2.io/job": job, "t2.io/role": role}},
        "spec": {"containers": [{"name": "c", "image": "t2"}]},
        "status": status,
    })
}

/// Scheduled, init container running (waiting for the package).
pub fn init_running() -> Value {
    json!({"phase": "Pending",
           "conditions": [{"type": "PodScheduled", "status": "True"}],
           "initContainerStatuses": [{"name": "t2-init", "ready": false, "restartCount": 0, "image": "t2", "imageID": "",
                                      "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}}}]})
}

/// Every container running.
pub fn running() -> Value {
    json!({"phase": "Running",
           "conditions": [{"type": "PodScheduled", "status": "True"}],
           "initContainerStatuses": [{"name": "t2-init", "ready": true, "restartCount": 0, "image": "t2", "imageID": "",
                                      "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
           "containerStatuses": [{"name": "worker-0", "ready": true, "restartCount": 0, "image": "t2", "imageID": "",
                                  "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}}}]})
}

/// A container waiting for `reason` with `message`.
pub fn waiting(container: &str, reason: &str, message: &str) -> Value {
    json!({"phase": "Pending",
           "conditions": [{"type": "PodScheduled", "status": "True"}],
           "containerStatuses": [{"name": container, "ready": false, "restartCount": 0, "image": "t2", "imageID": "",
                                  "state": {"waiting": {"reason": reason, "message": message}}}]})
}

/// Not schedulable.
pub fn unschedulable(message: &str) -> Value {
    json!({"phase": "Pending",
           "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]})
}

/// The init container failed with `message`.
pub fn init_failed(message: &str) -> Value {
    json!({"phase": "Pending",
           "conditions": [{"type": "PodScheduled", "status": "True"}],
           "initContainerStatuses": [{"name": "t2-init", "ready": false, "restartCount": 0, "image": "t2", "imageID": "",
                                      "state": {"terminated": {"exitCode": 1, "reason": "Error", "message": message}}}]})
}
