//! Support for the dashboard browser test.
pub mod proxy;
