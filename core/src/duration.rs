//! Human-readable durations (`500ms`, `3s`, `2m`) for YAML fields and `-D` overrides.

use std::time::Duration;

/// The longest duration t2 reads anywhere (one year, 365.25 days, which prints as `1year`). Every key and flag has its own, usually
/// smaller, bound too; this one keeps `Instant::now() + d` from overflowing wherever a
/// duration is used, whatever it came from (a spec file, a `-D` flag, a CLI flag, JSON).
pub const MAX_DURATION: Duration = Duration::from_secs(31_557_600);

/// The longest wait a job may ask for: `join_timeout`, barrier timeouts (7 days).
pub const MAX_WAIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses `500ms`, `3s`, `1m30s`, or a bare number of milliseconds, up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let d = parse_unbounded(t)
        .map_err(|e| format!("'{t}' is not a duration ({e}); write e.g. 500ms, 3s or 2m"))?;
    at_most(d, MAX_DURATION)
}

/// [`parse_duration`] without the bound, for callers that check their own (and say so).
pub(crate) fn parse_unbounded(text: &str) -> Result<Duration, humantime::DurationError> {
    let t = text.trim();
    match t.parse::<u64>() {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => humantime::parse_duration(t),
    }
}

/// `d` if it is at most `max`, else the one error every duration past its bound gets.
pub fn at_most(d: Duration, max: Duration) -> Result<Duration, String> {
    if d > max {
        return Err(format!(
            "{} is too long: at most {}",
            describe(d),
            format_duration(max)
        ));
    }
    Ok(d)
}

/// `d` for a message; absurd ones as seconds (humantime would print centuries of years).
pub(crate) fn describe(d: Duration) -> String {
    if d > MAX_DURATION {
        format!("{}s", d.as_secs())
    } else {
        format_duration(d)
    }
}

/// Parses a duration flag or setting from `min` to `max`, naming `what` in the error
/// (`--fetch-timeout: must be from 1s to 1d, got 2d`).
pub fn parse_within(
    what: &str,
    text: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, String> {
    let d = parse_duration(text).map_err(|e| format!("{what}: {e}"))?;
    if d < min || d > max {
        return Err(format!(
            "{what}: must be from {} to {}, got {}",
            format_duration(min),
            format_duration(max),
            format_duration(d)
        ));
    }
    Ok(d)
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Serde adapter for `Duration` fields written as human durations.
pub mod serde_human {
    use super::{format_duration, parse_duration};
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Serialises as e.g. `3s`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    /// Accepts a string like `3s` or an integer number of milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Ms(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Ms(ms) => super::at_most(Duration::from_millis(ms), super::MAX_DURATION)
                .map_err(serde::de::Error::custom),
            Raw::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_bare_millis() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("250").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("fast")
            .unwrap_err()
            .contains("not a duration"));
    }

    #[test]
    fn absurd_durations_are_one_clear_error() {
        assert_eq!(
            parse_duration("18000000000000000000s").unwrap_err(),
            "18000000000000000000s is too long: at most 1year"
        );
        assert!(parse_duration("18446744073709551615")
            .unwrap_err()
            .contains("is too long: at most"));
        assert_eq!(parse_duration("1year").unwrap(), MAX_DURATION);
        assert!(parse_duration("365d").is_ok());
        assert!(parse_duration("366d").unwrap_err().contains("too long"));
        let err = parse_within("--ttl", "8d", Duration::from_secs(1), MAX_WAIT).unwrap_err();
        assert_eq!(err, "--ttl: must be from 1s to 7days, got 8days");
        let huge: Result<Duration, _> =
            serde_json::from_str::<Wrapper>(r#"{"d": 18446744073709551615}"#).map(|w| w.d);
        assert!(huge.unwrap_err().to_string().contains("too long"));
    }

    #[derive(serde::Deserialize)]
    struct Wrapper {
        #[serde(with = "serde_human")]
        #[allow(dead_code)]
        d: Duration,
    }
}
