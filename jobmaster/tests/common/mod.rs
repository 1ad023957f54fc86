//! What several of the job master's test files share.

use t2_proto::{worker_to_master::Body as W, RegisterParams, WorkerInfo, WorkerToMaster};

/// Worker `id`'s registration for job `job` with `token`, speaking protocol `version`.
pub fn register(job: &str, token: &str, version: u32, id: u32) -> WorkerToMaster {
    WorkerToMaster {
        body: Some(W::Register(RegisterParams {
            job_id: job.into(),
            token: token.into(),
            protocol_version: version,
            info: Some(WorkerInfo {
                worker_id: id,
                host: "127.0.0.1".into(),
                port: 1000 + id,
                ..Default::default()
            }),
            reconnect: false,
        })),
    }
}
