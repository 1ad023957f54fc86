//! Unit tests of layered configuration: defaults, layering order, merging, `-D` flags,
//! Twister2 aliases, and one precise one-line error per bad field.

use std::path::Path;
use std::time::Duration;

use super::*;

const JOB: &str = "name: pi\ncommand: [./run.sh]\n";

fn job(text: &str) -> Layer {
    Layer {
        origin: "job.yaml".into(),
        text: text.into(),
    }
}

fn flags(f: &[&str]) -> Vec<String> {
    f.iter().map(|s| s.to_string()).collect()
}

fn load(text: &str, f: &[&str]) -> Result<JobSpec, SpecError> {
    load_job_spec("local", None, Some(&job(text)), &flags(f))
}

fn ok(text: &str, f: &[&str]) -> JobSpec {
    load(text, f).unwrap_or_else(|e| panic!("{e}"))
}

/// The error, checked to be one line.
fn err(text: &str, f: &[&str]) -> SpecError {
    let e = load(text, f).expect_err("should fail");
    let shown = e.to_string();
    assert_eq!(shown.lines().count(), 1, "not one line: {shown:?}");
    e
}

fn bad_value(e: &SpecError) -> (&str, &str, &str) {
    match e {
        SpecError::BadValue { file, key, message } => (file, key, message),
        other => panic!("expected BadValue, got {other:?}"),
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let s = ok(JOB, &[]);
    assert_eq!(s.name, "pi");
    assert_eq!(s.command, vec!["./run.sh"]);
    assert_eq!(s.workers, 1);
    assert_eq!(s.workers_per_pod, 1);
    assert_eq!(s.max_restarts, 3);
    assert_eq!(s.barrier_timeout, Duration::from_secs(30));
    assert_eq!(s.init_barrier_timeout, Duration::from_secs(600));
    assert_eq!(s.join_timeout, Duration::from_secs(60));
    assert_eq!(s.heartbeat_interval, Duration::from_millis(250));
    assert_eq!(s.heartbeat_timeout, Duration::from_secs(3));
    assert_eq!(
        s.resources,
        Resources {
            cpu: 1.0,
            memory_mb: 512,
            disk_mb: 0,
            limits: Default::default(),
        }
    );
    assert!(s.env.is_empty() && s.config.is_empty() && s.args.is_empty() && s.include.is_empty());
    assert_eq!(s.build, None);
    assert_eq!(s.max_package_bytes, 1_073_741_824);
    assert_eq!(
        s.max_package_bytes,
        crate::package::DEFAULT_MAX_PACKAGE_BYTES
    );
    assert!(!s.fault_tolerant);
    assert_eq!(
        s.zookeeper,
        ZooKeeperSpec {
            addresses: String::new(),
            root: "/t2".into(),
            session_timeout: Duration::from_secs(10)
        }
    );
    assert_eq!(s.zookeeper, ZooKeeperSpec::default());
}

#[test]
fn the_defaults_file_is_the_built_in_one() {
    let on_disk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/local/job.yaml");
    let text = std::fs::read_to_string(on_disk).expect("conf/local/job.yaml");
    assert_eq!(text, BUILT_IN_DEFAULTS);
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let s = load_job_spec("local", Some(&conf), Some(&job(JOB)), &[]).expect("loads");
    assert_eq!(s, ok(JOB, &[]));
}

#[test]
fn spec_round_trips_through_json() {
    let s = ok(JOB, &["config.a.b=[1, 2]", "env.X=1"]);
    let json = serde_json::to_string(&s).expect("encode");
    let back: JobSpec = serde_json::from_str(&json).expect("decode");
    assert_eq!(back, s);
}

#[test]
fn known_keys_cover_the_defaults() {
    let tree: serde_yaml::Mapping = serde_yaml::from_str(BUILT_IN_DEFAULTS).expect("yaml");
    let known = known_keys();
    let has = |k: &str| known.iter().any(|x| x == k);
    for k in tree.keys() {
        let k = k.as_str().expect("text key");
        assert!(has(k), "{k}");
    }
    for k in [
        "name",
        "command",
        "env",
        "config",
        "kubernetes",
        "resources.memory_mb",
    ] {
        assert!(has(k), "{k}");
    }
    for k in ["addresses", "root", "session_timeout"] {
        assert!(has(&format!("zookeeper.{k}")), "{k}");
    }
}

fn conf_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("local");
    std::fs::create_dir(&local).expect("mkdir");
    for (name, text) in files {
        std::fs::write(local.join(name), text).expect("write");
    }
    dir
}

#[test]
fn layers_apply_in_order() {
    let dir = conf_dir(&[
        ("b.yaml", "workers: 3\nmax_restarts: 7\n"),
        (
            "a.yaml",
            "workers: 2\nmax_restarts: 5\nbarrier_timeout: 5s\n",
        ),
        ("c.txt", "this is not yaml: ["),
        (".hidden.yaml", "nonsense: 1\n"),
    ]);
    let conf = Some(dir.path());
    // conf files in name order: b overrides a.
    let s = load_job_spec("local", conf, Some(&job(JOB)), &[]).expect("loads");
    assert_eq!((s.workers, s.max_restarts), (3, 7));
    assert_eq!(s.barrier_timeout, Duration::from_secs(5));
    // job.yaml overrides conf.
    let s = load_job_spec(
        "local",
        conf,
        Some(&job(&format!("{JOB}workers: 4\n"))),
        &[],
    )
    .expect("loads");
    assert_eq!((s.workers, s.max_restarts), (4, 7));
    // -D overrides job.yaml, later -D override earlier ones.
    let f = flags(&["workers=5", "workers=6"]);
    let s =
        load_job_spec("local", conf, Some(&job(&format!("{JOB}workers: 4\n"))), &f).expect("loads");
    assert_eq!(s.workers, 6);
    // Another cluster has no folder: only defaults and the job.
    let s = load_job_spec("kubernetes", conf, Some(&job(JOB)), &[]).expect("loads");
    assert_eq!(s.workers, 1);
}

