//! Unit tests of unpacking: hostile entries, damaged and oversized packages, checksums, and a
//! round trip through the builder.

use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};

use tar::EntryType;

use super::*;
use crate::package::{build_package, PackageSource};

/// One entry of a hand-made archive; names and link targets are written as raw bytes, so
/// nothing is sanitised on the way in.
struct Raw<'a> {
    name: &'a str,
    kind: EntryType,
    link: Option<&'a str>,
    data: &'a [u8],
    mode: u32,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Raw<'a> {
    Raw {
        name,
        kind: EntryType::Regular,
        link: None,
        data,
        mode: 0o644,
    }
}

fn link<'a>(name: &'a str, kind: EntryType, target: &'a str) -> Raw<'a> {
    Raw {
        name,
        kind,
        link: Some(target),
        data: b"",
        mode: 0o777,
    }
}

fn special(name: &str, kind: EntryType) -> Raw<'_> {
    Raw {
        name,
        kind,
        link: None,
        data: b"",
        mode: 0o644,
    }
}

/// A tar with `entries` (uncompressed).
fn tar_bytes(entries: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().expect("gnu");
            gnu.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
            if let Some(l) = e.link {
                gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(e.kind);
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        h.set_cksum();
        b.append(&h, e.data).expect("append");
    }
    b.into_inner().expect("tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

/// A package file holding `entries`, after a harmless `ok.txt` (which must not survive an error).
fn package(dir: &Path, entries: &[Raw]) -> PathBuf {
    let mut all = vec![file("ok.txt", b"ok")];
    all.extend(entries.iter().map(|e| Raw { ..*e }));
    let path = dir.join("pkg.tar.gz");
    std::fs::write(&path, gzip(&tar_bytes(&all))).expect("write");
    path
}

/// Unpacks `entries` and returns the error, checking it is one line and nothing is left.
fn refused(entries: &[Raw]) -> PackageError {
    refused_with(entries, &UnpackLimits::default())
}

fn refused_with(entries: &[Raw], limits: &UnpackLimits) -> PackageError {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = package(tmp.path(), entries);
    let dest = tmp.path().join("out");
    let err = unpack_package(&pkg, &dest, None, limits).expect_err("should be refused");
    assert_eq!(err.to_string().lines().count(), 1, "{err}");
    assert!(!dest.exists(), "destination left behind after: {err}");
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("pkg.tar.gz")],
        "written outside: {left:?}"
    );
    err
}

fn why(err: &PackageError) -> &str {
    match err {
        PackageError::UnsafeEntry { why, .. } => why,
        other => panic!("expected UnsafeEntry, got {other}"),
    }
}

fn unpacked(entries: &[Raw]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pkg = package(tmp.path(), entries);
    let dest = tmp.path().join("out");
    unpack_package(&pkg, &dest, None, &UnpackLimits::default()).unwrap_or_else(|e| panic!("{e}"));
    (tmp, dest)
}

#[test]
fn dot_dot_is_refused() {
    for name in ["../x", "a/../../x", "a/..", "./../x"] {
        let err = refused(&[file(name, b"evil")]);
        assert_eq!(
            err.to_string(),
            format!("package rejected: entry '{name}' escapes the package with '..'")
        );
    }
}

#[test]
fn absolute_paths_are_refused() {
    let target = format!("/tmp/t2-unpack-abs-{}", std::process::id());
    let err = refused(&[file(&target, b"evil")]);
    assert_eq!(why(&err), "is an absolute path");
    assert!(!Path::new(&target).exists());
}

#[test]
fn symlinks_out_are_refused() {
    let err = refused(&[link("l", EntryType::Symlink, "/etc/passwd")]);
    assert_eq!(
        err.to_string(),
        "package rejected: entry 'l' is a symlink pointing outside the package (-> /etc/passwd)"
    );
    let err = refused(&[link("a/l", EntryType::Symlink, "../../x")]);
    assert_eq!(
        why(&err),
        "is a symlink pointing outside the package (-> ../../x)"
    );
    let err = refused(&[link("l", EntryType::Symlink, "..")]);
    assert!(why(&err).contains("outside the package"));
    let err = refused(&[link("l", EntryType::Symlink, "d/../../x")]);
    assert!(why(&err).contains("after a name"), "{err}");
    let err = refused(&[link("l", EntryType::Symlink, "")]);
    assert!(why(&err).contains("empty target"));
}

