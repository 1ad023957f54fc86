//! Times as the job record writes them (RFC 3339, UTC), and ages as kubectl shows them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-01-02T03:04:05Z` or `2026-01-02T03:04:05.123456Z` as a time; `None` when it is not
/// that.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let (date, time) = s.strip_suffix('Z')?.split_once('T')?;
    let (time, fraction) = match time.split_once('.') {
        Some((t, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (t, f),
        Some(_) => return None,
        None => (time, ""),
    };
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<u64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let ([y, m, day], [hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if *m <= 2 { y - 1 } else { *y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if *m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = u64::try_from(era * 146_097 + doe - 719_468).ok()?;
    let millis: u64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    Some(
        UNIX_EPOCH
            + Duration::from_secs(days * 86_400 + hh * 3600 + mm * 60 + ss)
            + Duration::from_millis(millis),
    )
}

/// Milliseconds since the epoch as `2026-01-02T03:04:05.678Z`.
pub fn format_millis(millis: u64) -> String {
    let secs = millis / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = t2_core::calendar::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        millis % 1000
    )
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How long ago `rfc3339` was, as kubectl's AGE column shows it (`42s`, `3m12s`, `5h`,
/// `2d`); `-` for a time that does not parse.
pub fn age(rfc3339: &str) -> String {
    match parse_rfc3339(rfc3339) {
        Some(t) => short(SystemTime::now().duration_since(t).unwrap_or_default()),
        None => "-".into(),
    }
}

/// A duration as kubectl's AGE column shows it.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => format!("{}m{}s", s / 60, s % 60),
        600..=3599 => format!("{}m", s / 60),
        3600..=28_799 => match (s % 3600) / 60 {
            0 => format!("{}h", s / 3600),
            m => format!("{}h{m}m", s / 3600),
        },
        28_800..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_dates() {
        let at = |s| super::parse_rfc3339(s);
        assert_eq!(
            at("1970-01-02T00:00:01Z"),
            Some(UNIX_EPOCH + Duration::from_secs(86_401))
        );
        let day = 20_415 * 86_400 + 3 * 3600 + 4 * 60 + 5;
        assert_eq!(
            at("2025-11-23T03:04:05Z"),
            Some(UNIX_EPOCH + Duration::from_secs(day))
        );
        assert_eq!(
            at("2025-11-23T03:04:05.250931Z"),
            Some(UNIX_EPOCH + Duration::from_millis(day * 1000 + 250))
        );
        assert_eq!(at("yesterday"), None);
        assert_eq!(at("2025-11-23T03:04:05.Z"), None);
    }

    #[test]
    fn millis_round_trip() {
        let t = super::format_millis(1_764_000_000_123);
        assert_eq!(t, "2025-11-24T16:00:00.123Z");
        assert_eq!(
            super::parse_rfc3339(&t),
            Some(UNIX_EPOCH + Duration::from_millis(1_764_000_000_123))
        );
    }

    #[test]
    fn ages_as_kubectl_shows_them() {
        let s = |n| super::short(Duration::from_secs(n));
        assert_eq!(s(42), "42s");
        assert_eq!(s(192), "3m12s");
        assert_eq!(s(1800), "30m");
        assert_eq!(s(3 * 3600 + 20 * 60), "3h20m");
        assert_eq!(s(30 * 3600), "30h");
        assert_eq!(s(5 * 86_400), "5d");
    }
}
