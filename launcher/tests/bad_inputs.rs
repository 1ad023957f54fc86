//! Bad input: each gets one readable error line, a non-zero exit, and leaves nothing behind —
//! no job folder, no process, no file outside the job folder.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(60);

/// [`assert_submit_rejected`] within this file's deadline.
fn rejects(pkg: &Path, extra: &[&str], want: &str) {
    assert_submit_rejected(pkg, extra, want, T);
}

fn job(dir: &Path, yaml: &str) -> PathBuf {
    shell_job(dir, yaml, "#!/bin/sh\necho hi\n")
}

#[test]
fn missing_package_path() {
    rejects(
        Path::new("/nonexistent/job"),
        &[],
        "package path '/nonexistent/job' does not exist",
    );
}

#[test]
fn bad_job_yaml_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "name: x\ncommand: [./run.sh]\nwrokers: 2\n",
            "unknown key 'wrokers'; did you mean 'workers'?",
        ),
        (
            "name: x\ncommand: [./run.sh]\nworkers: 0\n",
            "'workers' must be at least 1, got 0",
        ),
        (
            "name: x\ncommand: [./run.sh]\nworkers: -3\n",
            "'workers' must be a positive whole number, got -3",
        ),
        (
            "name: x\ncommand: [./run.sh]\nworkers: lots\n",
            "'workers' must be a positive whole number, got 'lots'",
        ),
        (
            "name: x\ncommand: [./missing.sh]\n",
            "command './missing.sh' is not in the package",
        ),
        (
            "name: x\ncommand: [no-such-program-t2]\n",
            "is neither in the package",
        ),
        ("name: x\n", "'command' is required"),
    ];
    for (i, (yaml, want)) in cases.iter().enumerate() {
        rejects(&job(&tmp.path().join(i.to_string()), yaml), &[], want);
    }
    let ok = job(&tmp.path().join("ok"), "name: x\ncommand: [./run.sh]\n");
    rejects(
        &ok,
        &["--workers=-3"],
        "must be a positive whole number, got -3",
    );
    rejects(&ok, &["--workers", "many"], "got 'many'");
    rejects(&ok, &["-D", "colour=blue"], "unknown key 'colour'");
    rejects(&ok, &["-D", "max_package_bytes=100"], "package too large");
}

#[test]
fn bad_topology_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let head = "name: x\ncommand: [./run.sh]\n";
    let cases = [
        (
            "topology:\n  datacenters: {dc1: [a], dc2: [a]}\n  racks: {a: [127.0.0.2]}\n",
            "'topology.datacenters' lists rack 'a' in datacenter 'dc1' and in datacenter 'dc2'; a rack is in one datacenter",
        ),
        (
            "kubernetes.racks.list:\n- a: ['127.0.0.2']\n- b: ['127.0.0.2']\n",
            "'kubernetes.racks.list' lists node 127.0.0.2 in rack 'a' and in rack 'b'; a node is in one rack",
        ),
        (
            "topology:\n  datacenters: {dc1: [a, b]}\n  racks: {a: [127.0.0.2]}\n",
            "'topology.datacenters' names rack 'b' in datacenter 'dc1', but topology.racks has no node list for it",
        ),
        (
            "topology:\n  racks: 127.0.0.2\n",
            "'topology.racks' must be a map such as {blue-rack: [10.0.0.11, 10.0.0.12]}",
        ),
        (
            "kubernetes.racks.list:\n- blue-rack: ['node01.ip', 'node02.ip']\n",
            "'kubernetes.racks.list' lists 'node01.ip' in rack 'blue-rack', which is not an IP address",
        ),
        (
            "topology:\n  strict: true\n  racks: {a: [10.0.0.1]}\n",
            "topology.racks lists no loopback address (127.0.0.0/8), so local workers would run on 127.0.0.1, which no rack lists, and topology.strict is true",
        ),
    ];
    for (i, (yaml, want)) in cases.iter().enumerate() {
        let text = format!("{head}{yaml}");
        rejects(&job(&tmp.path().join(i.to_string()), &text), &[], want);
    }
    let ok = job(&tmp.path().join("ok"), head);
    rejects(
        &ok,
        &["-D", "topology.racks={a: [127.0.0.2, node-7]}"],
        "'topology.racks' lists 'node-7' in rack 'a', which is not an IP address",
    );
    rejects(
        &ok,
        &["-D", "kubernetes.racks.list=[[127.0.0.2]]"],
        "'kubernetes.racks.list' must be a map",
    );
}

/// A tar.gz with job.yaml, run.sh, and one hostile entry written with raw header bytes.
fn hostile_tarball(dir: &Path, name: &str, kind: tar::EntryType, link: Option<&str>) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("job.tar.gz");
    let f = std::fs::File::create(&path).unwrap();
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        f,
        flate2::Compression::fast(),
    ));
    for (n, data, mode) in [
        ("job.yaml", &b"name: evil\ncommand: [./run.sh]\n"[..], 0o644),
        ("run.sh", &b"#!/bin/sh\necho hi\n"[..], 0o755),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_path(n).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
    }
    h.set_entry_type(kind);
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    b.into_inner().unwrap().finish().unwrap();
    path
}

#[test]
fn hostile_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("x");
    let cases = [
        (
            "../x",
            tar::EntryType::Regular,
            None,
            "escapes the package with '..'",
        ),
        (
            "/tmp/t2-bad-input-abs",
            tar::EntryType::Regular,
            None,
            "is an absolute path",
        ),
        (
            "l",
            tar::EntryType::Symlink,
            Some("/etc/passwd"),
            "symlink pointing outside the package",
        ),
        ("h", tar::EntryType::Link, Some("/etc/passwd"), "hardlink"),
        ("dev", tar::EntryType::Char, None, "is a device file"),
    ];
    for (i, (name, kind, link, want)) in cases.into_iter().enumerate() {
        let pkg = hostile_tarball(&tmp.path().join(format!("case{i}")), name, kind, link);
        rejects(&pkg, &[], want);
    }
    assert!(!outside.exists() && !Path::new("/tmp/t2-bad-input-abs").exists());
}

#[test]
fn truncated_and_oversized_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let good = hostile_tarball(
        &tmp.path().join("g"),
        "data.txt",
        tar::EntryType::Regular,
        None,
    );
    let bytes = std::fs::read(&good).unwrap();
    let cut = tmp.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    rejects(&cut, &[], "is corrupt");
    rejects(&good, &["-D", "max_package_bytes=50"], "package too large");
}

#[test]
fn bad_names_are_fixed_and_said() {
    let home = tempfile::tempdir().unwrap();
    let pkg = job(
        &home.path().join("src"),
        "name: My_Job.Name!!\ncommand: [./run.sh]\n",
    );
    let out = run(submit(home.path(), &pkg, NO_ARGS), T);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("job name 'My_Job.Name!!' is not a valid name; using 'my-job-name'"),
        "{all}"
    );
    assert!(only_job(home.path())["id"]
        .as_str()
        .unwrap()
        .starts_with("my-job-name-"));
}

#[test]
fn unknown_job_ids_are_refused() {
    let home = tempfile::tempdir().unwrap();
    for args in [
        vec!["status", "nope-12345678"],
        vec!["kill", "nope-12345678"],
        vec!["logs", "../../etc"],
    ] {
        let out = run_t2(home.path(), &args, T);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("no job 'nope-12345678'") || err.contains("invalid job ID"),
            "{err}"
        );
    }
}
