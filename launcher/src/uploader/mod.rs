//! The launcher's side of the package uploader (crate `t2_uploader`): the `t2 uploader`
//! command, and a local job's use of an uploader (`t2 submit local --uploader`).

pub mod command;
pub mod job;
