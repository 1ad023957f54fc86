//! The library half of the `t2` launcher: the parts other programs (and the tests) drive
//! directly. The binary (`src/main.rs`) wires them to the command line.
//!
//! # Layout
//! - [`kubernetes`]: the `kubernetes` cluster — the object model (`build_objects`), client
//!   setup, submit/kill/list/status/logs/scale/gc/doctor over a `kube::Client`, package
//!   distribution, and the in-cluster job master's pieces.

pub mod kubernetes;