#[test]
fn errors_name_the_layer_they_come_from() {
    let dir = conf_dir(&[("site.yaml", "workers: many\n")]);
    let e = load_job_spec("local", Some(dir.path()), Some(&job(JOB)), &[]).unwrap_err();
    let (file, key, _) = bad_value(&e);
    assert!(file.ends_with("local/site.yaml"), "{file}");
    assert_eq!(key, "workers");
    let e = err(JOB, &["max_restarts=-1"]);
    assert_eq!(bad_value(&e).0, "-D max_restarts=-1");
    // The layer that set workers_per_pod is blamed for not dividing workers.
    let e = err(&format!("{JOB}workers_per_pod: 3\n"), &["workers=4"]);
    assert_eq!(bad_value(&e).0, "job.yaml");
}

#[test]
fn missing_conf_dir_is_an_error_and_bad_cluster_names_too() {
    let e = load_job_spec("local", Some(Path::new("/nonexistent/t2-conf")), None, &[]).unwrap_err();
    assert!(matches!(e, SpecError::Io { .. }), "{e}");
    let dir = conf_dir(&[]);
    let e = load_job_spec("../etc", Some(dir.path()), Some(&job(JOB)), &[]).unwrap_err();
    assert_eq!(bad_value(&e).1, "cluster");
}

#[test]
fn maps_merge_and_other_values_replace() {
    let dir = conf_dir(&[(
        "site.yaml",
        "env: {A: '1', B: '2'}\nconfig: {db: {host: h, port: 1}, n: 1}\nresources: {cpu: 4}\nargs: [--x]\n",
    )]);
    let text = format!("{JOB}env: {{B: three}}\nconfig: {{db: {{port: 2}}}}\nresources: {{memory_mb: 1024}}\nargs: [--y]\n");
    let f = flags(&["env.C=c", "config.db.user=u", "resources.disk_mb=10"]);
    let s = load_job_spec("local", Some(dir.path()), Some(&job(&text)), &f).expect("loads");
    let env: Vec<(&str, &str)> = s
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(env, vec![("A", "1"), ("B", "three"), ("C", "c")]);
    assert_eq!(
        serde_json::to_value(&s.config).expect("json"),
        serde_json::json!({"db": {"host": "h", "port": 2, "user": "u"}, "n": 1})
    );
    assert_eq!(
        s.resources,
        Resources {
            cpu: 4.0,
            memory_mb: 1024,
            disk_mb: 10,
            limits: Default::default(),
        }
    );
    assert_eq!(s.args, vec!["--y"]);
}

#[test]
fn override_values_are_yaml() {
    let s = ok(
        "name: pi\n",
        &[
            "command=[sh, run.sh]",
            "config.iterations=100",
            "resources.cpu=2",
            "env.FOO=bar",
        ],
    );
    assert_eq!(s.command, vec!["sh", "run.sh"]);
    assert_eq!(s.config["iterations"], serde_json::json!(100));
    assert_eq!(s.resources.cpu, 2.0);
    assert_eq!(s.env["FOO"], "bar");
    let s = ok(
        "name: pi\n",
        &[
            "command=./run.sh --fast",
            "env.MODE=0755",
            "config.list={a: [1]}",
        ],
    );
    assert_eq!(s.command, vec!["./run.sh", "--fast"]);
    assert_eq!(s.env["MODE"], "0755");
    assert_eq!(s.config["list"], serde_json::json!({"a": [1]}));
    // Names are text, even when they look like YAML.
    assert_eq!(ok(JOB, &["name=my job: v2"]).name, "my job: v2");
    assert_eq!(ok(JOB, &["name=true"]).name, "true");
    assert_eq!(
        ok(JOB, &["heartbeat_timeout=5s"]).heartbeat_timeout,
        Duration::from_secs(5)
    );
    assert_eq!(ok(&format!("{JOB}build: make\n"), &["build="]).build, None);
}

#[test]
fn bad_overrides() {
    for f in ["workers", "=4", ".x=1", "config..a=1"] {
        let e = err(JOB, &[f]);
        assert!(matches!(e, SpecError::BadOverride { .. }), "{f}: {e}");
    }
    let e = err(JOB, &["command=[sh, run.sh"]);
    assert!(matches!(e, SpecError::Yaml { .. }), "{e}");
    let e = err(JOB, &["colour=blue"]);
    assert_eq!(e.to_string(), "-D colour=blue: unknown key 'colour'");
    let e = err(JOB, &["resource.cpu=2"]);
    assert!(
        e.to_string().ends_with("did you mean 'resources.cpu'?"),
        "{e}"
    );
}

#[test]
fn unknown_keys_suggest_the_closest() {
    let e = err(&format!("{JOB}wrokers: 2\n"), &[]);
    assert_eq!(
        e.to_string(),
        "job.yaml: unknown key 'wrokers'; did you mean 'workers'?"
    );
    let e = err(&format!("{JOB}resources: {{cpus: 2}}\n"), &[]);
    assert_eq!(
        e.to_string(),
        "job.yaml: unknown key 'resources.cpus'; did you mean 'resources.cpu'?"
    );
    let e = err(&format!("{JOB}image: ubuntu\n"), &[]);
    assert_eq!(e.to_string(), "job.yaml: unknown key 'image'");
    let e = err(&format!("{JOB}1: x\n"), &[]);
    assert!(matches!(e, SpecError::UnknownKey { .. }), "{e}");
    // env and config keys are the user's own.
    let s = ok(
        &format!("{JOB}env: {{ANYTHING_AT_ALL: x}}\nconfig: {{wrokers: 1}}\n"),
        &[],
    );
    assert_eq!(s.env["ANYTHING_AT_ALL"], "x");
    assert!(s.config.contains_key("wrokers"));
}

