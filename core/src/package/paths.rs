//! Rules for paths inside a package, shared by the builder (which refuses to write what the
//! unpacker would refuse) and the unpacker: entry names and symlink targets.

/// Why an entry name is refused: it is absolute.
pub(crate) const ABSOLUTE: &str = "is an absolute path";
/// Why an entry name is refused: it has a `..` component.
pub(crate) const DOT_DOT: &str = "escapes the package with '..'";

/// The components of an entry name, `.` and empty components dropped; an empty result is
/// the package root itself. Refuses absolute names and any `..`.
pub(crate) fn entry_components(name: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if name.first() == Some(&b'/') {
        return Err(ABSOLUTE);
    }
    let mut out = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(DOT_DOT),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Checks the target of a symlink whose parent directory is `parent_depth` levels below the
/// package root. Allowed: a relative target that may climb with leading `..` no higher than
/// the root, then only names. Refused: absolute targets, targets that climb out, and `..`
/// after a name (through a symlinked directory that could land anywhere). `Err` is the reason,
/// phrased to follow the entry name.
pub(crate) fn check_symlink_target(parent_depth: usize, target: &[u8]) -> Result<(), String> {
    let shown = String::from_utf8_lossy(target);
    let shown = crate::text::one_line(&shown);
    if target.is_empty() {
        return Err("is a symlink with an empty target".into());
    }
    if target.first() == Some(&b'/') {
        return Err(format!(
            "is a symlink pointing outside the package (-> {shown})"
        ));
    }
    let mut ups = 0usize;
    let mut named = false;
    for c in target.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." if named => {
                return Err(format!(
                    "is a symlink whose target climbs with '..' after a name (-> {shown}), which cannot be checked safely"
                ))
            }
            b".." => ups += 1,
            _ => named = true,
        }
    }
    if ups > parent_depth {
        return Err(format!(
            "is a symlink pointing outside the package (-> {shown})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert_eq!(entry_components(b"a/b"), Ok(vec![&b"a"[..], &b"b"[..]]));
        assert_eq!(entry_components(b"./a//b/"), Ok(vec![&b"a"[..], &b"b"[..]]));
        assert_eq!(entry_components(b"./"), Ok(vec![]));
        assert_eq!(entry_components(b"/etc/passwd"), Err(ABSOLUTE));
        assert_eq!(entry_components(b"../x"), Err(DOT_DOT));
        assert_eq!(entry_components(b"a/../../x"), Err(DOT_DOT));
        assert_eq!(entry_components(b"a/.."), Err(DOT_DOT));
        assert_eq!(
            entry_components(b"a..b/..c"),
            Ok(vec![&b"a..b"[..], &b"..c"[..]])
        );
    }

    #[test]
    fn symlink_targets() {
        assert!(check_symlink_target(0, b"bin/run.sh").is_ok());
        assert!(check_symlink_target(0, b".").is_ok());
        assert!(check_symlink_target(1, b"../lib/x.so").is_ok());
        assert!(check_symlink_target(2, b"../../x").is_ok());
        let outside = check_symlink_target(1, b"../../x").unwrap_err();
        assert_eq!(
            outside,
            "is a symlink pointing outside the package (-> ../../x)"
        );
        let abs = check_symlink_target(3, b"/etc/passwd").unwrap_err();
        assert_eq!(
            abs,
            "is a symlink pointing outside the package (-> /etc/passwd)"
        );
        assert!(check_symlink_target(3, b"a/../b")
            .unwrap_err()
            .contains("after a name"));
        assert!(check_symlink_target(0, b"").is_err());
        assert!(check_symlink_target(0, b"..").is_err());
    }
}
