//! Reading the ZooKeeper settings of a fault-tolerant job: the `host:port,host:port` server
//! list, the root znode path and the session timeout, each with a message that says what to
//! write.

use std::time::Duration;

use serde_yaml::Value;

use super::fields::{self, describe};

/// Keys under `zookeeper`.
pub(super) const KEYS: &[&str] = &["addresses", "root", "session_timeout"];

/// Shortest accepted `zookeeper.session_timeout`.
pub(super) const MIN_SESSION_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest accepted `zookeeper.session_timeout`.
pub(super) const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(600);

/// The example server list used in messages.
pub(super) const EXAMPLE_ADDRESSES: &str = "127.0.0.1:2181";

/// The server list: `host:port` entries separated by commas, no spaces; empty (or null) for
/// none. A host is a name, an IPv4 address or a bracketed IPv6 address (`[::1]:2181`).
pub(super) fn addresses(v: &Value) -> Result<String, String> {
    let text = match v {
        Value::Null => return Ok(String::new()),
        Value::String(s) => s.clone(),
        other => {
            return Err(format!(
                "must be text such as '{EXAMPLE_ADDRESSES}' or 'zk1:2181,zk2:2181', got {}",
                describe(other)
            ))
        }
    };
    if text.is_empty() {
        return Ok(text);
    }
    for entry in text.split(',') {
        check_address(entry)?;
    }
    Ok(text)
}

/// One `host:port` entry of the server list.
fn check_address(entry: &str) -> Result<(), String> {
    let bad = |why: &str| {
        format!(
            "has a bad entry '{}': {why}",
            entry.escape_default().collect::<String>()
        )
    };
    if entry.chars().any(char::is_whitespace) {
        return Err(bad("remove the spaces; write host:port,host:port"));
    }
    let Some((host, port)) = entry.rsplit_once(':') else {
        return Err(bad(&format!(
            "expected host:port such as {EXAMPLE_ADDRESSES}"
        )));
    };
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        }
    };
    if !host_ok {
        return Err(bad(&format!(
            "expected host:port such as {EXAMPLE_ADDRESSES}, with a host name, an IPv4 address or a bracketed IPv6 address"
        )));
    }
    let port_ok = !port.is_empty()
        && port.chars().all(|c| c.is_ascii_digit())
        && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
    if !port_ok {
        return Err(bad("the port must be a number from 1 to 65535"));
    }
    Ok(())
}

/// The root znode: `/name` or `/a/b`, segments of `[A-Za-z0-9._-]`, no trailing `/`, no
/// empty, `.` or `..` segments, and not ZooKeeper's own `/zookeeper`.
pub(super) fn root(v: &Value) -> Result<String, String> {
    let text = match v {
        Value::String(s) => s.clone(),
        other => {
            return Err(format!(
                "must be a znode path such as /t2, got {}",
                describe(other)
            ))
        }
    };
    let shown = text.escape_default().collect::<String>();
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!(
            "must be a znode path starting with '/', such as /t2, got '{shown}'"
        ));
    };
    if rest.is_empty() {
        return Err("must name a znode below '/', such as /t2, not '/' itself".into());
    }
    if rest.ends_with('/') {
        return Err(format!(
            "must not end with '/': write '{}'",
            shown.trim_end_matches('/')
        ));
    }
    for segment in rest.split('/') {
        let chars_ok = !segment.is_empty()
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !chars_ok || segment == "." || segment == ".." {
            return Err(format!(
                "must be a znode path such as /t2 or /apps/t2, with names of letters, digits, '.', '_' and '-' (no empty, '.' or '..' names), got '{shown}'"
            ));
        }
    }
    if rest.split('/').next() == Some("zookeeper") {
        return Err(format!(
            "must not be under /zookeeper, which ZooKeeper keeps for itself, got '{shown}'"
        ));
    }
    Ok(text)
}

/// The session timeout: a duration from 1s to 10m.
pub(super) fn session_timeout(v: &Value) -> Result<Duration, String> {
    fields::duration_within(v, MIN_SESSION_TIMEOUT, MAX_SESSION_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(text: &str) -> Value {
        serde_yaml::from_str(text).expect("yaml")
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn server_lists() {
        for good in [
            "",
            "127.0.0.1:2181",
            "zk-0.zk.default.svc:2181,zk-1:2182,zk_2:65535",
            "[::1]:2181",
            "localhost:1",
        ] {
            assert_eq!(addresses(&s(good)), Ok(good.to_string()), "{good}");
        }
        assert_eq!(addresses(&Value::Null), Ok(String::new()));
        let cases = [
            ("zk", "'zk': expected host:port"),
            (":2181", "':2181': expected host:port"),
            ("zk:0", "'zk:0': the port must be a number from 1 to 65535"),
            ("zk:70000", "'zk:70000': the port"),
            ("zk:-1", "'zk:-1': the port"),
            ("zk:", "'zk:': the port"),
            ("zk:2181/chroot", "'zk:2181/chroot': the port"),
            ("a:1,,b:2", "entry '': expected host:port"),
            ("a:1,", "entry '': expected host:port"),
            ("a:1, b:2", "' b:2': remove the spaces"),
            ("::1:2181", "'::1:2181': expected host:port"),
            ("[zk]:2181", "'[zk]:2181': expected host:port"),
            ("z/k:2181", "'z/k:2181': expected host:port"),
        ];
        for (text, want) in cases {
            let e = addresses(&s(text)).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(addresses(&y("2181"))
            .unwrap_err()
            .starts_with("must be text"));
        assert!(addresses(&y("[a:1]")).unwrap_err().contains("got a list"));
    }

    #[test]
    fn roots() {
        for good in ["/t2", "/apps/t2", "/a.b_c-D9", "/x/..y"] {
            assert_eq!(root(&s(good)), Ok(good.to_string()), "{good}");
        }
        let cases = [
            ("t2", "starting with '/'"),
            ("", "starting with '/'"),
            ("/", "not '/' itself"),
            ("/t2/", "must not end with '/': write '/t2'"),
            ("/a//b", "no empty"),
            ("/a/./b", "no empty"),
            ("/a/..", "no empty"),
            ("/t 2", "got '/t 2'"),
            ("/t2*", "got '/t2*'"),
            ("/zookeeper/t2", "keeps for itself"),
        ];
        for (text, want) in cases {
            let e = root(&s(text)).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(root(&Value::Null).unwrap_err().contains("got nothing"));
        assert!(root(&y("3")).unwrap_err().contains("got 3"));
    }

    #[test]
    fn session_timeouts() {
        assert_eq!(session_timeout(&y("10s")), Ok(Duration::from_secs(10)));
        assert_eq!(session_timeout(&y("10000")), Ok(Duration::from_secs(10)));
        assert_eq!(session_timeout(&y("1s")), Ok(Duration::from_secs(1)));
        assert_eq!(session_timeout(&y("10m")), Ok(Duration::from_secs(600)));
        assert_eq!(
            session_timeout(&y("999ms")).unwrap_err(),
            "must be from 1s to 10m, got 999ms"
        );
        assert_eq!(
            session_timeout(&y("11m")).unwrap_err(),
            "must be from 1s to 10m, got 11m"
        );
        assert!(session_timeout(&y("soon"))
            .unwrap_err()
            .contains("must be a duration"));
    }
}