#[test]
fn worker_counts_are_checked() {
    let cases = [
        ("0", "must be at least 1, got 0"),
        ("-3", "must be a positive whole number, got -3"),
        ("many", "must be a positive whole number, got 'many'"),
        ("2.5", "must be a positive whole number, got 2.5"),
        ("100001", "must be at most 100000, got 100001"),
    ];
    for (value, want) in cases {
        let e = err(&format!("{JOB}workers: {value}\n"), &[]);
        assert_eq!(e.to_string(), format!("job.yaml: 'workers' {want}"));
        let e = err(JOB, &[&format!("workers={value}")]);
        assert_eq!(bad_value(&e).2, want);
    }
    assert_eq!(ok(&format!("{JOB}workers: 100000\n"), &[]).workers, 100_000);
}

#[test]
fn workers_per_pod_must_divide_workers() {
    let e = err(&format!("{JOB}workers: 4\nworkers_per_pod: 3\n"), &[]);
    let (_, key, msg) = bad_value(&e);
    assert_eq!(key, "workers_per_pod");
    assert!(msg.contains("must divide workers"), "{msg}");
    let s = ok(&format!("{JOB}workers: 6\nworkers_per_pod: 3\n"), &[]);
    assert_eq!((s.workers, s.workers_per_pod), (6, 3));
    let e = err(&format!("{JOB}workers_per_pod: 0\n"), &[]);
    assert_eq!(bad_value(&e).1, "workers_per_pod");
}

#[test]
fn durations_are_checked() {
    let e = err(&format!("{JOB}barrier_timeout: soon\n"), &[]);
    assert_eq!(
        e.to_string(),
        "job.yaml: 'barrier_timeout' must be a duration such as 500ms, 3s or 2m, got 'soon'"
    );
    let e = err(&format!("{JOB}join_timeout: 0s\n"), &[]);
    assert_eq!(bad_value(&e).2, "must be longer than 0");
    let e = err(&format!("{JOB}heartbeat_interval: 5s\n"), &[]);
    let (_, key, msg) = bad_value(&e);
    assert_eq!(key, "heartbeat_timeout");
    assert_eq!(
        msg,
        "must be longer than heartbeat_interval (3s is not longer than 5s)"
    );
    let s = ok(
        &format!("{JOB}barrier_timeout: 1500\ninit_barrier_timeout: 1m30s\n"),
        &[],
    );
    assert_eq!(s.barrier_timeout, Duration::from_millis(1500));
    assert_eq!(s.init_barrier_timeout, Duration::from_secs(90));
}

#[test]
fn every_duration_key_has_an_upper_bound() {
    // Once a panic in the job master (an Instant overflow); now one line naming the bound.
    let e = err(JOB, &["join_timeout=18000000000000000000s"]);
    assert_eq!(
        e.to_string(),
        "-D join_timeout=18000000000000000000s: 'join_timeout' must be from 1ms to 7days, \
         got 18000000000000000000s"
    );
    let cases = [
        (
            "barrier_timeout",
            "8d",
            "must be from 1ms to 7days, got 8days",
        ),
        (
            "init_barrier_timeout",
            "18446744073709551615",
            "must be from 1ms to 7days",
        ),
        (
            "join_timeout",
            "1000000000000h",
            "must be from 1ms to 7days",
        ),
        ("heartbeat_interval", "2m", "must be from 1ms to 1m, got 2m"),
        ("heartbeat_timeout", "2h", "must be from 1ms to 1h, got 2h"),
        (
            "zookeeper.session_timeout",
            "99999999999999s",
            "must be from 1s to 10m",
        ),
        (
            "twister2.worker.controller.max.wait.time.for.all.workers.to.join",
            "999999999999999",
            "must be from 1ms to 7days",
        ),
    ];
    for (key, value, message) in cases {
        let flag = format!("{key}={value}");
        let e = err(JOB, &[flag.as_str()]);
        let (_, _, msg) = bad_value(&e);
        assert!(msg.starts_with(message), "{flag}: {msg}");
        // The same bound in job.yaml.
        if !key.contains('.') {
            let e = err(&format!("{JOB}{key}: '{value}'\n"), &[]);
            assert!(bad_value(&e).2.starts_with(message), "{key}: {e}");
        }
    }
    for (key, value) in [
        ("join_timeout", "7d"),
        ("barrier_timeout", "7d"),
        ("heartbeat_timeout", "1h"),
    ] {
        let flag = format!("{key}={value}");
        ok(JOB, &[flag.as_str()]);
    }
}

#[test]
fn command_and_name_are_required() {
    let e = err("name: pi\n", &[]);
    match &e {
        SpecError::Missing { file, key, hint } => {
            assert_eq!((file.as_str(), key.as_str()), ("job.yaml", "command"));
            assert_eq!(hint, "add `command: [./run.sh]` to job.yaml");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        err("name: pi\ncommand:\n", &[]),
        SpecError::Missing { .. }
    ));
    let e = err("command: [./run.sh]\n", &[]);
    assert!(
        matches!(&e, SpecError::Missing { key, .. } if key == "name"),
        "{e}"
    );
    let e = load_job_spec("local", None, None, &flags(&["name=x"])).unwrap_err();
    assert!(
        matches!(&e, SpecError::Missing { key, .. } if key == "command"),
        "{e}"
    );
    let e = err("name: pi\ncommand: []\n", &[]);
    assert!(bad_value(&e).2.contains("must name a program"));
    let e = err("name: ''\ncommand: [x]\n", &[]);
    assert_eq!(bad_value(&e).2, "must not be empty");
    // A string command is split on whitespace.
    assert_eq!(
        ok("name: pi\ncommand: python3  main.py -v\n", &[]).command,
        vec!["python3", "main.py", "-v"]
    );
}

