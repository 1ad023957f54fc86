//! The object model without a cluster: golden `--dry-run -o yaml` output of the
//! representative jobs (regenerate with `UPDATE_GOLDEN=1`), the properties every object must
//! have (owner, labels, selectors, security), and names that stay DNS-1123 labels.

mod support;

use std::path::PathBuf;

use support::jobs;
use t2_kubernetes::manifests::{build_objects, to_yaml, Object};

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/kubernetes")
        .join(format!("{name}.yaml"))
}

#[test]
fn dry_run_yaml_matches_the_golden_files() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for job in jobs::all() {
        // As `t2 submit --dry-run` prints them: placeholders for the token and the root's uid.
        let info = job.info.clone().with_placeholders();
        let yaml = to_yaml(&build_objects(&info, &job.spec, &job.settings));
        let path = golden_path(job.name);
        if update {
            std::fs::write(&path, &yaml).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
                path.display()
            )
        });
        if want != yaml {
            let line = want
                .lines()
                .zip(yaml.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(want.lines().count().min(yaml.lines().count()));
            panic!(
                "{} differs from the generated objects at line {}:\n  golden:    {:?}\n  generated: {:?}\n(run with UPDATE_GOLDEN=1 to accept the new output)",
                path.display(),
                line + 1,
                want.lines().nth(line),
                yaml.lines().nth(line)
            );
        }
    }
}

fn json_of(objects: &[Object]) -> Vec<serde_json::Value> {
    objects.iter().map(Object::to_json).collect()
}

#[test]
fn the_root_comes_first_and_owns_everything_else_with_the_job_labels() {
    for job in jobs::all() {
        let objects = json_of(&build_objects(&job.info, &job.spec, &job.settings));
        let root = &objects[0];
        assert_eq!(root["kind"], "ConfigMap");
        assert_eq!(root["metadata"]["name"], job.info.id.as_str());
        assert!(root["metadata"].get("ownerReferences").is_none());
        for o in &objects {
            let labels = &o["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/name"], "t2");
            assert_eq!(labels["t2.io/job"], job.info.id.as_str());
            assert_eq!(labels["t2.io/owner"], "alice");
            assert_eq!(o["metadata"]["namespace"], "t2-jobs");
        }
        for o in &objects[1..] {
            let refs = o["metadata"]["ownerReferences"].as_array().unwrap();
            assert_eq!(refs.len(), 1, "one owner: {}", o["metadata"]["name"]);
            assert_eq!(refs[0]["kind"], "ConfigMap");
            assert_eq!(refs[0]["name"], job.info.id.as_str());
            assert_eq!(refs[0]["controller"], true, "the root is the controller");
            assert_eq!(
                refs[0]["blockOwnerDeletion"], true,
                "a foreground delete of the root waits for it"
            );
        }
    }
}

fn statefulsets(objects: &[serde_json::Value]) -> (serde_json::Value, serde_json::Value) {
    let sts: Vec<_> = objects
        .iter()
        .filter(|o| o["kind"] == "StatefulSet")
        .collect();
    assert_eq!(sts.len(), 2);
    let jm = sts
        .iter()
        .find(|s| s["metadata"]["name"].as_str().unwrap().ends_with("-jm"))
        .unwrap();
    let w = sts
        .iter()
        .find(|s| !s["metadata"]["name"].as_str().unwrap().ends_with("-jm"))
        .unwrap();
    ((*w).clone(), (*jm).clone())
}

#[test]
fn worker_pods_are_parallel_tokenless_with_distinct_selectors_and_one_container_per_worker() {
    for job in jobs::all() {
        let objects = json_of(&build_objects(&job.info, &job.spec, &job.settings));
        let (w, jm) = statefulsets(&objects);
        assert_ne!(w["spec"]["selector"], jm["spec"]["selector"]);
        assert_eq!(w["spec"]["podManagementPolicy"], "Parallel");
        let pods = job.spec.workers / job.spec.workers_per_pod;
        assert_eq!(w["spec"]["replicas"], pods);
        let pod = &w["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["enableServiceLinks"], false);
        assert_eq!(jm["spec"]["template"]["spec"]["enableServiceLinks"], false);
        assert_eq!(
            jm["spec"]["template"]["spec"]["serviceAccountName"],
            format!("{}-jm", job.info.id),
            "the job's own ServiceAccount"
        );
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len() as u32, job.spec.workers_per_pod);
        for (i, c) in containers.iter().enumerate() {
            let env = c["env"].as_array().unwrap();
            let get = |n: &str| env.iter().find(|e| e["name"] == n).cloned();
            assert_eq!(get("T2_CONTAINER_INDEX").unwrap()["value"], i.to_string());
            assert_eq!(
                get("T2_WORKERS_PER_POD").unwrap()["value"],
                job.spec.workers_per_pod.to_string()
            );
            assert_eq!(
                get("T2_POD_NAME").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
                "metadata.name"
            );
            assert_eq!(
                get("T2_JOB_TOKEN").unwrap()["valueFrom"]["secretKeyRef"]["name"],
                format!("{}-token", job.info.id)
            );
        }
        let init = &pod["initContainers"][0];
        assert_eq!(init["name"], "t2-init");
        assert_eq!(init["command"], serde_json::json!(["t2", "pod", "init"]));
        let url = init["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "T2_PACKAGE_URL")
            .cloned();
        assert_eq!(url.is_some(), job.info.package_url.is_some());
        // The headless worker Service publishes pods before they are ready.
        let svc = objects
            .iter()
            .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == job.info.id.as_str())
            .unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert_eq!(svc["spec"]["publishNotReadyAddresses"], true);
        assert_eq!(
            svc["spec"]["selector"],
            w["spec"]["selector"]["matchLabels"]
        );
    }
}

