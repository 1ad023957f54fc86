//! The job token Secret `<id>-token`: workers present the token to the job master, which
//! accepts no one else (DESIGN §8). Pods read it through `secretKeyRef`, so they need no API
//! access to Secrets.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::labels::owned_meta;
use super::JobInfo;

/// The key holding the token.
pub const TOKEN_KEY: &str = "token";

/// The token Secret (immutable).
pub fn token_secret(job: &JobInfo) -> Secret {
    Secret {
        metadata: owned_meta(job, job.names().token_secret(), "token"),
        immutable: Some(true),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(TOKEN_KEY.to_string(), job.token.clone())])),
        ..Secret::default()
    }
}