#[test]
fn other_values_are_checked() {
    let cases = [
        (
            "env: {1BAD: x}",
            "env.1BAD",
            "is not a valid environment variable name",
        ),
        (
            "env: {A-B: x}",
            "env.A-B",
            "is not a valid environment variable name",
        ),
        ("env: {A: [1]}", "env.A", "must be text, got a list"),
        ("env: [A]", "env", "must be a map"),
        ("config: 3", "config", "must be a map"),
        ("resources: 2", "resources", "must be a map"),
        (
            "resources: {cpu: 0}",
            "resources.cpu",
            "positive number of cores",
        ),
        (
            "resources: {memory_mb: 0}",
            "resources.memory_mb",
            "must be at least 1",
        ),
        (
            "resources: {disk_mb: -1}",
            "resources.disk_mb",
            "whole number (0 or more)",
        ),
        (
            "max_restarts: -1",
            "max_restarts",
            "whole number (0 or more), got -1",
        ),
        (
            "include: [../secrets]",
            "include",
            "inside the job directory",
        ),
        ("build: [make]", "build", "must be a shell command"),
        ("args: {a: 1}", "args", "must be a list"),
        (
            "max_package_bytes: 0",
            "max_package_bytes",
            "must be at least 1",
        ),
    ];
    for (line, want_key, want) in cases {
        let e = err(&format!("{JOB}{line}\n"), &[]);
        let (_, key, msg) = bad_value(&e);
        assert_eq!(key, want_key, "{line}");
        assert!(msg.contains(want), "{line}: {msg}");
    }
    let e = err("name: [a]\ncommand: [x]\n", &[]);
    assert!(bad_value(&e).2.contains("must be text, got a list"), "{e}");
    let s = ok(
        &format!("{JOB}env: {{A: 1, B: true, C: }}\nresources: {{cpu: 500m}}\n"),
        &[],
    );
    assert_eq!(
        (
            s.env["A"].as_str(),
            s.env["B"].as_str(),
            s.env["C"].as_str()
        ),
        ("1", "true", "")
    );
    assert_eq!(s.resources.cpu, 0.5);
}

#[test]
fn yaml_errors_are_one_line() {
    for text in [
        "name: [unclosed\n",
        "just text\n",
        "- a\n- b\n",
        "a: 1\na: 2\n",
        "k: \"line\\nbreak\n",
    ] {
        let e = err(text, &[]);
        assert!(
            matches!(e, SpecError::Yaml { .. } | SpecError::UnknownKey { .. }),
            "{text}: {e}"
        );
    }
    let e = err(&format!("{JOB}workers: \"a\\nb\"\n"), &[]);
    assert_eq!(
        e.to_string(),
        "job.yaml: 'workers' must be a positive whole number, got 'a\\nb'"
    );
    let e = err(&format!("{JOB}\"bad\\nkey\": 1\n"), &[]);
    assert_eq!(e.to_string(), "job.yaml: unknown key 'bad\\nkey'");
    // YAML merge keys work.
    let s = ok(&format!("{JOB}resources:\n  <<: {{cpu: 2}}\n"), &[]);
    assert_eq!(s.resources.cpu, 2.0);
}

#[test]
fn twister2_keys_are_aliases() {
    let text = "name: pi\ncommand: [./run.sh]\n\
        twister2.fault.tolerance.max.worker.restarts: 5\n\
        twister2.worker.controller.max.wait.time.on.barrier: 100000\n\
        twister2.worker.controller.max.wait.time.on.init.barrier: 600000\n\
        twister2.worker.controller.max.wait.time.for.all.workers.to.join: 20000\n\
        twister2.fault.tolerance.failure.timeout: 20000\n\
        twister2.resource.worker.compute.resources:\n\
        - cpu: 0.5\n  ram: 1024\n  disk: 1.5\n  instances: 4\n  workersPerPod: 2\n  scalable: false\n";
    let s = ok(text, &[]);
    assert_eq!(s.max_restarts, 5);
    assert_eq!(s.barrier_timeout, Duration::from_secs(100));
    assert_eq!(s.init_barrier_timeout, Duration::from_secs(600));
    assert_eq!(s.join_timeout, Duration::from_secs(20));
    // The failure timeout is Twister2's ZooKeeper session timeout, in milliseconds.
    assert_eq!(s.zookeeper.session_timeout, Duration::from_secs(20));
    assert_eq!(s.heartbeat_timeout, Duration::from_secs(3));
    assert_eq!((s.workers, s.workers_per_pod), (8, 2));
    assert_eq!(
        s.resources,
        Resources {
            cpu: 0.5,
            memory_mb: 1024,
            disk_mb: 1536,
            limits: Default::default(),
        }
    );
    let s = ok("command: [x]\ntwister2.resource.job.name: wc\n", &[]);
    assert_eq!(s.name, "wc");
    // As -D flags too, without splitting the dotted Twister2 key.
    let s = ok(JOB, &["twister2.fault.tolerance.max.worker.restarts=9"]);
    assert_eq!(s.max_restarts, 9);
    for (name, target) in twister2_aliases() {
        // Twister2's Kubernetes guide writes its topology keys without the prefix.
        let guide = ["kubernetes.", "rack.", "datacenter."];
        assert!(
            name.starts_with("twister2.") || guide.iter().any(|g| name.starts_with(g)),
            "{name}"
        );
        assert!(!target.is_empty());
    }
}

