//! The scale request protocol of the root ConfigMap: `t2 scale` cannot reach the in-cluster
//! job master's gRPC, so it writes a [`ScaleRequest`] into the job's root (`scale.request`)
//! and the job master writes its [`ScaleAnswer`] (`scale.answer`) with the same ID. The ID is
//! random per request, so asking twice for the same number is still two requests, and an
//! answer is never mistaken for the answer to another request.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::manifests::root::keys;

/// A `t2 scale JOB N` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleRequest {
    /// Random per request (hex).
    pub id: String,
    /// The number of workers asked for.
    pub workers: u32,
}

impl ScaleRequest {
    /// A new request for `workers` workers, with a fresh random ID.
    pub fn new(workers: u32) -> Self {
        Self {
            id: hex::encode(rand::random::<[u8; 8]>()),
            workers,
        }
    }

    /// The request in the root's `data`, if one is there and parses.
    pub fn from_data(data: &BTreeMap<String, String>) -> Option<Self> {
        serde_json::from_str(data.get(keys::SCALE_REQUEST)?).ok()
    }

    /// As stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The job master's answer to the request with the same ID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleAnswer {
    /// The request's ID.
    pub id: String,
    /// The job's workers after scaling (on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    /// Why the job master refused or failed (on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ScaleAnswer {
    /// Request `id` was carried out: the job has `workers` workers.
    pub fn done(id: &str, workers: u32) -> Self {
        Self {
            id: id.into(),
            workers: Some(workers),
            error: None,
        }
    }

    /// Request `id` failed for `why`.
    pub fn failed(id: &str, why: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            workers: None,
            error: Some(why.into()),
        }
    }

    /// The answer in the root's `data`, if one is there and parses.
    pub fn from_data(data: &BTreeMap<String, String>) -> Option<Self> {
        serde_json::from_str(data.get(keys::SCALE_ANSWER)?).ok()
    }

    /// As stored.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The workers, or the job master's reason.
    pub fn outcome(&self) -> Result<u32, String> {
        match (&self.error, self.workers) {
            (None, Some(w)) => Ok(w),
            (Some(e), _) => Err(e.clone()),
            (None, None) => Err("the job master's answer names no number of workers".into()),
        }
    }
}

/// The request in `data` that has no answer yet, if any.
pub fn unanswered(data: &BTreeMap<String, String>) -> Option<ScaleRequest> {
    let request = ScaleRequest::from_data(data)?;
    match ScaleAnswer::from_data(data) {
        Some(a) if a.id == request.id => None,
        _ => Some(request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_unanswered_until_an_answer_with_its_id_is_there() {
        let r = ScaleRequest::new(8);
        assert_ne!(r.id, ScaleRequest::new(8).id, "the same N is a new request");
        let mut data = BTreeMap::from([(keys::SCALE_REQUEST.to_string(), r.to_json())]);
        assert_eq!(unanswered(&data), Some(r.clone()));
        data.insert(
            keys::SCALE_ANSWER.into(),
            ScaleAnswer::done("other", 4).to_json(),
        );
        assert_eq!(unanswered(&data), Some(r.clone()));
        data.insert(
            keys::SCALE_ANSWER.into(),
            ScaleAnswer::failed(&r.id, "no").to_json(),
        );
        assert_eq!(unanswered(&data), None);
        assert_eq!(
            ScaleAnswer::from_data(&data).unwrap().outcome(),
            Err("no".into())
        );
        assert_eq!(ScaleAnswer::done("x", 4).outcome(), Ok(4));
        assert_eq!(
            ScaleAnswer::done("x", 4).to_json(),
            r#"{"id":"x","workers":4}"#
        );
    }
}