#[test]
fn writing_through_a_symlink_is_refused() {
    let err = refused(&[link("l", EntryType::Symlink, "."), file("l/x", b"x")]);
    assert_eq!(why(&err), "has a parent path through the symlink 'l'");
    let err = refused(&[file("f", b"x"), file("f/x", b"x")]);
    assert!(why(&err).contains("which is a file"), "{err}");
    // A later file replaces an earlier link instead of writing through it.
    let (_tmp, dest) = unpacked(&[
        file("t", b"orig"),
        link("l", EntryType::Symlink, "t"),
        file("l", b"new"),
    ]);
    assert_eq!(std::fs::read(dest.join("t")).expect("t"), b"orig");
    assert!(std::fs::symlink_metadata(dest.join("l"))
        .expect("l")
        .is_file());
}

#[test]
fn hardlinks_out_are_refused_and_inside_are_kept() {
    let err = refused(&[link("h", EntryType::Link, "/etc/passwd")]);
    assert_eq!(
        why(&err),
        "is a hardlink pointing outside the package (-> /etc/passwd)"
    );
    let err = refused(&[link("h", EntryType::Link, "../x")]);
    assert!(why(&err).contains("hardlink pointing outside"), "{err}");
    let err = refused(&[
        link("h", EntryType::Link, "later.txt"),
        file("later.txt", b"x"),
    ]);
    assert!(
        why(&err).contains("not a file earlier in the package"),
        "{err}"
    );
    let err = refused(&[
        link("l", EntryType::Symlink, "ok.txt"),
        link("h", EntryType::Link, "l"),
    ]);
    assert!(why(&err).contains("not a file earlier"), "{err}");
    let err = refused(&[link("h", EntryType::Link, "h")]);
    assert!(why(&err).contains("not a file earlier"), "{err}");
    let (_tmp, dest) = unpacked(&[
        file("a/data.txt", b"shared"),
        link("b/h", EntryType::Link, "a/data.txt"),
    ]);
    assert_eq!(std::fs::read(dest.join("b/h")).expect("h"), b"shared");
}

#[test]
fn devices_and_fifos_are_refused() {
    assert_eq!(
        why(&refused(&[special("dev", EntryType::Char)])),
        "is a device file"
    );
    assert_eq!(
        why(&refused(&[special("disk", EntryType::Block)])),
        "is a device file"
    );
    assert_eq!(
        why(&refused(&[special("pipe", EntryType::Fifo)])),
        "is a FIFO (named pipe)"
    );
    // A sparse entry is refused (or, with no sparse map, is corrupt): never unpacked.
    let err = refused(&[special("s", EntryType::GNUSparse)]);
    assert!(
        matches!(
            err,
            PackageError::UnsafeEntry { .. } | PackageError::Corrupt { .. }
        ),
        "{err}"
    );
}

#[test]
fn hostile_extended_headers_are_refused() {
    // A PAX header naming the next entry '../evil'.
    let record = b"16 path=../evil\n";
    let err = refused(&[
        Raw {
            name: "pax",
            kind: EntryType::XHeader,
            link: None,
            data: record,
            mode: 0o644,
        },
        file("innocent", b"x"),
    ]);
    assert_eq!(why(&err), "escapes the package with '..'");
    // A GNU long name bigger than anything legitimate is not buffered.
    let huge: &'static [u8] = Box::leak(vec![b'a'; 2 << 20].into_boxed_slice());
    let err = refused(&[
        Raw {
            name: "././@LongLink",
            kind: EntryType::GNULongName,
            link: None,
            data: huge,
            mode: 0o644,
        },
        file("x", b"x"),
    ]);
    assert!(
        matches!(&err, PackageError::Corrupt { why, .. } if why.contains("over 1 MiB")),
        "{err}"
    );
}

#[test]
fn entry_count_is_limited() {
    let limits = UnpackLimits {
        max_entries: 2,
        ..UnpackLimits::default()
    };
    let err = refused_with(&[file("a", b"a"), file("b", b"b")], &limits);
    assert_eq!(
        err.to_string(),
        "package rejected: entry 'b' is entry number 3, over the limit of 2 entries"
    );
}

#[test]
fn unpacked_size_is_counted_as_written() {
    let limits = UnpackLimits {
        max_unpacked_bytes: 10,
        ..UnpackLimits::default()
    };
    let err = refused_with(&[file("big", b"0123456789")], &limits);
    assert!(
        matches!(
            err,
            PackageError::TooLarge {
                limit: 10,
                size: 12,
                ..
            }
        ),
        "{err}"
    );
    // Data on a directory entry counts too.
    let dir = Raw {
        name: "d/",
        kind: EntryType::Directory,
        link: None,
        data: b"0123456789",
        mode: 0o755,
    };
    let err = refused_with(&[dir], &limits);
    assert!(matches!(err, PackageError::TooLarge { .. }), "{err}");
}

