//! Unit tests of package-source detection and generated job specs.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A gzip'd tar holding `entries` (name, data).
pub(crate) fn tarball(path: &Path, entries: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).expect("create");
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).expect("append");
    }
    b.into_inner().expect("tar").finish().expect("gzip");
}

#[test]
fn missing_paths_are_not_found() {
    let err = PackageSource::detect(Path::new("/nonexistent/t2/job"), None).unwrap_err();
    assert!(matches!(err, PackageError::NotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "package path '/nonexistent/t2/job' does not exist"
    );
}

#[test]
fn kinds_are_detected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path();
    let kind = |p: &Path, class: Option<&str>| PackageSource::detect(p, class).map(|s| s.kind);
    assert_eq!(kind(d, None).expect("dir"), SourceKind::Directory);
    for name in ["a.tar.gz", "b.tgz", "C.TGZ"] {
        tarball(&d.join(name), &[]);
        assert_eq!(
            kind(&d.join(name), None).expect("tarball"),
            SourceKind::Tarball,
            "{name}"
        );
    }
    write(&d.join("app.jar"), "PK", 0o644);
    assert_eq!(
        kind(&d.join("app.jar"), None).expect("jar"),
        SourceKind::Jar { class: None }
    );
    assert_eq!(
        kind(&d.join("app.jar"), Some("org.example.Main")).expect("jar"),
        SourceKind::Jar {
            class: Some("org.example.Main".into())
        }
    );
    write(&d.join("run.sh"), "#!/bin/sh\n", 0o755);
    assert_eq!(
        kind(&d.join("run.sh"), None).expect("exe"),
        SourceKind::Executable
    );
    write(&d.join("notes.txt"), "hi", 0o644);
    let err = kind(&d.join("notes.txt"), None).unwrap_err();
    assert!(matches!(err, PackageError::Unsupported { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("a directory with job.yaml, a .tar.gz, a .jar or an executable"),
        "{err}"
    );
    let err = kind(&d.join("run.sh"), Some("Main")).unwrap_err();
    assert!(
        err.to_string().contains("--class applies only to a .jar"),
        "{err}"
    );
    let err = kind(&d.join("app.jar"), Some("not a class")).unwrap_err();
    assert!(err.to_string().contains("not a Java class name"), "{err}");
    let err = kind(Path::new("/dev/null"), None).unwrap_err();
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn paths_are_made_absolute() {
    let s = PackageSource::detect(Path::new("."), None).expect("cwd");
    assert!(s.path.is_absolute());
    assert!(!s.default_name().is_empty());
    assert_ne!(s.default_name(), ".");
}

#[test]
fn default_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("Word_Count");
    std::fs::create_dir(&d).expect("mkdir");
    assert_eq!(
        PackageSource::detect(&d, None).expect("dir").default_name(),
        "Word_Count"
    );
    let up = d.join("..").join("Word_Count").join("..");
    let parent = tmp
        .path()
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert_eq!(
        PackageSource::detect(&up, None)
            .expect("dir")
            .default_name(),
        parent
    );
    for (file, want) in [
        ("pi.tar.gz", "pi"),
        ("pi.tgz", "pi"),
        ("pi.v2.TAR.GZ", "pi.v2"),
    ] {
        tarball(&d.join(file), &[]);
        assert_eq!(
            PackageSource::detect(&d.join(file), None)
                .expect("tgz")
                .default_name(),
            want
        );
    }
    write(&d.join("app.jar"), "PK", 0o644);
    assert_eq!(
        PackageSource::detect(&d.join("app.jar"), None)
            .expect("jar")
            .default_name(),
        "app"
    );
    write(&d.join("pi.sh"), "#!/bin/sh\n", 0o755);
    assert_eq!(
        PackageSource::detect(&d.join("pi.sh"), None)
            .expect("exe")
            .default_name(),
        "pi.sh"
    );
    // A file called just ".jar" keeps its name.
    write(&d.join(".jar"), "PK", 0o644);
    assert_eq!(
        PackageSource::detect(&d.join(".jar"), None)
            .expect("jar")
            .default_name(),
        ".jar"
    );
}

#[test]
fn job_yaml_of_a_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = PackageSource::detect(tmp.path(), None).expect("dir");
    assert_eq!(s.job_yaml().expect("read"), None);
    write(&tmp.path().join("job.yaml"), "name: x\n", 0o644);
    assert_eq!(s.job_yaml().expect("read").as_deref(), Some("name: x\n"));
    write(&tmp.path().join("job.yaml"), &"#".repeat(2 << 20), 0o644);
    assert!(s.job_yaml().unwrap_err().to_string().contains("over 1 MiB"));
    std::fs::write(tmp.path().join("job.yaml"), [0xff, 0xfe]).expect("write");
    assert!(s.job_yaml().unwrap_err().to_string().contains("not UTF-8"));
}

#[test]
fn job_yaml_of_a_tarball() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let with = tmp.path().join("with.tar.gz");
    tarball(
        &with,
        &[("bin/run.sh", b"#!/bin/sh\n"), ("./job.yaml", b"name: t\n")],
    );
    let s = PackageSource::detect(&with, None).expect("tgz");
    assert_eq!(s.job_yaml().expect("read").as_deref(), Some("name: t\n"));
    let without = tmp.path().join("without.tgz");
    tarball(&without, &[("sub/job.yaml", b"name: t\n")]);
    let s = PackageSource::detect(&without, None).expect("tgz");
    assert_eq!(s.job_yaml().expect("read"), None);
    let big = vec![b'#'; (1 << 20) + 1];
    let huge = tmp.path().join("huge.tgz");
    tarball(&huge, &[("job.yaml", &big)]);
    let s = PackageSource::detect(&huge, None).expect("tgz");
    assert!(s.job_yaml().unwrap_err().to_string().contains("over 1 MiB"));
    let junk = tmp.path().join("junk.tgz");
    write(&junk, "not gzip at all", 0o644);
    let s = PackageSource::detect(&junk, None).expect("tgz");
    assert!(matches!(
        s.job_yaml().unwrap_err(),
        PackageError::Corrupt { .. }
    ));
}