#[test]
fn java_jobs_get_the_jre_image_by_default() {
    let jar = jobs::jar_two_per_pod();
    assert_eq!(
        jar.settings.image,
        format!("t2:{}-jre", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        jobs::plain().settings.image,
        format!("t2:{}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn every_name_from_the_longest_job_names_is_a_dns1123_label() {
    use t2_core::names::{is_dns1123_label, new_job_id, sanitize_job_name, MAX_NAME_LEN};
    use t2_kubernetes::names::JobNames;
    let longest = [
        "a".repeat(MAX_NAME_LEN),
        "z9".repeat(MAX_NAME_LEN),
        format!("{}-x", "b".repeat(MAX_NAME_LEN - 2)),
        "Very_Long.Job-Name_With_Ugly.Characters_And_More_2024".to_string(),
        format!("{}{}", "q-".repeat(40), "r"),
    ];
    for raw in longest {
        let name = sanitize_job_name(&raw).unwrap().name;
        assert!(name.len() <= MAX_NAME_LEN);
        for _ in 0..20 {
            let id = new_job_id(&name);
            t2_core::names::validate_job_id(&id).unwrap();
            for n in JobNames::new(&id).all_for_check() {
                assert!(
                    is_dns1123_label(&n),
                    "'{n}' ({} chars) from job name '{raw}'",
                    n.len()
                );
            }
            // And the names in the generated objects themselves.
            let mut job = jobs::storage_secrets_memory();
            job.info.id = id.clone();
            for o in build_objects(&job.info, &job.spec, &job.settings) {
                assert!(is_dns1123_label(&o.name()), "{} {}", o.kind(), o.name());
            }
        }
    }
}

#[test]
fn mpi_jobs_mount_the_ssh_secret_only_in_twister2s_mode() {
    let worker_pod = |job: &jobs::TestJob| {
        let objects = json_of(&build_objects(&job.info, &job.spec, &job.settings));
        objects
            .into_iter()
            .find(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == job.info.id.as_str())
            .expect("the worker StatefulSet")["spec"]["template"]["spec"]
            .clone()
    };
    let plain = worker_pod(&jobs::mpi());
    let agent = &plain["containers"][0];
    assert_eq!(
        agent["image"],
        format!("t2:{}-mpi", env!("CARGO_PKG_VERSION"))
    );
    assert!(!plain.to_string().contains("mpi-ssh"), "{plain}");
    assert!(agent.get("ports").is_none(), "{agent}");
    // The pods' one worker each is a host of its own; the agents get no API token.
    assert_eq!(plain["automountServiceAccountToken"], false);
    let ssh = worker_pod(&jobs::mpi_ssh());
    let volume = ssh["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "mpi-ssh")
        .expect("the SSH-key volume");
    assert_eq!(volume["secret"]["secretName"], "twister2-openmpi-ssh-key");
    let agent = &ssh["containers"][0];
    let mount = agent["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "mpi-ssh")
        .expect("mounted");
    assert_eq!(mount["mountPath"], "/etc/t2/mpi-ssh");
    assert_eq!(mount["readOnly"], true);
    let env = agent["env"].as_array().unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"] == "T2_MPI_SSH_DIR" && e["value"] == "/etc/t2/mpi-ssh"));
    // Readable by the pods' group only (the agent copies the keys with mode 0600 for ssh).
    assert_eq!(volume["secret"]["defaultMode"], 0o440);
    assert_eq!(
        agent["ports"],
        serde_json::json!([{"name": "mpi-ssh", "containerPort": 2222, "protocol": "TCP"}])
    );
}

#[test]
fn packing_is_pod_affinity_on_the_rack_label_preferred_or_required() {
    let packed = jobs::rack_packed();
    let objects = json_of(&build_objects(&packed.info, &packed.spec, &packed.settings));
    let (workers, _) = statefulsets(&objects);
    let pod = &workers["spec"]["template"]["spec"];
    let selector = &workers["spec"]["selector"]["matchLabels"];
    let preferred =
        &pod["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(preferred[0]["weight"], 100, "{pod}");
    let term = &preferred[0]["podAffinityTerm"];
    // The rack label came from Twister2's `rack.labey.key`; the pods attract the job's own.
    assert_eq!(term["topologyKey"], "example.com/rack");
    assert_eq!(&term["labelSelector"]["matchLabels"], selector);
    assert!(pod.get("topologySpreadConstraints").is_none());

    // Required, over nodes, added beside the user's own node affinity.
    let yaml = "name: a\ncommand: [./a]\nworkers: 2\nkubernetes:\n  pack: nodes\n  pack_strict: true\n  affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: disk, operator: In, values: [ssd]}]}]}}}\n";
    let spec = support::jobs::spec(yaml, &[]);
    let settings = t2_kubernetes::read_settings(&spec).expect("settings");
    let info = support::jobs::info("a-12345678", None);
    let objects = json_of(&build_objects(&info, &spec, &settings));
    let (workers, _) = statefulsets(&objects);
    let affinity = &workers["spec"]["template"]["spec"]["affinity"];
    let required = &affinity["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(
        required[0]["topologyKey"], "kubernetes.io/hostname",
        "{affinity}"
    );
    assert!(affinity["podAffinity"]
        .get("preferredDuringSchedulingIgnoredDuringExecution")
        .is_none());
    assert_eq!(
        affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"][0]["matchExpressions"][0]["key"],
        "disk"
    );
    // Packing and spreading contradict each other: one clear error.
    let both = support::jobs::spec(
        "name: a\ncommand: [./a]\nkubernetes: {pack: racks, spread: racks}\n",
        &[],
    );
    let e = t2_kubernetes::read_settings(&both).unwrap_err().to_string();
    assert!(
        e.contains("kubernetes.pack") && e.contains("cannot be used with kubernetes.spread"),
        "{e}"
    );
    let bad = support::jobs::spec("name: a\ncommand: [./a]\nkubernetes: {pack: zones}\n", &[]);
    let e = t2_kubernetes::read_settings(&bad).unwrap_err().to_string();
    assert!(e.contains("kubernetes.pack"), "{e}");
}

#[test]
fn a_tls_jobs_secret_holds_its_certificate_and_only_the_job_master_mounts_the_key() {
    for job in jobs::all() {
        let objects = json_of(&build_objects(&job.info, &job.spec, &job.settings));
        let secret = objects.iter().find(|o| o["kind"] == "Secret").unwrap();
        let data = &secret["stringData"];
        let (w, jm) = statefulsets(&objects);
        let jm_pod = &jm["spec"]["template"]["spec"];
        let w_pod = &w["spec"]["template"]["spec"];
        let env_of = |c: &serde_json::Value, name: &str| {
            c["env"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .cloned()
        };
        let jm_c = &jm_pod["containers"][0];
        let tls_volume = jm_pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "tls")
            .cloned();
        // Workers never see the job master's key: the only worker pod volume that reads the
        // token Secret is an MPI job's, with the agents' certificate and key alone.
        let secret_name = format!("{}-token", job.info.id);
        let mut agent_files = None;
        for v in w_pod["volumes"].as_array().unwrap() {
            if v["secret"]["secretName"] != secret_name.as_str() {
                continue;
            }
            assert!(job.spec.tls && job.spec.mpi.enabled, "{}: {v}", job.name);
            let items: Vec<&str> = v["secret"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["key"].as_str().unwrap())
                .collect();
            assert_eq!(items, ["agent.crt", "agent.key"], "{}", job.name);
            assert_eq!(v["secret"]["defaultMode"], 0o440);
            agent_files = Some(v["name"].clone());
        }
        if job.spec.tls && job.spec.mpi.enabled {
            let name = agent_files.unwrap_or_else(|| panic!("{}: no agent certificate", job.name));
            for c in w_pod["containers"].as_array().unwrap() {
                let m = c["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|m| m["name"] == name)
                    .unwrap_or_else(|| panic!("{}: agent certificate not mounted", job.name));
                assert_eq!(m["mountPath"], "/etc/t2/tls");
                assert_eq!(m["readOnly"], true);
            }
        }
        let url = env_of(&w_pod["containers"][0], "T2_JOB_MASTER").unwrap()["value"].clone();
        if !job.spec.tls {
            assert!(data.get("tls.key").is_none(), "{}", job.name);
            assert!(tls_volume.is_none(), "{}", job.name);
            assert!(url.as_str().unwrap().starts_with("http://"), "{url}");
            assert!(env_of(&w_pod["containers"][0], "T2_JOB_CA").is_none());
            continue;
        }
        for key in [
            "token",
            "ca.crt",
            "tls.crt",
            "tls.key",
            "agent.crt",
            "agent.key",
        ] {
            assert!(data[key].is_string(), "{}: no {key}", job.name);
        }
        let v = tls_volume.unwrap_or_else(|| panic!("{}: no tls volume", job.name));
        assert_eq!(v["secret"]["secretName"], secret_name.as_str());
        let items: Vec<_> = v["secret"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(items, ["ca.crt", "tls.crt", "tls.key"], "not the token");
        assert_eq!(v["secret"]["defaultMode"], 0o440);
        let mount = jm_c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == "tls")
            .unwrap()
            .clone();
        assert_eq!(mount["mountPath"], "/etc/t2/tls");
        assert_eq!(mount["readOnly"], true);
        assert_eq!(env_of(jm_c, "T2_TLS_DIR").unwrap()["value"], "/etc/t2/tls");
        assert_eq!(
            url,
            format!(
                "https://{}-jm.t2-jobs.svc:{}",
                job.info.id, job.settings.port
            )
        );
        for c in w_pod["containers"].as_array().unwrap() {
            let ca = env_of(c, "T2_JOB_CA").unwrap();
            assert_eq!(ca["valueFrom"]["secretKeyRef"]["key"], "ca.crt");
            assert_eq!(
                ca["valueFrom"]["secretKeyRef"]["name"],
                secret_name.as_str()
            );
        }
        let names = job.info.jobmaster_names();
        assert!(names.contains(&format!("{}-jm.t2-jobs.svc", job.info.id)));
        assert!(names.contains(&format!("{}-jm.t2-jobs.svc.cluster.local", job.info.id)));
    }
}

#[test]
fn network_policies_admit_only_the_jobs_pods_and_the_job_masters_port_only_from_workers() {
    for job in jobs::all() {
        let objects = json_of(&build_objects(&job.info, &job.spec, &job.settings));
        let nps: Vec<_> = objects
            .iter()
            .filter(|o| o["kind"] == "NetworkPolicy")
            .collect();
        if !job.settings.network_policy {
            assert!(nps.is_empty(), "{}: network_policy false", job.name);
            continue;
        }
        assert_eq!(nps.len(), 2, "{}", job.name);
        // Made before any pod can exist.
        let first_sts = objects.iter().position(|o| o["kind"] == "StatefulSet");
        let last_np = objects.iter().rposition(|o| o["kind"] == "NetworkPolicy");
        assert!(last_np < first_sts, "{}", job.name);
        let id = job.info.id.as_str();
        let workers = nps.iter().find(|n| n["metadata"]["name"] == id).unwrap();
        assert_eq!(
            workers["spec"]["podSelector"]["matchLabels"]["t2.io/role"],
            "worker"
        );
        assert_eq!(
            workers["spec"]["policyTypes"],
            serde_json::json!(["Ingress"])
        );
        let from = &workers["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"];
        assert_eq!(from, &serde_json::json!({"t2.io/job": id}));
        let jm = nps
            .iter()
            .find(|n| n["metadata"]["name"] == format!("{id}-jm"))
            .unwrap();
        assert_eq!(
            jm["spec"]["podSelector"]["matchLabels"]["t2.io/role"],
            "jobmaster"
        );
        let rule = &jm["spec"]["ingress"][0];
        assert_eq!(
            rule["from"][0]["podSelector"]["matchLabels"],
            serde_json::json!({"t2.io/job": id, "t2.io/role": "worker"})
        );
        assert_eq!(
            rule["ports"],
            serde_json::json!([{"port": job.settings.port, "protocol": "TCP"}])
        );
    }
}

#[test]
fn a_dry_run_shows_no_token_and_an_owner_uid_the_api_server_refuses() {
    for job in jobs::all() {
        let info = job.info.clone().with_placeholders();
        let yaml = to_yaml(&build_objects(&info, &job.spec, &job.settings));
        assert!(!yaml.contains(&job.info.token), "{}: the token", job.name);
        assert!(
            !yaml.contains("00000000-0000"),
            "{}: an all-zero uid",
            job.name
        );
        for o in json_of(&build_objects(&info, &job.spec, &job.settings))[1..].iter() {
            assert_eq!(
                o["metadata"]["ownerReferences"][0]["uid"], "",
                "{}",
                job.name
            );
        }
    }
}
