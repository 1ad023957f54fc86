//! Every kind of package runs: a single executable, a tarball, and a jar (`java -jar`, and
//! `java -cp JAR CLASS` with `--class`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(120);

fn submit_ok(home: &std::path::Path, pkg: &std::path::Path, extra: &[&str]) -> String {
    let out = run(submit(home, pkg, extra), T);
    let all = text(&out);
    assert!(out.status.success(), "{pkg:?}:\n{all}");
    assert!(all.contains("COMPLETED"), "{all}");
    all
}

#[test]
fn a_single_executable_runs_on_every_worker() {
    let home = tempfile::tempdir().unwrap();
    let exe = home.path().join("hello-job.sh");
    std::fs::write(
        &exe,
        "#!/bin/sh\necho \"hello from $T2_WORKER_ID of $T2_NUM_WORKERS\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let all = submit_ok(home.path(), &exe, &["--workers", "3"]);
    for i in 0..3 {
        assert!(
            all.contains(&format!("[worker-{i}] hello from {i} of 3")),
            "{all}"
        );
    }
    assert!(only_job(home.path())["id"]
        .as_str()
        .unwrap()
        .starts_with("hello-job-sh-"));
}

#[test]
fn a_tarball_made_elsewhere_runs() {
    let home = tempfile::tempdir().unwrap();
    let src = shell_job(
        &home.path().join("src"),
        "name: tarred\nworkers: 2\ncommand: [./run.sh]\n",
        "#!/bin/sh\necho \"tar worker $T2_WORKER_ID\"\n",
    );
    let tgz = home.path().join("tarred.tar.gz");
    let status = Command::new("tar")
        .arg("czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&src)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let all = submit_ok(home.path(), &tgz, NO_ARGS);
    assert!(all.contains("[worker-1] tar worker 1"), "{all}");
}

#[test]
fn jars_run_with_java() {
    if Command::new("javac").arg("-version").output().is_err() {
        panic!("javac is missing: scripts/test installs default-jdk-headless");
    }
    let home = tempfile::tempdir().unwrap();
    let src = home.path().join("java");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("Hello.java"),
        "public class Hello { public static void main(String[] a) { System.out.println(\"jar worker \" + System.getenv(\"T2_WORKER_ID\") + \" of \" + System.getenv(\"T2_NUM_WORKERS\")); } }\n",
    )
    .unwrap();
    assert!(Command::new("javac")
        .arg("Hello.java")
        .current_dir(&src)
        .status()
        .unwrap()
        .success());
    // With a Main-Class manifest: java -jar.
    assert!(Command::new("jar")
        .args(["cfe", "hello.jar", "Hello", "Hello.class"])
        .current_dir(&src)
        .status()
        .unwrap()
        .success());
    let all = submit_ok(home.path(), &src.join("hello.jar"), &["--workers", "2"]);
    assert!(
        all.contains("[worker-0] jar worker 0 of 2")
            && all.contains("[worker-1] jar worker 1 of 2"),
        "{all}"
    );
    // Without one: java -cp JAR CLASS.
    assert!(Command::new("jar")
        .args(["cf", "plain.jar", "Hello.class"])
        .current_dir(&src)
        .status()
        .unwrap()
        .success());
    let home2 = tempfile::tempdir().unwrap();
    let all = submit_ok(home2.path(), &src.join("plain.jar"), &["--class", "Hello"]);
    assert!(all.contains("[worker-0] jar worker 0 of 1"), "{all}");
}
