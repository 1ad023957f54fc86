//! The local cluster's job control commands, which work from any terminal: list, status, logs,
//! describe, kill, scale, delete, gc; and the hidden `t2 package`.

pub mod config;
pub mod delete;
pub mod describe;
pub mod kill;
pub mod list;
pub mod logs;
pub mod orphan;
pub mod package;
pub mod scale;
pub mod status;
