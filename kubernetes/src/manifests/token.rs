//! The job token Secret `<id>-token`: workers present the token to the job master, which
//! accepts no one else (DESIGN §8). Pods read it through `secretKeyRef`, so they need no API
//! access to Secrets. With TLS it also holds the job's certificate: the CA (`ca.crt`, which
//! workers trust, through `secretKeyRef`) and the job master's certificate and key
//! (`tls.crt`, `tls.key`, mounted into the job master's pod only), and the agents'
//! certificate and key (`agent.crt`, `agent.key`, mounted into the worker pods of MPI jobs
//! only, whose agents run commands for one another). With uploader delivery it
//! holds the key the job master renews the job's lease on its package with.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::labels::owned_meta;
use super::JobInfo;

/// The key holding the token.
pub const TOKEN_KEY: &str = "token";
/// The key holding the job's uploader reference key (uploader delivery), which only the job
/// master's container reads.
pub const UPLOADER_REF_KEY: &str = "uploader-ref-key";

/// The token Secret (immutable).
pub fn token_secret(job: &JobInfo) -> Secret {
    let mut data = BTreeMap::from([(TOKEN_KEY.to_string(), job.token.clone())]);
    if let Some(k) = &job.uploader_ref_key {
        data.insert(UPLOADER_REF_KEY.into(), k.clone());
    }
    if let Some(tls) = &job.tls {
        use t2_core::tls::{AGENT_CERT_FILE, AGENT_KEY_FILE, CA_FILE, CERT_FILE, KEY_FILE};
        data.insert(CA_FILE.into(), tls.ca_pem.clone());
        data.insert(CERT_FILE.into(), tls.cert_pem.clone());
        data.insert(KEY_FILE.into(), tls.key_pem.clone());
        data.insert(AGENT_CERT_FILE.into(), tls.agent_cert_pem.clone());
        data.insert(AGENT_KEY_FILE.into(), tls.agent_key_pem.clone());
    }
    Secret {
        metadata: owned_meta(job, job.names().token_secret(), "token"),
        immutable: Some(true),
        type_: Some("Opaque".into()),
        string_data: Some(data),
        ..Secret::default()
    }
}
