//! Unit tests of package building: content, determinism, limits and refusals.

use std::io::Read;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::package::PackageSource;

/// An entry as listed from an archive.
#[derive(Debug, PartialEq)]
struct Listed {
    path: String,
    kind: char,
    mode: u32,
    link: Option<String>,
    data: Vec<u8>,
}

fn list(pkg: &Path) -> Vec<Listed> {
    let f = File::open(pkg).expect("open");
    let mut a = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut out = Vec::new();
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        let h = e.header();
        assert_eq!(h.mtime().expect("mtime"), 0);
        assert_eq!((h.uid().expect("uid"), h.gid().expect("gid")), (0, 0));
        assert_eq!(h.username_bytes().unwrap_or_default(), b"");
        assert_eq!(h.groupname_bytes().unwrap_or_default(), b"");
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Regular => 'f',
            other => panic!("unexpected {other:?}"),
        };
        let mode = h.mode().expect("mode");
        let link = e
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).to_string());
        let path = String::from_utf8_lossy(&e.path_bytes()).to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("data");
        out.push(Listed {
            path,
            kind,
            mode,
            link,
            data,
        });
    }
    out
}

fn names(pkg: &Path) -> Vec<String> {
    list(pkg).into_iter().map(|l| l.path).collect()
}

fn write(path: &Path, text: &str, mode: u32) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A job directory: job.yaml, bin/run.sh (executable), data/in.txt, a link to bin/run.sh.
fn job_dir(root: &Path) -> PathBuf {
    let d = root.join("job");
    write(
        &d.join("job.yaml"),
        "name: on-disk\ncommand: [./bin/run.sh]\n",
        0o644,
    );
    write(&d.join("bin/run.sh"), "#!/bin/sh\necho hi\n", 0o700);
    write(&d.join("data/in.txt"), "1 2 3\n", 0o600);
    symlink("bin/run.sh", d.join("start")).expect("symlink");
    d
}

fn build(src: &Path, include: &[&str], out: &Path, max: u64) -> Result<BuiltPackage, PackageError> {
    let source = PackageSource::detect(src, None).expect("detect");
    let include: Vec<String> = include.iter().map(|s| s.to_string()).collect();
    build_package(&source, "name: given\n", &include, out, max)
}

const MAX: u64 = 1 << 30;

#[test]
fn directories_are_archived_sorted_with_normalised_metadata() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = job_dir(tmp.path());
    let out = tmp.path().join("pkg.tar.gz");
    let built = build(&src, &[], &out, MAX).expect("build");
    assert_eq!(built.path, out);
    assert_eq!(built.size, std::fs::metadata(&out).expect("meta").len());
    assert_eq!(built.sha256, sha256_file(&out).expect("sha"));
    let listed = list(&out);
    let summary: Vec<(&str, char, u32)> = listed
        .iter()
        .map(|l| (l.path.as_str(), l.kind, l.mode))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("bin/", 'd', 0o755),
            ("bin/run.sh", 'f', 0o755),
            ("data/", 'd', 0o755),
            ("data/in.txt", 'f', 0o644),
            ("job.yaml", 'f', 0o644),
            ("start", 'l', 0o777),
        ]
    );
    let yaml = listed
        .iter()
        .find(|l| l.path == "job.yaml")
        .expect("job.yaml");
    assert_eq!(yaml.data, b"name: given\n");
    let link = listed.iter().find(|l| l.path == "start").expect("link");
    assert_eq!(link.link.as_deref(), Some("bin/run.sh"));
    // Nothing but the package is left beside it.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("ls")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn builds_are_deterministic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = job_dir(tmp.path());
    let a = build(&src, &[], &tmp.path().join("a.tar.gz"), MAX).expect("build");
    let later = SystemTime::now() + Duration::from_secs(3600);
    for f in ["bin/run.sh", "data/in.txt", "job.yaml"] {
        let file = File::options().write(true).open(src.join(f)).expect("open");
        file.set_modified(later).expect("touch");
    }
    std::fs::set_permissions(
        src.join("bin/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let b = build(&src, &[], &tmp.path().join("b.tar.gz"), MAX).expect("build");
    assert_eq!(a.sha256, b.sha256);
    // Writing the package inside the job directory does not change it either.
    let c = build(&src, &[], &src.join("pkg.tar.gz"), MAX).expect("build");
    let d = build(&src, &[], &src.join("pkg.tar.gz"), MAX).expect("build");
    assert_eq!(
        (c.sha256.as_str(), d.sha256.as_str()),
        (a.sha256.as_str(), a.sha256.as_str())
    );
}

#[test]
fn include_limits_the_content() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = job_dir(tmp.path());
    write(&src.join("data/deep/x.bin"), "x", 0o644);
    let out = tmp.path().join("pkg.tar.gz");
    build(&src, &["bin", "data/deep/x.bin", "./job.yaml"], &out, MAX).expect("build");
    assert_eq!(
        names(&out),
        vec![
            "bin/",
            "bin/run.sh",
            "data/",
            "data/deep/",
            "data/deep/x.bin",
            "job.yaml"
        ]
    );
    let err = build(&src, &["nope"], &out, MAX).unwrap_err();
    assert!(
        err.to_string()
            .contains("include lists 'nope', which does not exist"),
        "{err}"
    );
    let err = build(&src, &["../job"], &out, MAX).unwrap_err();
    assert!(
        err.to_string()
            .contains("not a path inside the job directory"),
        "{err}"
    );
    symlink("data", src.join("linked")).expect("symlink");
    let err = build(&src, &["linked/in.txt"], &out, MAX).unwrap_err();
    assert!(
        err.to_string()
            .contains("goes through the symlink 'linked'"),
        "{err}"
    );
    // Including the link itself stores the link.
    build(&src, &["linked"], &out, MAX).expect("build");
    assert_eq!(names(&out), vec!["job.yaml", "linked"]);
}

