//! Job control commands that work from any terminal: list, status, logs, kill.

pub mod kill;
pub mod list;
pub mod logs;
pub mod package;
pub mod status;
