//! The conventions of the tools t2's users know (issue 12, points 11, 12, 15, 17), through the
//! real binary: per-cluster submit help and examples everywhere, `t2 version`, completions;
//! `-o wide|json|yaml` on list and status, `t2 list --watch`, AGE, `t2 logs --tail/--since/
//! --timestamps/--jobmaster` with lines merged by time, `t2 describe`; configuration
//! discovery and `t2 config view`; kubectl's key order in dry-run output and the namespace
//! rule.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(180);

/// `t2 ARGS…` with no configuration folder from the environment.
fn t2_plain(home: &Path) -> Command {
    let mut c = t2(home);
    c.env_remove("T2_CONF_DIR");
    c
}

/// Runs `cmd` to the end with its output in files (a pipe would fill up with a long
/// completion script while the deadline loop waits); returns (success, stdout).
fn run_long_output(mut cmd: Command, dir: &Path) -> (bool, String) {
    let (o, e) = (dir.join("out.txt"), dir.join("err.txt"));
    cmd.stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap());
    let out = wait(cmd.spawn().unwrap(), T);
    let text = std::fs::read_to_string(&o).unwrap_or_default();
    let err = std::fs::read_to_string(&e).unwrap_or_default();
    assert!(out.status.success(), "{text}{err}");
    (out.status.success(), text)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A two-worker job whose workers write `step-0` … `step-3` in turn (worker s mod 2 writes
/// step s), a barrier between steps, so the order across workers is known; one stderr line.
fn turns(dir: &Path) -> PathBuf {
    shell_job(
        dir,
        "name: turns\ncommand: [./run.sh]\nworkers: 2\nmax_restarts: 0\n",
        "#!/bin/sh\nfor s in 0 1 2 3; do\n  if [ $((s % 2)) = \"$T2_WORKER_ID\" ]; then echo step-$s; fi\n  t2 worker barrier >/dev/null || exit 9\n  sleep 0.05\ndone\necho done-$T2_WORKER_ID >&2\n",
    )
}

/// Runs the `turns` job to its end under `home`; returns its ID.
fn run_turns(home: &Path) -> String {
    let pkg = turns(&home.join("src/turns"));
    let out = run(submit(home, &pkg, NO_ARGS), T);
    assert!(out.status.success(), "{}", text(&out));
    only_job(home)["id"].as_str().unwrap().to_string()
}

#[test]
fn each_submit_help_shows_only_its_own_flags_and_every_command_has_examples() {
    let home = tempfile::tempdir().unwrap();
    let help = |args: &[&str]| {
        let mut c = t2(home.path());
        c.args(args).arg("--help");
        let out = run(c, T);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        stdout(&out)
    };
    let local = help(&["submit", "local"]);
    for absent in [
        "--dry-run",
        "--namespace",
        "--context",
        "--kubeconfig",
        "-o,",
    ] {
        assert!(
            !local.contains(absent),
            "submit local shows {absent}:\n{local}"
        );
    }
    assert!(
        local.contains("--uploader") && local.contains("--workers"),
        "{local}"
    );
    let kube = help(&["submit", "kubernetes"]);
    for present in ["--dry-run", "--namespace", "--context", "--kubeconfig"] {
        assert!(
            kube.contains(present),
            "submit kubernetes lacks {present}:\n{kube}"
        );
    }
    assert!(!kube.contains("--uploader <"), "{kube}");
    for cmd in [
        &["submit"][..],
        &["submit", "local"],
        &["submit", "kubernetes"],
        &["list"],
        &["status"],
        &["logs"],
        &["describe"],
        &["kill"],
        &["delete"],
        &["scale"],
        &["gc"],
        &["version"],
        &["completion"],
        &["config", "view"],
        &["config"],
        &["uploader"],
        &["dash"],
        &["doctor"],
        &["worker"],
    ] {
        let h = help(cmd);
        assert!(
            h.contains("Example"),
            "`t2 {} --help` has no example:\n{h}",
            cmd.join(" ")
        );
    }
    let top = help(&[]);
    for var in [
        "T2_HOME",
        "T2_CONF_DIR",
        "T2_UPLOADER",
        "T2_UPLOADER_TOKEN",
        "KUBECONFIG",
    ] {
        assert!(
            top.contains(var),
            "t2 --help does not document {var}:\n{top}"
        );
    }
}

#[test]
fn version_and_shell_completions() {
    let home = tempfile::tempdir().unwrap();
    let out = run_t2(home.path(), &["version"], T);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("t2 {} (client)", env!("CARGO_PKG_VERSION"))
    );
    // Asked for a cluster that cannot be reached: the client's version, then why not.
    let mut c = t2(home.path());
    c.args(["version", "--cluster", "kubernetes"])
        .env("KUBECONFIG", home.path().join("no-such-kubeconfig"));
    let out = run(c, T);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("(client)") && stdout(&out).contains("kubernetes: not reachable"),
        "{}",
        text(&out)
    );

    for shell in ["bash", "zsh", "fish"] {
        let mut c = t2(home.path());
        c.args(["completion", shell]);
        let (_, script) = run_long_output(c, home.path());
        assert!(
            script.contains("submit") && script.contains("describe"),
            "{shell}:\n{script}"
        );
    }
    // The bash script is valid bash.
    let mut c = t2(home.path());
    c.args(["completion", "bash"]);
    let (_, script) = run_long_output(c, home.path());
    let file = home.path().join("t2.bash");
    std::fs::write(&file, script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn list_and_status_speak_wide_json_and_yaml_with_an_age() {
    let home = tempfile::tempdir().unwrap();
    let id = run_turns(home.path());

    let list = stdout(&run_t2(home.path(), &["list"], T));
    let header = list.lines().next().unwrap_or_default();
    assert!(
        header.contains("AGE") && !header.contains("REASON"),
        "{list}"
    );
    let row = list
        .lines()
        .find(|l| l.starts_with(&id))
        .expect("the job's row");
    let age = row.split_whitespace().nth(4).unwrap_or_default();
    assert!(
        age.ends_with('s') || age.ends_with('m'),
        "AGE column: '{age}' in {row}"
    );
    let wide = stdout(&run_t2(home.path(), &["list", "-o", "wide"], T));
    assert!(
        wide.lines().next().unwrap_or_default().contains("REASON"),
        "{wide}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run_t2(home.path(), &["list", "-o", "json"], T))).unwrap();
    assert_eq!(json["jobs"][0]["id"], id.as_str());
    assert_eq!(json["jobs"][0]["state"], "COMPLETED");
    let yaml: serde_json::Value =
        serde_yaml::from_str(&stdout(&run_t2(home.path(), &["list", "-o", "yaml"], T))).unwrap();
    assert_eq!(yaml["jobs"][0]["id"], id.as_str());

    let status = |fmt: &str| stdout(&run_t2(home.path(), &["status", &id, "-o", fmt], T));
    let json: serde_json::Value = serde_json::from_str(&status("json")).unwrap();
    assert_eq!(json["state"], "COMPLETED");
    let yaml: serde_json::Value = serde_yaml::from_str(&status("yaml")).unwrap();
    assert_eq!(yaml["state"], "COMPLETED");
    assert_eq!(yaml["workers"][1]["state"], "COMPLETED");
    let wide = status("wide");
    assert!(wide.contains("LAST OUTPUT"), "{wide}");
    let w1 = wide
        .lines()
        .find(|l| l.starts_with("1 "))
        .expect("worker 1's row");
    assert!(w1.ends_with("done-1"), "worker 1's last line: {w1}");
    assert!(status("text").contains(" ago)"), "no age in status");
}

#[test]
fn list_watch_prints_a_job_again_when_its_state_changes() {
    let home = tempfile::tempdir().unwrap();
    let flag = home.path().join("go");
    let pkg = shell_job(
        &home.path().join("src/waits"),
        "name: waits\ncommand: [./run.sh]\n",
        "#!/bin/sh\nwhile [ ! -e \"$FLAG\" ]; do sleep 0.1; done\necho went\n",
    );
    let mut watch = t2(home.path())
        .args(["list", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = BufReader::new(watch.stdout.take().unwrap());
    let s = seen.clone();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            s.lock().unwrap().push(line);
        }
    });
    let job = spawn_submit(
        home.path(),
        &pkg,
        &["-D", &format!("env.FLAG={}", flag.display())],
    );
    let has = |state: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("waits-") && l.contains(state))
    };
    wait_until(
        T,
        || has("RUNNING"),
        || format!("{:?}", seen.lock().unwrap()),
    );
    std::fs::write(&flag, "").unwrap();
    let out = wait(job, T);
    assert!(out.status.success(), "{}", text(&out));
    wait_until(
        T,
        || has("COMPLETED"),
        || format!("{:?}", seen.lock().unwrap()),
    );
    let _ = watch.kill();
    let _ = watch.wait();
    let lines = seen.lock().unwrap().clone();
    assert!(lines[0].starts_with("JOB "), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("JOB ")).count(),
        1,
        "{lines:?}"
    );
}

