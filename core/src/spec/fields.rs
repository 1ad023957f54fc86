//! Reading one configuration value: whole numbers, core counts, durations, word lists, text,
//! environment variables and free-form config, each with a message that says what to write.

use std::time::Duration;

use serde_yaml::Value;

/// Largest accepted worker count ([`super::MAX_WORKERS`], as the field readers take it).
pub(super) const MAX_WORKERS: u64 = super::MAX_WORKERS as u64;

/// A problem with one key; turned into a [`super::SpecError`] once the file is known.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Problem {
    /// A key t2 does not know (full dotted key).
    Unknown { key: String },
    /// A known key with a bad value.
    Bad { key: String, message: String },
}

impl Problem {
    /// A bad value of `key`.
    pub(super) fn bad(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Bad {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// How a value looks, for "got ..." in messages.
pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a map".into(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// A whole number in `min..=max`; numeric text such as `"4"` is accepted too.
pub(super) fn whole(v: &Value, min: u64, max: u64) -> Result<u64, String> {
    let n = match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.9e19)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    let Some(n) = n else {
        let kind = if min >= 1 {
            "a positive whole number"
        } else {
            "a whole number (0 or more)"
        };
        return Err(format!("must be {kind}, got {}", describe(v)));
    };
    if n < min {
        return Err(format!("must be at least {min}, got {n}"));
    }
    if n > max {
        return Err(format!("must be at most {max}, got {n}"));
    }
    Ok(n)
}

/// [`whole`] for `u32` fields.
pub(super) fn whole_u32(v: &Value, min: u32, max: u32) -> Result<u32, String> {
    whole(v, min.into(), max.into()).and_then(|n| u32::try_from(n).map_err(|e| e.to_string()))
}

/// A positive number of CPU cores: `2`, `0.5` or Kubernetes-style `500m`.
pub(super) fn cores(v: &Value) -> Result<f64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            match s.strip_suffix('m') {
                Some(milli) => milli.parse::<f64>().ok().map(|m| m / 1000.0),
                None => s.parse::<f64>().ok(),
            }
        }
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!(
            "must be a positive number of cores such as 1, 0.5 or 500m, got {}",
            describe(v)
        )),
    }
}

/// A duration as written (`500ms`, `3s`, `2m`, or a whole number of milliseconds), unchecked.
fn raw_duration(v: &Value) -> Option<Duration> {
    match v {
        Value::Number(n) => n.as_u64().map(Duration::from_millis),
        Value::String(s) => crate::duration::parse_unbounded(s).ok(),
        _ => None,
    }
}

/// A positive duration: `500ms`, `3s`, `2m`, or a whole number of milliseconds, at most
/// [`crate::duration::MAX_DURATION`] (each key has its own bound too: [`duration_within`]).
pub(super) fn duration(v: &Value) -> Result<Duration, String> {
    match raw_duration(v) {
        Some(d) if d.is_zero() => Err("must be longer than 0".into()),
        Some(d) => crate::duration::at_most(d, crate::duration::MAX_DURATION)
            .map_err(|e| format!("must be shorter: {e}")),
        None => Err(format!(
            "must be a duration such as 500ms, 3s or 2m, got {}",
            describe(v)
        )),
    }
}

/// A positive [`duration`] from `min` to `max`.
pub(super) fn duration_within(v: &Value, min: Duration, max: Duration) -> Result<Duration, String> {
    match raw_duration(v) {
        Some(d) if !d.is_zero() && (d < min || d > max) => Err(format!(
            "must be from {} to {}, got {}",
            crate::duration::format_duration(min),
            crate::duration::format_duration(max),
            crate::duration::describe(d)
        )),
        _ => duration(v),
    }
}

/// `true` or `false` (YAML booleans only: not `yes`, `1` or `"true"`).
pub(super) fn boolean(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => Err(format!("must be true or false, got {}", describe(other))),
    }
}

/// A scalar as text (`true`, `4` and `x` all become text); `None` for anything else.
pub(super) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Non-empty text.
pub(super) fn text(v: &Value) -> Result<String, String> {
    match scalar_text(v) {
        Some(s) if s.trim().is_empty() => Err("must not be empty".into()),
        Some(s) => Ok(s),
        None => Err(format!("must be text, got {}", describe(v))),
    }
}

