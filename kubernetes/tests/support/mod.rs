//! Helpers of the Kubernetes tests: fixed jobs, and a mock API server that checks every
//! request of a scenario in order (method, path and query, body essentials) and answers it.
#![allow(dead_code)]

pub mod jobs;
pub mod mock;
pub mod pods;
