//! Secrets on disk and in memory: files only their owner can read (job tokens, uploader and
//! dashboard tokens) and comparing tokens in constant time.

use std::io::Write;
use std::path::Path;

/// Whether [`write_private`] may replace a file that is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Fail if the file exists (a new job's token: never overwrite one).
    Refuse,
    /// Truncate and rewrite it (a token file that is being made again).
    Replace,
}

/// Writes `text` to `path`, created with mode 0600 so that only its owner can read it.
pub fn write_private(path: &Path, text: &str, existing: Existing) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    match existing {
        Existing::Refuse => options.create_new(true),
        Existing::Replace => options.create(true).truncate(true),
    };
    options.open(path)?.write_all(text.as_bytes())
}

/// Equality whose time does not depend on where the inputs differ (only on their lengths).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn equal_only_when_every_byte_is() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn private_files_are_0600_and_new_ones_never_overwrite() {
        let dir = std::env::temp_dir().join(format!("t2-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        let _ = std::fs::remove_file(&path);
        write_private(&path, "one", Existing::Refuse).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(write_private(&path, "two", Existing::Refuse).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one");
        write_private(&path, "three", Existing::Replace).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