#[test]
fn twister2_alias_errors() {
    let e = err(
        &format!("{JOB}max_restarts: 1\ntwister2.fault.tolerance.max.worker.restarts: 2\n"),
        &[],
    );
    assert!(bad_value(&e).2.contains("keep one of them"), "{e}");
    let e = err(
        &format!("{JOB}twister2.fault.tolerance.max.worker.restarts: lots\n"),
        &[],
    );
    assert_eq!(
        e.to_string(),
        "job.yaml: 'twister2.fault.tolerance.max.worker.restarts' must be a whole number (0 or more), got 'lots'"
    );
    let two = "twister2.resource.worker.compute.resources: [{instances: 1}, {instances: 2}]";
    let e = err(&format!("{JOB}{two}\n"), &[]);
    assert!(bad_value(&e).2.contains("exactly one"), "{e}");
    let e = err(
        &format!("{JOB}twister2.resource.worker.compute.resources: [{{gpu: 1}}]\n"),
        &[],
    );
    assert!(matches!(e, SpecError::UnknownKey { .. }), "{e}");
    let e = err(
        &format!("{JOB}twister2.resource.worker.compute.resources: [{{instances: 0}}]\n"),
        &[],
    );
    assert!(bad_value(&e).1.ends_with("[0].instances"), "{e}");
    let e = err(
        &format!("{JOB}twister2.resource.worker.compute.resources: [{{disk: lots}}]\n"),
        &[],
    );
    assert!(bad_value(&e).1.ends_with("[0].disk"), "{e}");
    let e = err(&format!("{JOB}kubernetes.namespace: default\n"), &[]);
    assert!(
        matches!(
            e,
            SpecError::UnknownKey {
                suggestion: None,
                ..
            }
        ),
        "{e}"
    );
}

fn missing(e: &SpecError) -> (&str, &str, &str) {
    match e {
        SpecError::Missing { file, key, hint } => (file, key, hint),
        other => panic!("expected Missing, got {other:?}"),
    }
}

const ZK_ALIAS: &str = "twister2.resource.zookeeper.server.addresses";

#[test]
fn fault_tolerance_layers_and_merges() {
    let s = ok(
        JOB,
        &["fault_tolerant=true", "zookeeper.addresses=127.0.0.1:2181"],
    );
    assert!(s.fault_tolerant);
    assert_eq!(
        s.zookeeper,
        ZooKeeperSpec {
            addresses: "127.0.0.1:2181".into(),
            root: "/t2".into(),
            session_timeout: Duration::from_secs(10)
        }
    );
    // zookeeper merges key by key across layers.
    let dir = conf_dir(&[(
        "site.yaml",
        "zookeeper: {addresses: 'zk-0:2181,zk-1:2181', session_timeout: 30s}\n",
    )]);
    let text = format!("{JOB}fault_tolerant: true\nzookeeper:\n  root: /apps/t2\n");
    let f = flags(&["zookeeper.session_timeout=5000"]);
    let s = load_job_spec("local", Some(dir.path()), Some(&job(&text)), &f).expect("loads");
    assert!(s.fault_tolerant);
    assert_eq!(s.zookeeper.addresses, "zk-0:2181,zk-1:2181");
    assert_eq!(s.zookeeper.root, "/apps/t2");
    assert_eq!(s.zookeeper.session_timeout, Duration::from_secs(5));
    // Addresses alone do not turn fault tolerance on; `-D` text is taken as given.
    let s = ok(
        JOB,
        &["zookeeper.addresses=[::1]:2181", "zookeeper.root=/x"],
    );
    assert!(!s.fault_tolerant);
    assert_eq!(s.zookeeper.addresses, "[::1]:2181");
    assert_eq!(s.zookeeper.root, "/x");
    // A null or empty address list is none.
    let s = ok(&format!("{JOB}zookeeper: {{addresses: }}\n"), &[]);
    assert_eq!(s.zookeeper.addresses, "");
    let s = ok(JOB, &["zookeeper.addresses=a:1", "zookeeper.addresses="]);
    assert_eq!(s.zookeeper.addresses, "");
    let s = ok(&format!("{JOB}zookeeper:\n"), &[]);
    assert_eq!(s.zookeeper, ZooKeeperSpec::default());
    // The spec round-trips with its ZooKeeper settings.
    let s = ok(JOB, &["fault_tolerant=true", "zookeeper.addresses=zk:2181"]);
    let back: JobSpec =
        serde_json::from_str(&serde_json::to_string(&s).expect("encode")).expect("decode");
    assert_eq!(back, s);
}