#[test]
fn logs_merge_workers_by_time_with_tail_since_timestamps_and_the_job_master() {
    let home = tempfile::tempdir().unwrap();
    let id = run_turns(home.path());
    let logs = |extra: &[&str]| {
        let mut args = vec!["logs", id.as_str()];
        args.extend_from_slice(extra);
        let out = run_t2(home.path(), &args, T);
        assert!(out.status.success(), "{extra:?}: {}", text(&out));
        stdout(&out)
    };
    let steps = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| l.contains("step-"))
            .map(|l| l.to_string())
            .collect()
    };
    assert_eq!(
        steps(&logs(&[])),
        [
            "[worker-0] step-0",
            "[worker-1] step-1",
            "[worker-0] step-2",
            "[worker-1] step-3"
        ]
    );
    // The last lines of all workers together: step-3 and the two stderr lines after it.
    let tail = logs(&["--tail", "3"]);
    assert_eq!(tail.lines().count(), 3, "{tail}");
    assert!(tail.lines().next().unwrap().ends_with("step-3"), "{tail}");
    let stamped = logs(&["--timestamps"]);
    for l in stamped.lines() {
        let mut words = l.split_whitespace();
        let (prefix, time) = (words.next().unwrap(), words.next().unwrap());
        assert!(prefix.starts_with("[worker-"), "{l}");
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "no RFC 3339 time in: {l}"
        );
    }
    assert_eq!(steps(&logs(&["--since", "1h"])).len(), 4);
    assert_eq!(steps(&logs(&["--worker", "1"])), ["step-1", "step-3"]);
    // A bad duration is one line naming the flag.
    let out = run_t2(home.path(), &["logs", &id, "--since", "soon"], T);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("error: --since"),
        "{}",
        text(&out)
    );
    // The job master's log: its own lines, no worker output.
    let jm = logs(&["--jobmaster"]);
    assert!(
        !jm.trim().is_empty() && !jm.contains("[worker-") && !jm.contains("step-"),
        "{jm}"
    );
    let jm_tail = logs(&["--jobmaster", "--tail", "1"]);
    assert_eq!(jm_tail.lines().count(), 1, "{jm_tail}");
}

