//! Checking an image reference before anything is created: `[host[:port]/]path[:tag][@digest]`
//! with the grammar of the distribution reference (lowercase path components, tags of
//! `[A-Za-z0-9_.-]` up to 128 characters, `sha256:` digests of 64 hex digits).

/// Checks image reference `image`; the error says what is wrong with it.
pub fn check_image(image: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!("'{}' is not a valid image reference: {why}; write e.g. registry.example.com/team/t2:0.1.0", image.escape_default()))
    };
    if image.is_empty() {
        return bad("it is empty");
    }
    if image.len() > 255 {
        return bad("it is longer than 255 characters");
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("it contains spaces");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        });
        if !ok {
            return bad("the digest must be sha256: and 64 lowercase hex digits");
        }
    }
    // A tag is after the last ':' that comes after the last '/'.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && t.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return bad("the tag must be 1-128 of letters, digits, '_', '.' and '-', not starting with '.' or '-'");
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && looks_like_host(parts[0]) {
        let host = parts.remove(0);
        if !valid_host(host) {
            return bad("the registry host is not a valid host[:port]");
        }
    }
    if parts.is_empty() || parts.iter().any(|p| !valid_component(p)) {
        return bad("each path component must be lowercase letters and digits, separated by '.', '_', '__' or '-'");
    }
    Ok(())
}

fn looks_like_host(first: &str) -> bool {
    first.contains('.')
        || first.contains(':')
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()));
    let name_ok = !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    port_ok && name_ok
}

fn valid_component(p: &str) -> bool {
    if p.is_empty() {
        return false;
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !p.starts_with(alnum) || !p.ends_with(alnum) {
        return false;
    }
    if !p.chars().all(|c| alnum(c) || "._-".contains(c)) {
        return false;
    }
    // Separators: '.', '_', '__' or runs of '-'; never mixed or doubled otherwise.
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !alnum(b[i] as char) {
            let start = i;
            while i < b.len() && !alnum(b[i] as char) {
                i += 1;
            }
            let sep = &p[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.chars().all(|c| c == '-');
            if !ok {
                return false;
            }
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::check_image;

    #[test]
    fn good_references() {
        for ok in [
            "t2",
            "t2:0.1.0",
            "t2:0.1.0-jre",
            "library/t2",
            "ghcr.io/team/t2:latest",
            "localhost:5000/t2",
            "registry.example.com:443/a/b/c:v1_2",
            "my-org__x/t2.app",
            &format!("t2@sha256:{}", "a".repeat(64)),
        ] {
            assert!(check_image(ok).is_ok(), "{ok}: {:?}", check_image(ok));
        }
    }

    #[test]
    fn bad_references() {
        for bad in [
            "",
            "T2:latest",
            "t2:",
            "t2:-x",
            "t2 latest",
            "ghcr.io/Team/t2",
            "t2@sha256:xyz",
            "a//b",
            "-t2",
            "t2..x",
            "host:99999999/t2",
        ] {
            let e = check_image(bad).unwrap_err();
            assert!(e.contains("not a valid image reference"), "{bad}: {e}");
            assert!(!e.contains('\n'));
        }
    }
}