#[test]
fn fault_tolerance_values_are_checked() {
    let e = err(&format!("{JOB}fault_tolerant: yes\n"), &[]);
    assert_eq!(
        e.to_string(),
        "job.yaml: 'fault_tolerant' must be true or false, got 'yes'"
    );
    let e = err(JOB, &["fault_tolerant=1"]);
    assert_eq!(
        bad_value(&e),
        (
            "-D fault_tolerant=1",
            "fault_tolerant",
            "must be true or false, got 1"
        )
    );
    let e = err(JOB, &["fault_tolerant=on"]);
    assert_eq!(bad_value(&e).2, "must be true or false, got 'on'");
    let e = err(JOB, &["zookeeper.addresses=zk1:2181,zk2"]);
    assert_eq!(
        e.to_string(),
        "-D zookeeper.addresses=zk1:2181,zk2: 'zookeeper.addresses' has a bad entry 'zk2': expected host:port such as 127.0.0.1:2181"
    );
    let cases = [
        (
            "addresses: 'zk:0'",
            "zookeeper.addresses",
            "bad entry 'zk:0': the port must be a number from 1 to 65535",
        ),
        (
            "addresses: 'a:2181,zk:70000'",
            "zookeeper.addresses",
            "bad entry 'zk:70000': the port",
        ),
        (
            "addresses: 'a:2181, b:2181'",
            "zookeeper.addresses",
            "bad entry ' b:2181': remove the spaces",
        ),
        (
            "addresses: 'a:2181,'",
            "zookeeper.addresses",
            "bad entry ''",
        ),
        ("addresses: 2181", "zookeeper.addresses", "must be text"),
        (
            "root: t2",
            "zookeeper.root",
            "starting with '/', such as /t2, got 't2'",
        ),
        (
            "root: /t2/",
            "zookeeper.root",
            "must not end with '/': write '/t2'",
        ),
        ("root: /", "zookeeper.root", "not '/' itself"),
        ("root: /a//b", "zookeeper.root", "got '/a//b'"),
        ("root: /my job", "zookeeper.root", "got '/my job'"),
        (
            "root: ",
            "zookeeper.root",
            "must be a znode path such as /t2, got nothing",
        ),
        (
            "session_timeout: 500ms",
            "zookeeper.session_timeout",
            "must be from 1s to 10m, got 500ms",
        ),
        (
            "session_timeout: 1h",
            "zookeeper.session_timeout",
            "must be from 1s to 10m, got 1h",
        ),
        (
            "session_timeout: soon",
            "zookeeper.session_timeout",
            "must be a duration",
        ),
    ];
    for (line, want_key, want) in cases {
        let e = err(&format!("{JOB}zookeeper: {{{line}}}\n"), &[]);
        let (file, key, msg) = bad_value(&e);
        assert_eq!((file, key), ("job.yaml", want_key), "{line}");
        assert!(msg.contains(want), "{line}: {msg}");
    }
    let e = err(JOB, &["zookeeper.session_timeout=999"]);
    assert_eq!(
        e.to_string(),
        "-D zookeeper.session_timeout=999: 'zookeeper.session_timeout' must be from 1s to 10m, got 999ms"
    );
    let e = err(&format!("{JOB}zookeeper: [a:1]\n"), &[]);
    assert!(
        bad_value(&e)
            .2
            .starts_with("must be a map such as {addresses:"),
        "{e}"
    );
}

#[test]
fn unknown_zookeeper_keys_suggest_the_closest() {
    let e = err(&format!("{JOB}zookeeper: {{adresses: 'a:1'}}\n"), &[]);
    assert_eq!(
        e.to_string(),
        "job.yaml: unknown key 'zookeeper.adresses'; did you mean 'zookeeper.addresses'?"
    );
    let e = err(JOB, &["zookeeper.session_timout=5s"]);
    assert_eq!(
        e.to_string(),
        "-D zookeeper.session_timout=5s: unknown key 'zookeeper.session_timout'; did you mean 'zookeeper.session_timeout'?"
    );
    let e = err(&format!("{JOB}zookeeper: {{chroot: /x}}\n"), &[]);
    assert!(
        e.to_string().ends_with("did you mean 'zookeeper.root'?"),
        "{e}"
    );
    let e = err(&format!("{JOB}zookeeper: {{servers: 'a:1'}}\n"), &[]);
    assert!(
        matches!(&e, SpecError::UnknownKey { key, suggestion: None, .. } if key == "zookeeper.servers"),
        "{e}"
    );
    let e = err(&format!("{JOB}fault_tolerance: true\n"), &[]);
    assert_eq!(
        e.to_string(),
        "job.yaml: unknown key 'fault_tolerance'; did you mean 'fault_tolerant'?"
    );
}

#[test]
fn fault_tolerance_needs_zookeeper_addresses() {
    let e = err(JOB, &["fault_tolerant=true"]);
    assert_eq!(
        missing(&e),
        (
            "-D fault_tolerant=true",
            "zookeeper.addresses",
            "fault_tolerant: true needs zookeeper.addresses, e.g. -D zookeeper.addresses=127.0.0.1:2181"
        )
    );
    assert_eq!(
        e.to_string(),
        "-D fault_tolerant=true: 'zookeeper.addresses' is required; fault_tolerant: true needs zookeeper.addresses, e.g. -D zookeeper.addresses=127.0.0.1:2181"
    );
    let e = err(
        &format!("{JOB}fault_tolerant: true\n"),
        &["zookeeper.addresses="],
    );
    assert_eq!(missing(&e).0, "job.yaml");
    // Turned off again, it needs nothing.
    let s = ok(
        &format!("{JOB}fault_tolerant: true\n"),
        &["fault_tolerant=false"],
    );
    assert!(!s.fault_tolerant);
}