#[test]
fn describe_shows_spec_workers_events_and_the_reason() {
    let home = tempfile::tempdir().unwrap();
    let id = run_turns(home.path());
    let out = run_t2(home.path(), &["describe", &id], T);
    assert!(out.status.success(), "{}", text(&out));
    let d = stdout(&out);
    for want in [
        "State:        COMPLETED",
        "Reason:       every worker completed",
        "Command:      ./run.sh",
        "Workers:      2 (1 per slot)",
        "Events:",
    ] {
        assert!(d.contains(want), "no '{want}' in:\n{d}");
    }
    let events: Vec<&str> = d.lines().skip_while(|l| *l != "Events:").collect();
    let job_states: Vec<&str> = events
        .iter()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.get(1) == Some(&"job")).then(|| w[2])
        })
        .collect();
    assert_eq!(job_states.first(), Some(&"STARTING"), "{d}");
    assert_eq!(job_states.last(), Some(&"COMPLETED"), "{d}");
    assert!(job_states.contains(&"RUNNING"), "{d}");

    // A failing job: the reason names the worker, the events its exit code.
    let pkg = shell_job(
        &home.path().join("src/fails"),
        "name: fails\ncommand: [./run.sh]\nmax_restarts: 0\n",
        "#!/bin/sh\necho bye >&2\nexit 4\n",
    );
    let out = run(submit(home.path(), &pkg, NO_ARGS), T);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failed = stdout(&run_t2(home.path(), &["list", "-o", "json"], T));
    let v: serde_json::Value = serde_json::from_str(&failed).unwrap();
    let fid = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "fails")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = stdout(&run_t2(home.path(), &["describe", &fid], T));
    let reason = d
        .lines()
        .find(|l| l.starts_with("Reason:"))
        .unwrap_or_default();
    assert!(
        reason.contains("worker 0") || reason.contains("worker-0"),
        "{d}"
    );
    assert!(
        d.lines().any(|l| l.contains(" job ")
            && l.contains("FAILED")
            && l.contains("exited with code 4")),
        "{d}"
    );
    assert!(
        d.lines()
            .any(|l| l.contains("worker-0") && l.contains("FAILED")),
        "{d}"
    );
}

