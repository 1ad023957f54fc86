//! Helpers of the exec-delivery test: a loopback fake API server that speaks the exec
//! WebSocket protocol and runs the real `t2 pod receive`, on top of the mock API server and
//! pod objects of the t2-kubernetes tests (shared, not copied).
#![allow(dead_code)]

pub mod exec_session;
pub mod fake_api;
#[path = "../../../kubernetes/tests/support/mock.rs"]
pub mod mock;
#[path = "../../../kubernetes/tests/support/pods.rs"]
pub mod pods;