#[test]
fn escaping_symlinks_are_refused_and_odd_files_skipped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = job_dir(tmp.path());
    let _socket = std::os::unix::net::UnixListener::bind(src.join("agent.sock")).expect("socket");
    let out = tmp.path().join("pkg.tar.gz");
    build(&src, &[], &out, MAX).expect("build");
    assert!(!names(&out).contains(&"agent.sock".to_string()));
    symlink("/etc/passwd", src.join("data/pw")).expect("symlink");
    let err = build(&src, &[], &out, MAX).unwrap_err();
    assert!(
        err.to_string()
            .contains("'data/pw' is a symlink pointing outside the package (-> /etc/passwd)"),
        "{err}"
    );
    std::fs::remove_file(src.join("data/pw")).expect("rm");
    symlink("../../x", src.join("data/up")).expect("symlink");
    assert!(build(&src, &[], &out, MAX).is_err());
}

#[test]
fn single_files_get_a_generated_spec() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = tmp.path().join("pi.sh");
    write(&exe, "#!/bin/sh\necho pi\n", 0o755);
    let out = tmp.path().join("pkg.tar.gz");
    build(&exe, &[], &out, MAX).expect("build");
    let listed = list(&out);
    let summary: Vec<(&str, u32)> = listed.iter().map(|l| (l.path.as_str(), l.mode)).collect();
    assert_eq!(summary, vec![("job.yaml", 0o644), ("pi.sh", 0o755)]);
    assert_eq!(listed[1].data, b"#!/bin/sh\necho pi\n");
    let jar = tmp.path().join("app.jar");
    write(&jar, "PK", 0o644);
    build(&jar, &[], &out, MAX).expect("build");
    assert_eq!(names(&out), vec!["app.jar", "job.yaml"]);
}

#[test]
fn tarballs_are_copied_as_they_are() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = job_dir(tmp.path());
    let first = tmp.path().join("first.tar.gz");
    let built = build(&src, &[], &first, MAX).expect("build");
    let copy = tmp.path().join("copy.tar.gz");
    let again = build(&first, &[], &copy, MAX).expect("copy");
    assert_eq!(again.sha256, built.sha256);
    assert_eq!(
        std::fs::read(&copy).expect("read"),
        std::fs::read(&first).expect("read")
    );
    let err = build(&first, &[], &tmp.path().join("small.tar.gz"), 10).unwrap_err();
    assert!(
        matches!(err, PackageError::TooLarge { limit: 10, .. }),
        "{err}"
    );
    assert!(!tmp.path().join("small.tar.gz").exists());
}

#[test]
fn size_limit_removes_partial_output() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = job_dir(tmp.path());
    let noise: Vec<u8> = (0..200_000).map(|_| rand::random::<u8>()).collect();
    std::fs::write(src.join("data/noise.bin"), noise).expect("write");
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let out = out_dir.join("pkg.tar.gz");
    let err = build(&src, &[], &out, 4096).unwrap_err();
    match err {
        PackageError::TooLarge { size, limit, .. } => assert!(size > limit && limit == 4096),
        other => panic!("{other}"),
    }
    assert_eq!(
        std::fs::read_dir(&out_dir).expect("ls").count(),
        0,
        "partial output left"
    );
    assert_eq!(err_line(&build(&src, &[], &out, 4096).unwrap_err()), 1);
}

fn err_line(e: &PackageError) -> usize {
    e.to_string().lines().count()
}

#[test]
fn sha256_of_a_missing_file_is_an_io_error() {
    let err = sha256_file(Path::new("/nonexistent/t2.tar.gz")).unwrap_err();
    assert!(matches!(err, PackageError::Io { .. }), "{err}");
}