/// A configuration folder with `local/site.yaml` holding `yaml`.
fn conf_dir(root: &Path, yaml: &str) -> PathBuf {
    std::fs::create_dir_all(root.join("local")).unwrap();
    std::fs::write(root.join("local/site.yaml"), yaml).unwrap();
    root.to_path_buf()
}

/// `t2 config view ARGS…` with `home` and the environment in `env`; its stdout.
fn config_view(home: &Path, env: &[(&str, &Path)], args: &[&str]) -> String {
    let mut c = t2_plain(home);
    c.env("XDG_CONFIG_HOME", home.join("no-xdg"))
        .args(["config", "view"])
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = run(c, T);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    stdout(&out)
}

/// The FROM column of `key` in a `t2 config view` table.
fn origin_of(view: &str, key: &str) -> String {
    let line = view
        .lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no {key} in:\n{view}"));
    line.split_whitespace()
        .skip(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn config_view_says_where_every_value_comes_from() {
    let home = tempfile::tempdir().unwrap();
    let conf = conf_dir(&home.path().join("site"), "max_restarts: 7\n");
    let pkg = shell_job(
        &home.path().join("src/pi"),
        "name: pi\ncommand: [./run.sh]\nworkers: 3\n",
        "#!/bin/sh\n",
    );
    let view = config_view(
        home.path(),
        &[],
        &[
            pkg.to_str().unwrap(),
            "--conf-dir",
            conf.to_str().unwrap(),
            "-D",
            "heartbeat_timeout=5s",
            "--name",
            "other",
        ],
    );
    assert!(
        view.contains(&format!("{} (found by --conf-dir)", conf.display())),
        "{view}"
    );
    assert!(
        origin_of(&view, "max_restarts").ends_with("local/site.yaml"),
        "{view}"
    );
    assert!(origin_of(&view, "workers").contains("job.yaml"), "{view}");
    assert_eq!(
        origin_of(&view, "heartbeat_timeout"),
        "-D heartbeat_timeout=5s"
    );
    assert_eq!(origin_of(&view, "name"), "--name other");
    assert_eq!(origin_of(&view, "barrier_timeout"), "built-in defaults");
    // JSON: the spec, and an origin for each key.
    let json: serde_json::Value = serde_json::from_str(&config_view(
        home.path(),
        &[],
        &[
            pkg.to_str().unwrap(),
            "--conf-dir",
            conf.to_str().unwrap(),
            "-o",
            "json",
        ],
    ))
    .unwrap();
    assert_eq!(json["spec"]["workers"], 3);
    assert_eq!(json["spec"]["max_restarts"], 7);
    assert!(json["origins"]["workers"]
        .as_str()
        .unwrap()
        .contains("job.yaml"));
}

#[test]
fn the_configuration_folder_is_found_in_the_documented_order() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let xdg = tmp.path().join("xdg");
    let folder_of = |env: &[(&str, &Path)]| -> String {
        let mut c = t2_plain(&home);
        c.env("XDG_CONFIG_HOME", tmp.path().join("no-xdg"))
            .args(["config", "view"]);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = run(c, T);
        assert!(out.status.success(), "{}", text(&out));
        stdout(&out)
            .lines()
            .find(|l| l.starts_with("configuration folder:"))
            .unwrap_or_default()
            .to_string()
    };
    // $XDG_CONFIG_HOME/t2 when $T2_HOME/conf is not there.
    conf_dir(&xdg.join("t2"), "max_restarts: 1\n");
    assert!(
        folder_of(&[("XDG_CONFIG_HOME", &xdg)]).ends_with("(found by $XDG_CONFIG_HOME/t2)"),
        "{}",
        folder_of(&[("XDG_CONFIG_HOME", &xdg)])
    );
    // $T2_HOME/conf before it.
    conf_dir(&home.join("conf"), "max_restarts: 2\n");
    let f = folder_of(&[("XDG_CONFIG_HOME", &xdg)]);
    assert!(f.ends_with("(found by $T2_HOME/conf)"), "{f}");
    // $T2_CONF_DIR before both.
    let env_conf = conf_dir(&tmp.path().join("env-conf"), "max_restarts: 3\n");
    let f = folder_of(&[("XDG_CONFIG_HOME", &xdg), ("T2_CONF_DIR", &env_conf)]);
    assert!(f.ends_with("(found by $T2_CONF_DIR)"), "{f}");

    // Beside the executable (a copy of t2 in BIN/, its conf/ in BIN/conf).
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_t2"), bin.join("t2")).unwrap();
    conf_dir(&bin.join("conf"), "max_restarts: 4\n");
    // The fresh copy may be "text file busy" for a moment: a child another test thread forks
    // meanwhile holds the copy's write descriptor until it execs. Bounded retries.
    let mut tries = 0;
    let out = loop {
        match Command::new(bin.join("t2"))
            .args(["config", "view"])
            .env("T2_HOME", tmp.path().join("empty-home"))
            .env("XDG_CONFIG_HOME", tmp.path().join("no-xdg"))
            .env_remove("T2_CONF_DIR")
            .output()
        {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            r => break r.unwrap(),
        }
    };
    let view = stdout(&out);
    // (/etc/t2, when this machine has one, comes first.)
    if !Path::new("/etc/t2").is_dir() {
        assert!(
            view.contains("(found by conf/ beside the t2 executable)"),
            "{}",
            text(&out)
        );
        assert!(
            origin_of(&view, "max_restarts").ends_with("conf/local/site.yaml"),
            "{view}"
        );
    }

    // A --conf-dir (or $T2_CONF_DIR) with nothing t2 reads is an error, not ignored.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for env in [false, true] {
        let mut c = t2_plain(&home);
        c.args(["config", "view"]);
        if env {
            c.env("T2_CONF_DIR", &empty);
        } else {
            c.arg("--conf-dir").arg(&empty);
        }
        let out = run(c, T);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", text(&out));
        let flag = if env { "T2_CONF_DIR" } else { "--conf-dir" };
        assert!(
            err.starts_with(&format!(
                "error: {flag} {}: holds no local/*.yaml",
                empty.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn dry_run_objects_start_with_api_version_kind_metadata_and_bad_namespaces_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let pkg = shell_job(
        &home.path().join("src/hello"),
        "name: hello\ncommand: [./run.sh]\nworkers: 2\n",
        "#!/bin/sh\necho hi\n",
    );
    let dry = |extra: &[&str]| {
        let mut c = t2(home.path());
        c.args(["submit", "kubernetes"])
            .arg(&pkg)
            .args(["--dry-run", "-n", "demo"])
            .args(extra);
        run(c, T)
    };
    let out = dry(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let yaml = stdout(&out);
    // Documents are separated by `---` lines (a certificate's `-----BEGIN` line is not one).
    let lines: Vec<&str> = yaml.lines().collect();
    let docs: Vec<String> = lines
        .split(|l| *l == "---")
        .map(|ls| ls.join("\n"))
        .filter(|d| !d.trim().is_empty())
        .collect();
    assert!(docs.len() >= 5, "{yaml}");
    for d in &docs {
        let top: Vec<&str> = d
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(&top[..3], ["apiVersion", "kind", "metadata"], "{d}");
    }
    let out = dry(&["-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let json = stdout(&out);
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["kind"], "List");
    // Each item's text: apiVersion, then kind, then metadata.
    for item in json.split("\n    {\n").skip(1) {
        let at = |k: &str| item.find(&format!("\"{k}\":")).unwrap_or(usize::MAX);
        assert!(
            at("apiVersion") < at("kind") && at("kind") < at("metadata"),
            "{item}"
        );
    }

    let mut c = t2(home.path());
    c.args(["submit", "kubernetes"])
        .arg(&pkg)
        .args(["--dry-run", "-n", "Bad_NS"]);
    let out = run(c, T);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: -n Bad_NS: not a valid namespace name")
            && err.contains("DNS-1123")
            && err.contains("e.g. bad-ns"),
        "{err}"
    );
    assert!(
        stdout(&out).is_empty(),
        "objects printed for a bad namespace"
    );
}

#[test]
fn wording_says_what_the_user_wrote_and_counts_in_words() {
    let home = tempfile::tempdir().unwrap();
    // `--listen :PORT` names the fix; a --listen that cannot be used creates no --dir.
    let dir = home.path().join("store");
    let out = run_t2(
        home.path(),
        &[
            "uploader",
            "--listen",
            ":18082",
            "--dir",
            dir.to_str().unwrap(),
        ],
        T,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        err.starts_with("error: --listen :18082: give the address too, e.g. 127.0.0.1:18082"),
        "{err}"
    );
    assert!(!dir.exists(), "a failed uploader created its --dir");

    // One worker: "1 worker", "the worker joined"; its stderr stays on stderr.
    let pkg = shell_job(
        &home.path().join("src/one"),
        "name: one\ncommand: [./run.sh]\n",
        "#!/bin/sh\necho to-out\necho to-err >&2\n",
    );
    let out = run(submit(home.path(), &pkg, NO_ARGS), T);
    assert!(out.status.success(), "{}", text(&out));
    let (o, e) = (
        stdout(&out),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(
        e.contains("submitted: 1 worker,") && e.contains("the worker joined"),
        "{e}"
    );
    assert!(!e.contains("(s)") && !e.contains("all 1 workers"), "{e}");
    assert!(
        o.contains("[worker-0] to-out") && !o.contains("to-err"),
        "{o}"
    );
    assert!(e.contains("[worker-0] to-err"), "{e}");

    // A failed job's reason counts restarts in words.
    let fails = shell_job(
        &home.path().join("src/fails"),
        "name: fails\ncommand: [./run.sh]\nmax_restarts: 1\n",
        "#!/bin/sh\nexit 3\n",
    );
    let out = run(submit(home.path(), &fails, NO_ARGS), T);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout(&out).contains("restarted once, max_restarts = 1"),
        "{}",
        text(&out)
    );
}
