//! `Range: bytes=…` for downloads that resume (RFC 9110 §14): one range is served as 206,
//! several or a malformed header are ignored (the whole file, 200), a range past the end is 416.

/// What to send for a request's `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// The whole file.
    Full,
    /// Bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// The range lies past the end of the file.
    Unsatisfiable,
}

/// Interprets the `Range` header `header` for a file of `len` bytes.
pub fn parse(header: Option<&str>, len: u64) -> Span {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Span::Full;
    };
    if spec.contains(',') {
        return Span::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Span::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => Span::Unsatisfiable,
            Some(_) if len == 0 => Span::Unsatisfiable,
            Some(n) => Span::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            None => Span::Full,
        },
        // bytes=A-: from A to the end.
        (false, true) => match num(a) {
            Some(start) if start >= len => Span::Unsatisfiable,
            Some(start) => Span::Part {
                start,
                end: len - 1,
            },
            None => Span::Full,
        },
        // bytes=A-B.
        (false, false) => match (num(a), num(b)) {
            (Some(start), Some(end)) if start <= end => {
                if start >= len {
                    Span::Unsatisfiable
                } else {
                    Span::Part {
                        start,
                        end: end.min(len - 1),
                    }
                }
            }
            _ => Span::Full,
        },
        (true, true) => Span::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |start, end| Span::Part { start, end };
        assert_eq!(parse(None, 10), Span::Full);
        assert_eq!(parse(Some("bytes=0-4"), 10), p(0, 4));
        assert_eq!(parse(Some("bytes=5-"), 10), p(5, 9));
        assert_eq!(parse(Some("bytes=-3"), 10), p(7, 9));
        assert_eq!(parse(Some("bytes=-30"), 10), p(0, 9));
        assert_eq!(parse(Some("bytes=8-100"), 10), p(8, 9));
        assert_eq!(parse(Some("bytes=10-"), 10), Span::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 10), Span::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), Span::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-1,4-5"), 10), Span::Full);
        assert_eq!(parse(Some("bytes=5-1"), 10), Span::Full);
        assert_eq!(parse(Some("items=0-1"), 10), Span::Full);
        assert_eq!(parse(Some("bytes=x-"), 10), Span::Full);
    }
}