#[test]
fn twister2_zookeeper_aliases() {
    let text = format!(
        "{JOB}twister2.fault.tolerant: true\n\
         twister2.resource.zookeeper.root.node.path: /twister2\n\
         twister2.fault.tolerance.failure.timeout: 15000\n\
         zookeeper: {{addresses: 'zk:2181'}}\n"
    );
    let s = ok(&text, &[]);
    assert!(s.fault_tolerant);
    assert_eq!(s.zookeeper.root, "/twister2");
    assert_eq!(s.zookeeper.session_timeout, Duration::from_secs(15));
    assert_eq!(s.zookeeper.addresses, "zk:2181");
    // The docs' spelling of the root key.
    let s = ok(JOB, &["twister2.zookeeper.root.node.path=/tw2/jobs"]);
    assert_eq!(s.zookeeper.root, "/tw2/jobs");
    // The server list, which also turns fault tolerance on (as in Twister2).
    let s = ok(&format!("{JOB}{ZK_ALIAS}: 'zk-0:2181,zk-1:2181'\n"), &[]);
    assert!(s.fault_tolerant);
    assert_eq!(s.zookeeper.addresses, "zk-0:2181,zk-1:2181");
    let s = ok(JOB, &[&format!("{ZK_ALIAS}=127.0.0.1:2181")]);
    assert!(s.fault_tolerant);
    assert_eq!(s.zookeeper.addresses, "127.0.0.1:2181");
    // From a cluster file too, although conf/local/job.yaml says `fault_tolerant: false`.
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let f = flags(&[&format!("{ZK_ALIAS}=zk:2181")]);
    let s = load_job_spec("local", Some(&conf), Some(&job(JOB)), &f).expect("loads");
    assert!(s.fault_tolerant);
    let dir = conf_dir(&[(
        "site.yaml",
        &format!("{ZK_ALIAS}: zk:2181\nfault_tolerant: false\n"),
    )]);
    let s = load_job_spec("local", Some(dir.path()), Some(&job(JOB)), &[]).expect("loads");
    assert!(s.fault_tolerant);
    // Unless the job itself says false, before or after.
    for (text, f) in [
        (
            format!("{JOB}fault_tolerant: false\n{ZK_ALIAS}: zk:2181\n"),
            vec![],
        ),
        (
            format!("{JOB}fault_tolerant: false\n"),
            vec![format!("{ZK_ALIAS}=zk:2181")],
        ),
        (
            format!("{JOB}{ZK_ALIAS}: zk:2181\n"),
            vec!["fault_tolerant=false".to_string()],
        ),
        (
            format!("{JOB}twister2.fault.tolerant: false\n{ZK_ALIAS}: zk:2181\n"),
            vec![],
        ),
    ] {
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        let s = ok(&text, &f);
        assert!(!s.fault_tolerant, "{text} {f:?}");
        assert_eq!(s.zookeeper.addresses, "zk:2181");
    }
    let s = load_job_spec(
        "local",
        Some(dir.path()),
        Some(&job(JOB)),
        &flags(&["fault_tolerant=false"]),
    )
    .expect("loads");
    assert!(!s.fault_tolerant);
    // An empty list turns nothing on; a later empty zookeeper.addresses cancels it.
    let s = ok(JOB, &[&format!("{ZK_ALIAS}=")]);
    assert!(!s.fault_tolerant);
    let s = ok(
        &format!("{JOB}{ZK_ALIAS}: zk:2181\n"),
        &["zookeeper.addresses="],
    );
    assert!(!s.fault_tolerant);
    let s = ok(
        &format!("{JOB}{ZK_ALIAS}: zk:2181\n"),
        &["zookeeper.addresses=other:2181"],
    );
    assert!(s.fault_tolerant);
    assert_eq!(s.zookeeper.addresses, "other:2181");
    // The aliases' values are checked like the t2 keys'.
    let e = err(&format!("{JOB}{ZK_ALIAS}: 'zk:0'\n"), &[]);
    assert_eq!(
        bad_value(&e),
        (
            "job.yaml",
            ZK_ALIAS,
            "has a bad entry 'zk:0': the port must be a number from 1 to 65535"
        )
    );
    let e = err(&format!("{JOB}twister2.fault.tolerant: yes\n"), &[]);
    assert_eq!(bad_value(&e).1, "twister2.fault.tolerant");
    let e = err(JOB, &["twister2.zookeeper.root.node.path=twister2"]);
    assert!(bad_value(&e).2.contains("starting with '/'"), "{e}");
    let e = err(JOB, &["twister2.fault.tolerance.failure.timeout=100"]);
    assert_eq!(bad_value(&e).2, "must be from 1s to 10m, got 100ms");
    // Two names for one key in one place.
    let e = err(
        &format!("{JOB}twister2.zookeeper.root.node.path: /a\ntwister2.resource.zookeeper.root.node.path: /b\n"),
        &[],
    );
    assert!(bad_value(&e).2.contains("keep one of them"), "{e}");
    let e = err(
        &format!("{JOB}zookeeper: {{addresses: 'a:1'}}\n{ZK_ALIAS}: b:1\n"),
        &[],
    );
    assert!(bad_value(&e).2.contains("keep one of them"), "{e}");
    for alias in [
        "twister2.fault.tolerant",
        ZK_ALIAS,
        "twister2.resource.zookeeper.root.node.path",
        "twister2.zookeeper.root.node.path",
    ] {
        assert!(
            twister2_aliases().iter().any(|(a, _)| *a == alias),
            "{alias}"
        );
    }
    assert!(twister2_aliases().contains(&(
        "twister2.fault.tolerance.failure.timeout",
        "zookeeper.session_timeout"
    )));
}

