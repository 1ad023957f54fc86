//! Unpacking hostile and damaged packages.

use std::io::Write;
use std::path::Path;

use super::*;
use crate::package::{build_package, PackageSource};

/// Writes a tar.gz with one entry whose name bytes are written raw (no sanitising).
fn hostile(dir: &Path, name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) -> PathBuf {
    let path = dir.join("evil.tar.gz");
    let f = File::create(&path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    // A harmless file first, to prove the destination is removed on error.
    let mut ok = tar::Header::new_gnu();
    ok.set_path("ok.txt").unwrap();
    ok.set_size(2);
    ok.set_mode(0o644);
    ok.set_cksum();
    b.append(&ok, &b"ok"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap().finish().unwrap();
    path
}

fn expect_unsafe(name: &str, kind: tar::EntryType, link: Option<&str>, why: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = hostile(tmp.path(), name, kind, link, b"x");
    let dest = tmp.path().join("out");
    let err = unpack_package(&pkg, &dest, None, &UnpackLimits::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(why), "{name}: {msg}");
    assert!(!dest.exists(), "{name}: destination left behind");
    assert!(!tmp.path().join("x").exists());
}

#[test]
fn rejects_parent_dir_entries() {
    expect_unsafe("../x", tar::EntryType::Regular, None, "escapes the package with '..'");
    expect_unsafe("a/../../x", tar::EntryType::Regular, None, "escapes");
}

#[test]
fn rejects_absolute_paths() {
    expect_unsafe("/tmp/t2-evil-abs", tar::EntryType::Regular, None, "is an absolute path");
    assert!(!Path::new("/tmp/t2-evil-abs").exists());
}

#[test]
fn rejects_symlinks_out() {
    expect_unsafe("l", tar::EntryType::Symlink, Some("/etc/passwd"), "symlink pointing outside the package (-> /etc/passwd)");
    expect_unsafe("d/l", tar::EntryType::Symlink, Some("../../x"), "symlink pointing outside");
}

#[test]
fn rejects_hardlinks_out() {
    expect_unsafe("h", tar::EntryType::Link, Some("/etc/passwd"), "hardlink");
    expect_unsafe("h", tar::EntryType::Link, Some("../x"), "hardlink");
}

#[test]
fn rejects_devices_and_fifos() {
    expect_unsafe("dev", tar::EntryType::Char, None, "is a device file");
    expect_unsafe("blk", tar::EntryType::Block, None, "is a device file");
    expect_unsafe("fifo", tar::EntryType::Fifo, None, "is a FIFO");
}

fn sample_dir(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(root.join("job.yaml"), "name: x\ncommand: [./bin/run.sh]\n").unwrap();
    std::fs::write(root.join("bin/run.sh"), "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("bin/run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(root.join("data.txt"), "d".repeat(10_000)).unwrap();
    std::os::unix::fs::symlink("data.txt", root.join("link.txt")).unwrap();
}

#[test]
fn round_trip_keeps_content_modes_and_inner_links() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("job");
    sample_dir(&src);
    let source = PackageSource::detect(&src, None).unwrap();
    let built = build_package(&source, "name: x\ncommand: [./bin/run.sh]\n", &[], &tmp.path().join("p.tar.gz"), 1 << 20).unwrap();
    let dest = tmp.path().join("out");
    let report = unpack_package(&built.path, &dest, Some(&built.sha256), &UnpackLimits::default()).unwrap();
    assert_eq!(report.files, 3);
    assert_eq!(std::fs::read_to_string(dest.join("link.txt")).unwrap().len(), 10_000);
    let mode = std::fs::metadata(dest.join("bin/run.sh")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(std::fs::metadata(dest.join("data.txt")).unwrap().permissions().mode() & 0o777, 0o644);
}

#[test]
fn builds_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("job");
    sample_dir(&src);
    let source = PackageSource::detect(&src, None).unwrap();
    let a = build_package(&source, "name: x\n", &[], &tmp.path().join("a.tar.gz"), 1 << 20).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(src.join("data.txt"), "d".repeat(10_000)).unwrap();
    let b = build_package(&source, "name: x\n", &[], &tmp.path().join("b.tar.gz"), 1 << 20).unwrap();
    assert_eq!(a.sha256, b.sha256);
    let c = build_package(&source, "name: y\n", &[], &tmp.path().join("c.tar.gz"), 1 << 20).unwrap();
    assert_ne!(a.sha256, c.sha256);
}

#[test]
fn include_limits_the_content() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("job");
    sample_dir(&src);
    let source = PackageSource::detect(&src, None).unwrap();
    let p = build_package(&source, "name: x\n", &["bin".into()], &tmp.path().join("p.tar.gz"), 1 << 20).unwrap();
    let dest = tmp.path().join("out");
    unpack_package(&p.path, &dest, None, &UnpackLimits::default()).unwrap();
    assert!(dest.join("bin/run.sh").is_file() && dest.join("job.yaml").is_file());
    assert!(!dest.join("data.txt").exists());
}

#[test]
fn truncated_gzip_is_corrupt_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("job");
    sample_dir(&src);
    let source = PackageSource::detect(&src, None).unwrap();
    let p = build_package(&source, "name: x\n", &[], &tmp.path().join("p.tar.gz"), 1 << 20).unwrap();
    let bytes = std::fs::read(&p.path).unwrap();
    let cut = tmp.path().join("cut.tar.gz");
    std::fs::File::create(&cut).unwrap().write_all(&bytes[..bytes.len() / 2]).unwrap();
    let dest = tmp.path().join("out");
    let err = unpack_package(&cut, &dest, None, &UnpackLimits::default()).unwrap_err();
    assert!(matches!(err, PackageError::Corrupt { .. }), "{err}");
    assert!(!dest.exists());
}

#[test]
fn size_limits_and_checksums_are_enforced() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("job");
    sample_dir(&src);
    let source = PackageSource::detect(&src, None).unwrap();
    let err = build_package(&source, "name: x\n", &[], &tmp.path().join("small.tar.gz"), 100).unwrap_err();
    assert!(err.to_string().contains("over the limit of 100 bytes"), "{err}");
    assert!(!tmp.path().join("small.tar.gz").exists() && !tmp.path().join("small.tar.partial").exists());
    let p = build_package(&source, "name: x\n", &[], &tmp.path().join("p.tar.gz"), 1 << 20).unwrap();
    let limits = UnpackLimits { max_package_bytes: 10, ..UnpackLimits::default() };
    assert!(matches!(unpack_package(&p.path, &tmp.path().join("o1"), None, &limits), Err(PackageError::TooLarge { .. })));
    let limits = UnpackLimits { max_unpacked_bytes: 5_000, ..UnpackLimits::default() };
    assert!(matches!(unpack_package(&p.path, &tmp.path().join("o2"), None, &limits), Err(PackageError::TooLarge { .. })));
    assert!(!tmp.path().join("o2").exists());
    let err = unpack_package(&p.path, &tmp.path().join("o3"), Some(&"0".repeat(64)), &UnpackLimits::default()).unwrap_err();
    assert!(err.to_string().contains(&p.sha256) && err.to_string().contains(&"0".repeat(64)), "{err}");
}
