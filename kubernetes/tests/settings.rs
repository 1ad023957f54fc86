//! The `kubernetes` section of a job spec: layered like every key, and every bad value is one
//! line naming the key and what to write.

mod support;

use support::jobs::spec;
use t2_kubernetes::read_settings;
use t2_kubernetes::settings::{Gang, PullPolicy, Spread, UploadMethod};

fn err(yaml: &str) -> String {
    let s = spec(&format!("name: x\ncommand: [./x]\n{yaml}"), &[]);
    let e = read_settings(&s)
        .expect_err("should be rejected")
        .to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn defaults_and_overrides_from_the_command_line() {
    let s = spec(
        "name: x\ncommand: [./x]\nkubernetes: {image: a/b:1, spread: nodes}\n",
        &[
            "kubernetes.image=registry.local:5000/t2:dev",
            "kubernetes.storage.size_mb=100",
            "kubernetes.package_timeout=90s",
        ],
    );
    let k = read_settings(&s).unwrap();
    assert_eq!(k.image, "registry.local:5000/t2:dev");
    assert_eq!(k.spread, Spread::Nodes);
    assert_eq!(k.image_pull_policy, PullPolicy::IfNotPresent);
    assert_eq!(k.upload, UploadMethod::Auto);
    assert_eq!(k.storage.as_ref().unwrap().size_mb, 100);
    assert_eq!(k.storage.as_ref().unwrap().mount, "/t2/persistent");
    assert_eq!(k.package_timeout, std::time::Duration::from_secs(90));
    assert_eq!(k.service_account, "", "empty: the job's own ServiceAccount");
    assert_eq!(
        (k.rack_label.as_str(), k.datacenter_label.as_str()),
        (
            "topology.kubernetes.io/zone",
            "topology.kubernetes.io/region"
        )
    );
}

#[test]
fn bad_settings_are_named() {
    let cases = [
        (
            "kubernetes: {imag: x}",
            "kubernetes.imag: unknown key; did you mean 'kubernetes.image'?",
        ),
        (
            "kubernetes: {image: 'Foo Bar'}",
            "kubernetes.image: 'Foo Bar' is not a valid image reference",
        ),
        (
            "kubernetes: {image: 'ghcr.io/Team/t2'}",
            "is not a valid image reference",
        ),
        (
            "kubernetes: {image_pull_policy: Sometimes}",
            "kubernetes.image_pull_policy: unknown value `Sometimes`",
        ),
        (
            "kubernetes: {storage: {size_mb: 0}}",
            "kubernetes.storage.size_mb: must be at least 1",
        ),
        (
            "kubernetes: {storage: {size: 1}}",
            "kubernetes.storage.size: unknown key; did you mean 'kubernetes.storage.size_mb'?",
        ),
        (
            "kubernetes: {storage: {size_mb: 1, mount: /t2/work/x}}",
            "kubernetes.storage.mount: '/t2/work/x' must be an absolute folder",
        ),
        (
            "kubernetes: {storage: {size_mb: 1, mount: relative}}",
            "must be an absolute folder",
        ),
        (
            "kubernetes: {secrets: [{name: s3}]}",
            "kubernetes.secrets[0]: say how to give Secret 's3' to workers",
        ),
        (
            "kubernetes: {secrets: [{name: S3_Creds, env: true}]}",
            "kubernetes.secrets[0].name: 'S3_Creds' is not a valid Kubernetes name",
        ),
        (
            "kubernetes: {node_selector: {'bad key!': x}}",
            "kubernetes.node_selector: 'bad key!' is not a valid label key",
        ),
        (
            "kubernetes: {affinity: {nodeAffinty: {}}}",
            "kubernetes.affinity: 'nodeAffinty' is not a field Kubernetes knows here",
        ),
        (
            "kubernetes: {tolerations: [{key: a, operater: Exists}]}",
            "kubernetes.tolerations[0]: 'operater' is not a field",
        ),
        (
            "kubernetes: {spread: everywhere}",
            "kubernetes.spread: unknown value `everywhere`",
        ),
        (
            "kubernetes: {datacenter_label: 'my site'}",
            "kubernetes.datacenter_label: 'my site' is not a valid label key",
        ),
        (
            "kubernetes: {datacenter_lable: x}",
            "kubernetes.datacenter_lable: unknown key; did you mean 'kubernetes.datacenter_label'?",
        ),
        ("kubernetes: {port: 0}", "kubernetes.port: must be 1-65535"),
        ("kubernetes: {port: 70000}", "kubernetes.port:"),
        (
            "kubernetes: {parallel_uploads: 0}",
            "kubernetes.parallel_uploads: must be 1-256",
        ),
        (
            "kubernetes: {package_timeout: soon}",
            "kubernetes.package_timeout:",
        ),
        (
            "kubernetes: {package_timeout: 8d}",
            "kubernetes.package_timeout: must be from 1ms to 7days, got 8days",
        ),
        (
            "kubernetes: {start_timeout: 18000000000000000000s}",
            "kubernetes.start_timeout: 18000000000000000000s is too long: at most 1year",
        ),
        (
            "kubernetes: {uploader_selector: 'no selector'}",
            "kubernetes.uploader_selector:",
        ),
        (
            "kubernetes: {jobmaster: {cpu: 0}}",
            "kubernetes.jobmaster.cpu: must be between 0 and 1024",
        ),
    ];
    for (yaml, want) in cases {
        let e = err(yaml);
        assert!(e.contains(want), "{yaml}\n  got:  {e}\n  want: {want}");
    }
}

#[test]
fn mpi_jobs_get_the_mpi_image_one_worker_per_pod_and_an_optional_ssh_secret() {
    let s = spec("name: x\ncommand: [./x]\nmpi: true\n", &[]);
    let k = read_settings(&s).unwrap();
    assert_eq!(k.image, format!("t2:{}-mpi", env!("CARGO_PKG_VERSION")));
    assert_eq!(k.mpi_ssh_secret, "");
    let s = spec(
        "name: x\ncommand: [./x]\nmpi: true\n",
        &["kubernetes.mpi_ssh_secret=twister2-openmpi-ssh-key"],
    );
    assert_eq!(
        read_settings(&s).unwrap().mpi_ssh_secret,
        "twister2-openmpi-ssh-key"
    );
    let e = err("mpi: true\nworkers: 4\nworkers_per_pod: 2\n");
    assert!(
        e.contains("workers_per_pod") && e.contains("must be 1 for an MPI job"),
        "{e}"
    );
    let e = err("kubernetes: {mpi_ssh_secret: keys}\n");
    assert!(e.contains("is for MPI jobs only"), "{e}");
    let e = err("mpi: true\nkubernetes: {mpi_ssh_secret: Bad_Name}\n");
    assert!(e.contains("kubernetes.mpi_ssh_secret"), "{e}");
}

/// Issue 18 (res18): `kubernetes.volumes`, `allow_host_path` and `work_volume_mb`.
#[test]
fn existing_volumes_are_read_and_checked() {
    let s = spec(
        "name: x\ncommand: [./x]\nkubernetes:\n  allow_host_path: true\n  work_volume_mb: 2048\n  volumes:\n    - {claim: reference, mount: /data, read_only: true}\n    - {claim: out, mount: /out/}\n    - {host_path: /var/cache/t2, mount: /cache}\n",
        &[],
    );
    let k = read_settings(&s).unwrap();
    assert_eq!(k.volumes.len(), 3);
    assert_eq!(k.volumes[0].claim.as_deref(), Some("reference"));
    assert!(k.volumes[0].read_only);
    assert!(!k.volumes[1].read_only, "read-write unless asked");
    assert_eq!(k.volumes[2].host_path.as_deref(), Some("/var/cache/t2"));
    assert!(k.allow_host_path);
    assert_eq!(k.work_volume_mb, 2048);
    let k = read_settings(&spec("name: x\ncommand: [./x]\n", &[])).unwrap();
    assert!(k.volumes.is_empty() && !k.allow_host_path && k.work_volume_mb == 0);
}

#[test]
fn bad_volumes_are_named_on_one_line() {
    let cases = [
        (
            "kubernetes: {volumes: [{host_path: /data, mount: /data}]}",
            "kubernetes.volumes[0].host_path: mounting a node's folder is refused unless kubernetes.allow_host_path is true",
        ),
        (
            "kubernetes: {allow_host_path: true, volumes: [{host_path: /, mount: /node}]}",
            "kubernetes.volumes[0].host_path: '/' must be an absolute folder of the node other than /",
        ),
        (
            "kubernetes: {allow_host_path: true, volumes: [{host_path: data/x, mount: /x}]}",
            "kubernetes.volumes[0].host_path: 'data/x' must be an absolute folder",
        ),
        (
            "kubernetes: {allow_host_path: true, volumes: [{host_path: /a/../etc, mount: /x}]}",
            "kubernetes.volumes[0].host_path:",
        ),
        (
            "kubernetes: {volumes: [{claim: data, host_path: /d, mount: /d}]}",
            "kubernetes.volumes[0]: give either claim: NAME",
        ),
        (
            "kubernetes: {volumes: [{mount: /d}]}",
            "kubernetes.volumes[0]: give either claim: NAME",
        ),
        (
            "kubernetes: {volumes: [{claim: Data_1, mount: /d}]}",
            "kubernetes.volumes[0].claim: 'Data_1' is not a valid Kubernetes name",
        ),
        (
            "kubernetes: {volumes: [{claim: data}]}",
            "kubernetes.volumes: missing field `mount`",
        ),
        (
            "kubernetes: {volumes: [{claim: data, mount: /d, readonly: true}]}",
            "kubernetes.volumes[0].readonly: unknown key; did you mean 'kubernetes.volumes[0].read_only'?",
        ),
        (
            "kubernetes: {volumes: [{claim: data, mount: relative}]}",
            "kubernetes.volumes[0].mount: 'relative' must be an absolute folder",
        ),
        (
            "kubernetes: {volumes: [{claim: data, mount: /t2}]}",
            "kubernetes.volumes[0].mount: '/t2' must be an absolute folder",
        ),
        (
            "kubernetes: {volumes: [{claim: data, mount: /data/../t2/work}]}",
            "kubernetes.volumes[0].mount:",
        ),
        (
            "kubernetes: {volumes: [{claim: data, mount: /tmp}]}",
            "kubernetes.volumes[0].mount: '/tmp' is already mounted by t2 (the workers' /tmp)",
        ),
        (
            "kubernetes: {volumes: [{claim: a, mount: /data}, {claim: b, mount: /data/}]}",
            "kubernetes.volumes[1].mount: '/data/' is already mounted by kubernetes.volumes[0].mount",
        ),
        (
            "kubernetes: {storage: {size_mb: 1, mount: /data}, volumes: [{claim: a, mount: /data}]}",
            "kubernetes.volumes[0].mount: '/data' is already mounted by kubernetes.storage.mount",
        ),
        (
            "kubernetes: {memory_volume_mb: 64, volumes: [{claim: a, mount: /t2/memory}]}",
            "'/t2/memory' is already mounted by kubernetes.memory_volume_mb",
        ),
        (
            "kubernetes: {secrets: [{name: s, mount: /tmp}]}",
            "kubernetes.secrets[0].mount: '/tmp' is already mounted by t2",
        ),
        (
            "kubernetes: {allow_host_path: maybe}",
            "kubernetes.allow_host_path:",
        ),
        ("kubernetes: {volume: []}", "did you mean 'kubernetes.volumes'?"),
    ];
    for (yaml, want) in cases {
        let e = err(yaml);
        assert!(e.contains(want), "{yaml}\n  got:  {e}\n  want: {want}");
    }
}

/// Issue 18 (gang18): gang scheduling, queues, priority, scheduler, labels and annotations.
#[test]
fn gang_queue_priority_labels_and_annotations_are_checked() {
    let s = spec("name: x\ncommand: [./x]\n", &[]);
    let k = read_settings(&s).unwrap();
    assert_eq!(k.gang, Gang::None);
    assert_eq!(k.queue_timeout, std::time::Duration::from_secs(3600));
    let s = spec(
        "name: x\ncommand: [./x]\nkubernetes: {gang: volcano, labels: {example.com/team: ml}}\n",
        &[
            "kubernetes.queue_timeout=90s",
            "kubernetes.priority_class=high",
        ],
    );
    let k = read_settings(&s).unwrap();
    assert_eq!(k.gang, Gang::Volcano);
    assert_eq!(k.queue_timeout, std::time::Duration::from_secs(90));
    assert_eq!(k.priority_class, "high");
    assert_eq!(k.labels["example.com/team"], "ml");
    let cases = [
        (
            "kubernetes: {gang: slurm}",
            "kubernetes.gang: unknown value `slurm`, expected one of `none`, `volcano`, `kueue`",
        ),
        (
            "kubernetes: {gang: kueue}",
            "kubernetes.queue: is required with kubernetes.gang: kueue",
        ),
        (
            "kubernetes: {queue: research}",
            "kubernetes.queue: is for gang scheduling: set kubernetes.gang to volcano or kueue too",
        ),
        (
            "kubernetes: {gang: volcano, queue: Research_Q}",
            "kubernetes.queue: 'Research_Q' is not a valid queue name",
        ),
        (
            "kubernetes: {gang: volcano, queue_timeout: 8d}",
            "kubernetes.queue_timeout: must be from 1ms to 7days, got 8days",
        ),
        (
            "kubernetes: {priority_class: 'High Priority'}",
            "kubernetes.priority_class: 'High Priority' is not a valid Kubernetes name",
        ),
        (
            "kubernetes: {labels: {'bad key!': x}}",
            "kubernetes.labels: the key 'bad key!' is not a valid label key: write a name of at most 63 letters",
        ),
        (
            "kubernetes: {labels: {team: 'ml infra'}}",
            "kubernetes.labels: the value 'ml infra' of label 'team' is not a valid label value",
        ),
        (
            "kubernetes: {labels: {t2.io/job: x}}",
            "kubernetes.labels: the key 't2.io/job' is set by t2 itself; choose another key",
        ),
        (
            "kubernetes: {labels: {kueue.x-k8s.io/queue-name: q}}",
            "set kubernetes.queue (with kubernetes.gang: kueue) instead",
        ),
        (
            "kubernetes: {annotations: {'-x': y}}",
            "kubernetes.annotations: the key '-x' is not a valid annotation key",
        ),
        (
            "kubernetes: {annotations: {scheduling.k8s.io/group-name: g}}",
            "kubernetes.annotations: the key 'scheduling.k8s.io/group-name' is set by t2 itself; set kubernetes.gang: volcano instead",
        ),
        (
            "kubernetes: {lables: {a: b}}",
            "kubernetes.lables: unknown key; did you mean 'kubernetes.labels'?",
        ),
    ];
    for (yaml, want) in cases {
        let e = err(yaml);
        assert!(e.contains(want), "{yaml}\n  got:  {e}\n  want: {want}");
    }
}