#[test]
fn mpi_is_off_by_default_and_turned_on_by_true_or_a_map() {
    let spec = ok(JOB, &[]);
    assert_eq!(spec.mpi, MpiSpec::default());
    assert!(!spec.mpi.enabled);
    let on = ok(&format!("{JOB}mpi: true\n"), &[]);
    assert!(on.mpi.enabled);
    assert_eq!(on.mpi.slots_per_worker, 1);
    let map = ok(
        &format!("{JOB}mpi: {{slots_per_worker: 2, mpirun_args: [--bind-to, none]}}\n"),
        &[],
    );
    assert!(map.mpi.enabled);
    assert_eq!(map.mpi.slots_per_worker, 2);
    assert_eq!(map.mpi.mpirun_args, vec!["--bind-to", "none"]);
    // -D with a dotted key turns it on too, and -D mpi=false turns it back off.
    let flag = ok(JOB, &["mpi.slots_per_worker=2"]);
    assert!(flag.mpi.enabled);
    assert_eq!(flag.mpi.slots_per_worker, 2);
    let off = ok(
        &format!("{JOB}mpi: {{slots_per_worker: 3}}\n"),
        &["mpi=false"],
    );
    assert!(!off.mpi.enabled);
    assert_eq!(off.mpi.slots_per_worker, 3);
    let args = ok(JOB, &["mpi.mpirun_args=[--bind-to, none]"]);
    assert!(args.mpi.enabled);
    assert_eq!(args.mpi.mpirun_args, vec!["--bind-to", "none"]);
    // A map that says enabled: false keeps it off (a site default of the slot count).
    let site = ok(
        &format!("{JOB}mpi: {{enabled: false, slots_per_worker: 4}}\n"),
        &[],
    );
    assert!(!site.mpi.enabled);
}

#[test]
fn bad_mpi_values_are_one_line_each() {
    let e = err(&format!("{JOB}mpi: yes\n"), &[]);
    let (file, key, message) = bad_value(&e);
    assert_eq!((file, key), ("job.yaml", "mpi"));
    assert!(message.contains("must be true, or a map"), "{message}");
    let e = err(&format!("{JOB}mpi: {{slots_per_worker: 0}}\n"), &[]);
    assert_eq!(
        e.to_string(),
        "job.yaml: 'mpi.slots_per_worker' must be at least 1, got 0"
    );
    let e = err(JOB, &["mpi.slots_per_worker=2000"]);
    assert!(e.to_string().contains("must be at most 1024"), "{e}");
    let e = err(&format!("{JOB}mpi: {{slot_per_worker: 2}}\n"), &[]);
    assert_eq!(
        e.to_string(),
        "job.yaml: unknown key 'mpi.slot_per_worker'; did you mean 'mpi.slots_per_worker'?"
    );
    let e = err(&format!("{JOB}mpi: {{mpirun_args: [[a]]}}\n"), &[]);
    assert!(e.to_string().contains("item 1 is a list"), "{e}");
}

#[test]
fn tls_is_off_locally_and_on_for_kubernetes_by_default_and_a_job_may_choose() {
    let local = load_job_spec("local", None, Some(&job(JOB)), &[]).expect("loads");
    assert!(!local.tls);
    let kube = load_job_spec("kubernetes", None, Some(&job(JOB)), &[]).expect("loads");
    assert!(kube.tls, "on for kubernetes without any conf folder");
    let off = load_job_spec("kubernetes", None, Some(&job(JOB)), &["tls=false".into()]);
    assert!(!off.expect("loads").tls);
    let on = load_job_spec("local", None, Some(&job(&format!("{JOB}tls: true\n"))), &[]);
    assert!(on.expect("loads").tls);
    let bad = load_job_spec("local", None, Some(&job(JOB)), &["tls=yes please".into()]);
    assert!(bad.unwrap_err().to_string().contains("tls"));
}

#[test]
fn resource_limits_are_read_from_the_spec_and_from_flags_and_merge_key_by_key() {
    let s = ok(
        &format!("{JOB}resources: {{cpu: 1, limits: {{cpu: 4, memory_mb: 2048}}}}\n"),
        &[],
    );
    assert_eq!(s.resources.cpu, 1.0);
    assert_eq!(
        s.resources.limits,
        ResourceLimits {
            cpu: Some(4.0),
            memory_mb: Some(2048)
        }
    );
    // A flag sets one limit; the other stays as the spec set it.
    let s = ok(
        &format!("{JOB}resources: {{limits: {{cpu: 4, memory_mb: 2048}}}}\n"),
        &["resources.limits.cpu=2500m"],
    );
    assert_eq!(s.resources.limits.cpu, Some(2.5));
    assert_eq!(s.resources.limits.memory_mb, Some(2048));
    let s = ok(JOB, &["resources.limits={memory_mb: 1024}"]);
    assert_eq!(s.resources.limits.memory_mb, Some(1024));
    assert_eq!(s.resources.limits.cpu, None);
    // No limits: none in the spec's JSON either (specs of older versions read the same).
    let s = ok(JOB, &[]);
    assert!(s.resources.limits.is_empty());
    let json = serde_json::to_value(&s).expect("json");
    assert!(json["resources"].get("limits").is_none(), "{json}");
    assert!(known_keys().iter().any(|k| k == "resources.limits.cpu"));
}

#[test]
fn resource_limits_below_their_request_or_unknown_are_one_line_errors() {
    let e = err(
        &format!("{JOB}resources: {{cpu: 2, limits: {{cpu: 1}}}}\n"),
        &[],
    );
    let (_, key, message) = bad_value(&e);
    assert_eq!(key, "resources.limits.cpu");
    assert!(message.contains("at least resources.cpu (2)"), "{message}");
    let e = err(JOB, &["resources.limits.memory_mb=100"]);
    let (file, key, message) = bad_value(&e);
    assert_eq!(key, "resources.limits.memory_mb");
    assert!(file.contains("-D"), "{file}");
    assert!(
        message.contains("at least resources.memory_mb (512)"),
        "{message}"
    );
    let e = err(&format!("{JOB}resources: {{limits: {{gpu: 1}}}}\n"), &[]);
    assert!(e.to_string().contains("resources.limits.gpu"), "{e}");
    let e = err(&format!("{JOB}resources: {{limits: 4}}\n"), &[]);
    assert!(e.to_string().contains("resources.limits"), "{e}");
    let e = err(JOB, &["resources.limits.cpu=lots"]);
    assert!(e.to_string().contains("resources.limits.cpu"), "{e}");
}
