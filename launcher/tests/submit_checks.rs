//! What `t2 submit` must say at once, before anything exists, and what it must accept: flags
//! of another cluster, an unreachable or refusing uploader, a command file without the exec
//! bit, a jar without Main-Class, quoted string commands, the Twister2 name key in job.yaml,
//! a tarball with one top-level folder, and a Kubernetes dry run that runs no build step.

mod common;
#[path = "uploader_support/mod.rs"]
mod uploader_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(120);

/// [`assert_submit_rejected`] within this file's deadline.
fn rejects(pkg: &Path, extra: &[&str], want: &str) {
    assert_submit_rejected(pkg, extra, want, T);
}

fn hello(dir: &Path) -> PathBuf {
    shell_job(
        dir,
        "name: hello\ncommand: [./run.sh]\n",
        "#!/bin/sh\necho hi\n",
    )
}

#[test]
fn kubernetes_flags_are_refused_for_local_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = hello(&tmp.path().join("hello"));
    for (flags, want) in [
        (&["--dry-run"][..], "--dry-run is for kubernetes jobs"),
        (&["-n", "t2"][..], "-n/--namespace is for kubernetes jobs"),
        (&["--context", "c"][..], "--context is for kubernetes jobs"),
        (&["-o", "json"][..], "-o is for kubernetes jobs"),
        (
            &["--kubeconfig", "/dev/null"][..],
            "--kubeconfig is for kubernetes jobs",
        ),
    ] {
        rejects(&pkg, flags, want);
    }
}

#[test]
fn errors_name_the_flags_the_user_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = hello(&tmp.path().join("hello"));
    rejects(
        &pkg,
        &["-w", "0"],
        "--workers 0: 'workers' must be at least 1",
    );
    rejects(
        &pkg,
        &["-w", "-2"],
        "--workers -2: 'workers' must be a positive whole number",
    );
    let empty = tmp.path().join("empty-conf");
    std::fs::create_dir_all(&empty).unwrap();
    rejects(
        &pkg,
        &["--conf-dir", empty.to_str().unwrap()],
        "holds no local/*.yaml",
    );
}

#[test]
fn a_kubernetes_dry_run_does_not_run_the_build_step() {
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("built");
    let marker = src.join("build-ran");
    shell_job(
        &src,
        "name: built\ncommand: [./run.sh]\nbuild: touch build-ran\n",
        "#!/bin/sh\necho hi\n",
    );
    let mut c = t2(home.path());
    c.args(["submit", "kubernetes"])
        .arg(&src)
        .args(["--dry-run", "-n", "demo"]);
    let out = run(c, T);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!marker.exists(), "the dry run ran the build step");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("build step 'touch build-ran' skipped"),
        "{err}"
    );
}

#[test]
fn an_uploader_that_cannot_be_used_is_refused_before_the_job_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = hello(&tmp.path().join("hello"));
    // Nothing listens on port 1.
    rejects(
        &pkg,
        &["--uploader", "http://127.0.0.1:1", "--uploader-token", "x"],
        "http://127.0.0.1:1",
    );
    let up = uploader_support::Uploader::start(&tmp.path().join("store"), &[]);
    rejects(
        &pkg,
        &["--uploader", &up.url, "--uploader-token", "wrong-token"],
        "token",
    );
}

#[test]
fn a_command_file_without_the_exec_bit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = hello(&tmp.path().join("noexec"));
    std::fs::set_permissions(pkg.join("run.sh"), std::fs::Permissions::from_mode(0o644)).unwrap();
    rejects(&pkg, &[], "'./run.sh' is not executable (chmod +x run.sh)");
}

#[test]
fn a_jar_without_main_class_needs_class() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("data.txt"), "no classes here\n").unwrap();
    let jar = tmp.path().join("lib.jar");
    // `jar cf` writes a META-INF/MANIFEST.MF without Main-Class (the JDK comes with scripts/test).
    let made = Command::new("jar")
        .arg("cf")
        .arg(&jar)
        .arg("data.txt")
        .current_dir(&src)
        .status()
        .expect("jar (scripts/test installs default-jdk-headless)");
    assert!(made.success());
    rejects(
        &jar,
        &[],
        "has no Main-Class in its META-INF/MANIFEST.MF; pass --class",
    );
}

#[test]
fn a_string_command_is_split_by_shell_rules() {
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("quoted");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("job.yaml"),
        "name: quoted\ncommand: sh -c \"echo 'a  b'\"\nmax_restarts: 0\n",
    )
    .unwrap();
    let out = run(submit(home.path(), &src, NO_ARGS), T);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("[worker-0] a  b"), "{all}");
}

#[test]
fn the_twister2_name_key_in_job_yaml_names_the_job() {
    let home = tempfile::tempdir().unwrap();
    let pkg = shell_job(
        &home.path().join("src"),
        "twister2.resource.job.name: Foo_Bar\ncommand: [./run.sh]\n",
        "#!/bin/sh\necho hi\n",
    );
    let out = run(submit(home.path(), &pkg, NO_ARGS), T);
    assert!(out.status.success(), "{}", text(&out));
    let id = only_job(home.path())["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("foo-bar-"), "{id}");
}

#[test]
fn a_tarball_with_one_top_level_folder_is_accepted() {
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("src");
    shell_job(
        &src.join("shell"),
        "name: wrapped\ncommand: [./run.sh]\n",
        "#!/bin/sh\necho wrapped hello\n",
    );
    let tarball = home.path().join("x.tar.gz");
    let made = Command::new("tar")
        .arg("czf")
        .arg(&tarball)
        .arg("shell/")
        .current_dir(&src)
        .status()
        .unwrap();
    assert!(made.success());
    let out = run(submit(home.path(), &tarball, NO_ARGS), T);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("wrapped hello"), "{all}");
}

#[test]
fn arguments_after_a_double_dash_reach_the_program() {
    let home = tempfile::tempdir().unwrap();
    let pkg = shell_job(
        &home.path().join("src"),
        "name: echo\ncommand: [./run.sh]\nargs: [first]\n",
        "#!/bin/sh\necho \"$# [$1] [$2] [$3]\"\n",
    );
    let out = run(submit(home.path(), &pkg, &["--", "a b", "c"]), T);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("[worker-0] 3 [first] [a b] [c]"), "{all}");
}