#[test]
fn headers_that_overstate_sizes_are_corrupt() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut tar = tar_bytes(&[file("ok.txt", b"ok"), file("big", b"0123456789")]);
    // Claim 1000 bytes for 'big' and drop everything after its data.
    let header_at = 1024;
    let mut h = tar::Header::new_gnu();
    h.as_mut_bytes()
        .copy_from_slice(&tar[header_at..header_at + 512]);
    h.set_size(1000);
    h.set_cksum();
    tar[header_at..header_at + 512].copy_from_slice(h.as_bytes());
    tar.truncate(header_at + 512 + 10);
    let pkg = tmp.path().join("lying.tar.gz");
    std::fs::write(&pkg, gzip(&tar)).expect("write");
    let dest = tmp.path().join("out");
    let err = unpack_package(&pkg, &dest, None, &UnpackLimits::default()).unwrap_err();
    assert!(
        matches!(&err, PackageError::Corrupt { why, .. } if why.contains("truncated")),
        "{err}"
    );
    assert!(!dest.exists());
}

/// A real package of a directory with random (incompressible) data.
fn real_package(dir: &Path) -> (PathBuf, String) {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("data")).expect("mkdir");
    let noise: Vec<u8> = (0..100_000).map(|_| rand::random::<u8>()).collect();
    std::fs::write(src.join("data/noise.bin"), noise).expect("write");
    std::fs::write(src.join("job.yaml"), "name: x\n").expect("write");
    let source = PackageSource::detect(&src, None).expect("detect");
    let out = dir.join("real.tar.gz");
    let built = build_package(&source, "name: x\n", &[], &out, 1 << 30).expect("build");
    (out, built.sha256)
}

#[test]
fn truncated_packages_are_corrupt() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (pkg, _) = real_package(tmp.path());
    let bytes = std::fs::read(&pkg).expect("read");
    for cut in [bytes.len() / 2, bytes.len() - 4, 5] {
        let path = tmp.path().join("cut.tar.gz");
        std::fs::write(&path, &bytes[..cut]).expect("write");
        let dest = tmp.path().join("out");
        let err = unpack_package(&path, &dest, None, &UnpackLimits::default()).unwrap_err();
        assert!(
            matches!(err, PackageError::Corrupt { .. }),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().starts_with("package '"), "{err}");
        assert_eq!(err.to_string().lines().count(), 1);
        assert!(!dest.exists(), "cut at {cut}: destination left behind");
    }
    let junk = tmp.path().join("junk.tar.gz");
    std::fs::write(&junk, b"this is not a gzip file").expect("write");
    let err = unpack_package(
        &junk,
        &tmp.path().join("out"),
        None,
        &UnpackLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, PackageError::Corrupt { .. }), "{err}");
}

#[test]
fn compressed_size_and_checksum_are_checked_first() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (pkg, sha) = real_package(tmp.path());
    let dest = tmp.path().join("out");
    let small = UnpackLimits {
        max_package_bytes: 100,
        ..UnpackLimits::default()
    };
    let err = unpack_package(&pkg, &dest, Some(&sha), &small).unwrap_err();
    assert!(
        matches!(err, PackageError::TooLarge { limit: 100, .. }),
        "{err}"
    );
    assert!(!dest.exists());
    let wrong = "0".repeat(64);
    let err = unpack_package(&pkg, &dest, Some(&wrong), &UnpackLimits::default()).unwrap_err();
    match &err {
        PackageError::Mismatch {
            expected, actual, ..
        } => {
            assert_eq!(
                (expected.as_str(), actual.as_str()),
                (wrong.as_str(), sha.as_str())
            );
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains(&sha) && err.to_string().contains(&wrong),
        "{err}"
    );
    assert!(!dest.exists());
    let report = unpack_package(
        &pkg,
        &dest,
        Some(&sha.to_uppercase()),
        &UnpackLimits::default(),
    )
    .expect("unpack");
    assert_eq!((report.files, report.bytes), (2, 100_000 + 8));
    let err = unpack_package(
        &tmp.path().join("none.tar.gz"),
        &dest,
        None,
        &UnpackLimits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, PackageError::NotFound { .. }), "{err}");
}