/// A list of words: a YAML list of scalars, or one string split as a shell would (quotes and
/// backslashes, no expansion); null is empty.
pub(super) fn words(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => shell_words::split(s).map_err(|_| {
            format!(
                "has an unclosed quote: {}; close it, or write the command as a list such as [sh, -c, 'echo hi']",
                describe(v)
            )
        }),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                scalar_text(item).ok_or_else(|| {
                    format!(
                        "must be a list of words, but item {} is {}",
                        i + 1,
                        describe(item)
                    )
                })
            })
            .collect(),
        other => Err(format!(
            "must be a list such as [./run.sh, --fast] or a string, got {}",
            describe(other)
        )),
    }
}

/// The command: a non-empty list of words.
pub(super) fn command(v: &Value) -> Result<Vec<String>, String> {
    let w = words(v)?;
    if w.is_empty() {
        return Err("must name a program, e.g. `command: [./run.sh]`".into());
    }
    Ok(w)
}

/// Paths inside the job directory: relative, without `..`.
pub(super) fn include(v: &Value) -> Result<Vec<String>, String> {
    let paths = words_or_paths(v)?;
    for p in &paths {
        let path = std::path::Path::new(p);
        let escapes = path.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        });
        if p.is_empty() || escapes {
            return Err(format!(
                "must list paths inside the job directory (relative, without '..'), got '{p}'"
            ));
        }
    }
    Ok(paths)
}

/// Like [`words`], but a single string is one path (paths may contain spaces).
fn words_or_paths(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        other => words(other),
    }
}

/// The build step: text, or null for none.
pub(super) fn build(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(format!(
            "must be a shell command such as 'make', got {}",
            describe(other)
        )),
    }
}

/// A dashboard URL: empty for none, else `http[s]://host[:port][/prefix]`.
pub(super) fn dashboard_url(v: &Value) -> Result<String, String> {
    let text = match v {
        Value::Null => return Ok(String::new()),
        Value::String(s) => s.trim().to_string(),
        other => {
            return Err(format!(
                "must be the dashboard's URL such as http://127.0.0.1:8080, got {}",
                describe(other)
            ))
        }
    };
    if text.is_empty() {
        return Ok(text);
    }
    let Some(rest) = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
    else {
        return Err(format!(
            "must start with http:// or https:// (e.g. http://127.0.0.1:8080), got '{}'",
            crate::text::one_line(&text)
        ));
    };
    let host = rest.split('/').next().unwrap_or("");
    let bad_char = |c: char| c.is_whitespace() || matches!(c, '@' | '?' | '#');
    if host.is_empty() || text.chars().any(bad_char) {
        return Err(format!(
            "must be http[s]://host[:port][/path] without spaces, credentials or a query, got '{}'",
            crate::text::one_line(&text)
        ));
    }
    Ok(text.trim_end_matches('/').to_string())
}

/// CA certificates in PEM form (empty for none): what an `https://` dashboard's certificate
/// must be signed by.
pub(super) fn ca_pem(v: &Value) -> Result<String, String> {
    let text = match v {
        Value::Null => return Ok(String::new()),
        Value::String(s) => s.trim().to_string(),
        other => {
            return Err(format!(
                "must be PEM certificates (t2 submit --dashboard-ca FILE reads them from a file), got {}",
                describe(other)
            ))
        }
    };
    if text.is_empty() || text.contains("-----BEGIN CERTIFICATE-----") {
        Ok(text)
    } else {
        Err("must be PEM certificates (-----BEGIN CERTIFICATE-----); give the file with t2 submit --dashboard-ca FILE".into())
    }
}

/// A token: text without spaces (empty for none).
pub(super) fn token(v: &Value) -> Result<String, String> {
    let text = match v {
        Value::Null => return Ok(String::new()),
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        other => return Err(format!("must be text, got {}", describe(other))),
    };
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(text)
}

/// True for a portable environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(super) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value of an environment variable: any scalar as text; null is empty.
pub(super) fn env_value(v: &Value) -> Result<String, String> {
    match v {
        Value::Null => Ok(String::new()),
        other => scalar_text(other).ok_or_else(|| format!("must be text, got {}", describe(other))),
    }
}