#[test]
fn generated_job_yaml_for_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = tmp.path().join("pi.sh");
    write(&exe, "#!/bin/sh\n", 0o755);
    let s = PackageSource::detect(&exe, None).expect("exe");
    assert_eq!(
        s.job_yaml().expect("gen").as_deref(),
        Some("name: \"pi.sh\"\ncommand: [\"./pi.sh\"]\n")
    );
    let jar = tmp.path().join("app.jar");
    write(&jar, "PK", 0o644);
    let s = PackageSource::detect(&jar, None).expect("jar");
    assert_eq!(
        s.job_yaml().expect("gen").as_deref(),
        Some("name: \"app\"\ncommand: [\"java\", \"-jar\", \"app.jar\"]\n")
    );
    let s = PackageSource::detect(&jar, Some("a.Main")).expect("jar");
    assert_eq!(
        s.job_yaml().expect("gen").as_deref(),
        Some("name: \"app\"\ncommand: [\"java\", \"-cp\", \"app.jar\", \"a.Main\"]\n")
    );
    // Odd file names stay one YAML string.
    let odd = tmp.path().join("we\"ird: #1 [x]");
    write(&odd, "#!/bin/sh\n", 0o755);
    let text = PackageSource::detect(&odd, None)
        .expect("exe")
        .job_yaml()
        .expect("gen")
        .expect("text");
    let v: serde_yaml::Value = serde_yaml::from_str(&text).expect("valid yaml");
    assert_eq!(v["command"][0].as_str(), Some("./we\"ird: #1 [x]"));
    assert_eq!(v["name"].as_str(), Some("we\"ird: #1 [x]"));
}