#[test]
fn destination_must_be_new_or_empty() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (pkg, _) = real_package(tmp.path());
    let dest = tmp.path().join("busy");
    std::fs::create_dir(&dest).expect("mkdir");
    std::fs::write(dest.join("mine.txt"), "keep me").expect("write");
    let err = unpack_package(&pkg, &dest, None, &UnpackLimits::default()).unwrap_err();
    assert!(matches!(err, PackageError::Io { .. }), "{err}");
    assert_eq!(
        std::fs::read_to_string(dest.join("mine.txt")).expect("kept"),
        "keep me"
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    unpack_package(&pkg, &empty, None, &UnpackLimits::default()).expect("empty is fine");
    let nested = tmp.path().join("a/b/c");
    unpack_package(&pkg, &nested, None, &UnpackLimits::default()).expect("parents are created");
    assert!(nested.join("data/noise.bin").is_file());
}

#[test]
fn round_trip_keeps_content_modes_and_inner_links() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("job");
    let long_dir = "d".repeat(60);
    let long_file = format!("{long_dir}/{}", "f".repeat(80));
    std::fs::create_dir_all(src.join("bin")).expect("mkdir");
    std::fs::create_dir_all(src.join("lib/sub")).expect("mkdir");
    std::fs::create_dir_all(src.join(&long_dir)).expect("mkdir");
    std::fs::write(src.join("job.yaml"), "old").expect("write");
    std::fs::write(src.join("bin/run.sh"), "#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(
        src.join("bin/run.sh"),
        std::fs::Permissions::from_mode(0o700),
    )
    .expect("chmod");
    std::fs::write(src.join("lib/sub/data.txt"), "data").expect("write");
    std::fs::write(src.join(&long_file), "long").expect("write");
    symlink("../bin/run.sh", src.join("lib/run")).expect("symlink");
    symlink(&long_file, src.join("long-link")).expect("symlink");
    let source = PackageSource::detect(&src, None).expect("detect");
    let pkg = tmp.path().join("job.tar.gz");
    let built = build_package(&source, "name: rt\n", &[], &pkg, 1 << 30).expect("build");
    let dest = tmp.path().join("out");
    let report =
        unpack_package(&pkg, &dest, Some(&built.sha256), &UnpackLimits::default()).expect("unpack");
    assert_eq!(report.files, 4);
    assert_eq!(
        std::fs::read_to_string(dest.join("job.yaml")).expect("yaml"),
        "name: rt\n"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("lib/sub/data.txt")).expect("data"),
        "data"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join(&long_file)).expect("long"),
        "long"
    );
    let mode = |p: &str| {
        std::fs::metadata(dest.join(p))
            .expect("meta")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("bin/run.sh"), 0o755);
    assert_eq!(mode("lib/sub/data.txt"), 0o644);
    assert_eq!(mode("lib/sub"), 0o755);
    assert_eq!(
        std::fs::read_link(dest.join("lib/run")).expect("link"),
        Path::new("../bin/run.sh")
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("lib/run")).expect("via link"),
        "#!/bin/sh\necho hi\n"
    );
    assert_eq!(
        std::fs::read_link(dest.join("long-link")).expect("link"),
        Path::new(&long_file)
    );
    let out = std::process::Command::new(dest.join("bin/run.sh"))
        .output()
        .expect("runs");
    assert_eq!(out.stdout, b"hi\n");
}

#[test]
fn archives_made_by_other_tools_unpack() {
    // `tar czf x.tgz .` style: a './' root entry and './'-prefixed names.
    let dir = Raw {
        name: "./",
        kind: EntryType::Directory,
        link: None,
        data: b"",
        mode: 0o755,
    };
    let sub = Raw {
        name: "./sub/",
        kind: EntryType::Directory,
        link: None,
        data: b"",
        mode: 0o700,
    };
    let exe = Raw {
        name: "./sub/run",
        kind: EntryType::Regular,
        link: None,
        data: b"#!/bin/sh\n",
        mode: 0o4775,
    };
    let global = Raw {
        name: "pax_global_header",
        kind: EntryType::XGlobalHeader,
        link: None,
        data: b"22 comment=git 1234\n",
        mode: 0o644,
    };
    let (_tmp, dest) = unpacked(&[global, dir, sub, exe]);
    let mode = |p: &str| {
        std::fs::metadata(dest.join(p))
            .expect("meta")
            .permissions()
            .mode()
            & 0o7777
    };
    assert_eq!(mode("sub"), 0o755);
    assert_eq!(mode("sub/run"), 0o755, "set-id bits are dropped");
    assert!(!dest.join("pax_global_header").exists());
}
