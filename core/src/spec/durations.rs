//! The bounds of every duration key of the job spec, in one table, so no key is unbounded
//! (a `join_timeout` of 10^19 s once overflowed an `Instant` in the job master).

use std::time::Duration;

use serde_yaml::Value;

use super::fields;
use crate::duration::MAX_WAIT;

/// Each duration key (outside `zookeeper`, which has its own) with its shortest and longest
/// value.
pub(super) const BOUNDS: &[(&str, Duration, Duration)] = &[
    ("barrier_timeout", Duration::from_millis(1), MAX_WAIT),
    ("init_barrier_timeout", Duration::from_millis(1), MAX_WAIT),
    ("join_timeout", Duration::from_millis(1), MAX_WAIT),
    (
        "heartbeat_interval",
        Duration::from_millis(1),
        Duration::from_secs(60),
    ),
    (
        "heartbeat_timeout",
        Duration::from_millis(1),
        Duration::from_secs(3600),
    ),
];

/// True for a key of [`BOUNDS`].
pub(super) fn is_duration_key(key: &str) -> bool {
    BOUNDS.iter().any(|(k, _, _)| *k == key)
}

/// The value of duration key `key`, checked against its bounds.
pub(super) fn read(key: &str, v: &Value) -> Result<Duration, String> {
    match BOUNDS.iter().find(|(k, _, _)| *k == key) {
        Some((_, min, max)) => fields::duration_within(v, *min, *max),
        None => fields::duration(v),
    }
}