/// A free-form config value as JSON.
pub(super) fn json(v: &Value) -> Result<serde_json::Value, String> {
    serde_json::to_value(v).map_err(|e| format!("cannot be given to workers as JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(text: &str) -> Value {
        serde_yaml::from_str(text).expect("yaml")
    }

    #[test]
    fn whole_numbers() {
        assert_eq!(whole(&y("4"), 1, 10), Ok(4));
        assert_eq!(whole(&y("'4'"), 1, 10), Ok(4));
        assert_eq!(whole(&y("4.0"), 1, 10), Ok(4));
        assert_eq!(
            whole(&y("0"), 1, 10).unwrap_err(),
            "must be at least 1, got 0"
        );
        assert_eq!(
            whole(&y("-3"), 1, 10).unwrap_err(),
            "must be a positive whole number, got -3"
        );
        assert_eq!(
            whole(&y("many"), 1, 10).unwrap_err(),
            "must be a positive whole number, got 'many'"
        );
        assert_eq!(
            whole(&y("2.5"), 1, 10).unwrap_err(),
            "must be a positive whole number, got 2.5"
        );
        assert_eq!(
            whole(&y("11"), 1, 10).unwrap_err(),
            "must be at most 10, got 11"
        );
        assert_eq!(
            whole(&y("-1"), 0, 10).unwrap_err(),
            "must be a whole number (0 or more), got -1"
        );
        assert_eq!(
            whole_u32(&y("[1]"), 1, 3).unwrap_err(),
            "must be a positive whole number, got a list"
        );
    }

    #[test]
    fn cores_and_durations() {
        assert_eq!(cores(&y("2")), Ok(2.0));
        assert_eq!(cores(&y("0.25")), Ok(0.25));
        assert_eq!(cores(&y("500m")), Ok(0.5));
        assert!(cores(&y("0"))
            .unwrap_err()
            .contains("positive number of cores"));
        assert!(cores(&y("lots")).unwrap_err().contains("got 'lots'"));
        assert_eq!(duration(&y("3s")), Ok(Duration::from_secs(3)));
        assert_eq!(duration(&y("250")), Ok(Duration::from_millis(250)));
        assert_eq!(duration(&y("0s")).unwrap_err(), "must be longer than 0");
        assert_eq!(
            duration(&y("fast")).unwrap_err(),
            "must be a duration such as 500ms, 3s or 2m, got 'fast'"
        );
        assert!(duration(&y("-5")).is_err());
    }

    #[test]
    fn booleans_and_bounded_durations() {
        assert_eq!(boolean(&y("true")), Ok(true));
        assert_eq!(boolean(&y("false")), Ok(false));
        assert_eq!(
            boolean(&y("yes")).unwrap_err(),
            "must be true or false, got 'yes'"
        );
        assert_eq!(
            boolean(&y("'true'")).unwrap_err(),
            "must be true or false, got 'true'"
        );
        assert_eq!(
            boolean(&y("1")).unwrap_err(),
            "must be true or false, got 1"
        );
        assert_eq!(
            boolean(&y("~")).unwrap_err(),
            "must be true or false, got nothing"
        );
        let (lo, hi) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(duration_within(&y("1s"), lo, hi), Ok(lo));
        assert_eq!(duration_within(&y("1m"), lo, hi), Ok(hi));
        assert_eq!(
            duration_within(&y("500ms"), lo, hi).unwrap_err(),
            "must be from 1s to 1m, got 500ms"
        );
        assert_eq!(
            duration_within(&y("0s"), lo, hi).unwrap_err(),
            "must be longer than 0"
        );
    }

    #[test]
    fn words_and_commands() {
        assert_eq!(
            command(&y("./run.sh  --fast")),
            Ok(vec!["./run.sh".into(), "--fast".into()])
        );
        assert_eq!(
            command(&y("[sleep, 5]")),
            Ok(vec!["sleep".into(), "5".into()])
        );
        assert!(command(&y("[]"))
            .unwrap_err()
            .contains("must name a program"));
        assert!(command(&y("''")).is_err());
        assert!(command(&y("[[a]]"))
            .unwrap_err()
            .contains("item 1 is a list"));
        assert_eq!(words(&y("~")), Ok(vec![]));
    }

    #[test]
    fn includes_stay_inside() {
        assert_eq!(
            include(&y("[bin, lib/x.so]")),
            Ok(vec!["bin".into(), "lib/x.so".into()])
        );
        assert_eq!(include(&y("'my dir'")), Ok(vec!["my dir".into()]));
        assert!(include(&y("[../x]")).is_err());
        assert!(include(&y("[/etc]")).is_err());
        assert!(include(&y("['']")).is_err());
    }

    #[test]
    fn env_names_and_values() {
        assert!(is_env_name("FOO_1"));
        assert!(is_env_name("_x"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("A-B"));
        assert!(!is_env_name(""));
        assert_eq!(env_value(&y("3")), Ok("3".into()));
        assert_eq!(env_value(&y("~")), Ok(String::new()));
        assert!(env_value(&y("{a: 1}")).is_err());
    }
}
