//! deploy/ and docker/ checked against the code: the job master's Role (and the optional node
//! reader ClusterRole) grant exactly what the job master uses and are bound to its
//! ServiceAccount alone; the submitter Role grants
//! everything `t2 doctor kubernetes` checks; nothing is bound to `system:authenticated`; the
//! namespace is set only in kustomization.yaml, which lists files that exist; the uploader
//! Service is what `t2 submit` looks for; the image runs as the uid the pod specs expect.
//! (`scripts/validate-kubernetes` checks the same files against the Kubernetes schemas.)

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_yaml::Value;
use t2_kubernetes::permissions::{Permission, JOBMASTER, JOBMASTER_NODES, SUBMITTER};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docs(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo().join("deploy").join(file)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn manifests() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(repo().join("deploy"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    out.sort();
    out
}

fn find<'a>(all: &'a [Value], kind: &str, name: &str) -> &'a Value {
    all.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} not in deploy/"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Every (verb, group, resource[/sub], resourceName) a Role grants.
fn grants(role: &Value) -> BTreeSet<(String, String, String, Option<String>)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_sequence().unwrap() {
        let names = strs(&rule["resourceNames"]);
        for g in strs(&rule["apiGroups"]) {
            for r in strs(&rule["resources"]) {
                for v in strs(&rule["verbs"]) {
                    if names.is_empty() {
                        out.insert((v.clone(), g.clone(), r.clone(), None));
                    }
                    for n in &names {
                        out.insert((v.clone(), g.clone(), r.clone(), Some(n.clone())));
                    }
                }
            }
        }
    }
    out
}

fn key(p: &Permission) -> (String, String, String, Option<String>) {
    let r = match p.subresource {
        Some(s) => format!("{}/{s}", p.resource),
        None => p.resource.to_string(),
    };
    (p.verb.into(), p.group.into(), r, p.name.map(String::from))
}

#[test]
fn the_job_master_role_grants_exactly_what_it_uses_to_its_service_account_alone() {
    let rbac = docs("rbac.yaml");
    let granted = grants(find(&rbac, "Role", "t2-jobmaster"));
    let used: BTreeSet<_> = JOBMASTER.iter().map(key).collect();
    assert_eq!(
        granted, used,
        "Role t2-jobmaster must grant exactly kubernetes::permissions::JOBMASTER"
    );
    let binding = find(&rbac, "RoleBinding", "t2-jobmaster");
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], "t2-jobmaster");
    let subjects = binding["subjects"].as_sequence().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], "t2-jobmaster");
    find(&rbac, "ServiceAccount", "t2-jobmaster");
}

#[test]
fn the_optional_node_reader_grants_exactly_the_node_list_to_the_job_master_alone() {
    let nodes = docs("rbac-nodes.yaml");
    let granted = grants(find(&nodes, "ClusterRole", "t2-node-reader"));
    let used: BTreeSet<_> = JOBMASTER_NODES.iter().map(key).collect();
    assert_eq!(
        granted, used,
        "ClusterRole t2-node-reader must grant exactly JOBMASTER_NODES"
    );
    let binding = find(&nodes, "ClusterRoleBinding", "t2-jobmaster-node-reader");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], "t2-node-reader");
    let subjects = binding["subjects"].as_sequence().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], "t2-jobmaster");
}

#[test]
fn the_submitter_role_grants_everything_doctor_checks() {
    let rbac = docs("rbac.yaml");
    let granted = grants(find(&rbac, "Role", "t2-submitter"));
    for p in SUBMITTER {
        assert!(
            granted.contains(&key(p)),
            "Role t2-submitter lacks {} {}",
            p.verb,
            p.resource_name()
        );
    }
}

#[test]
fn nothing_is_bound_to_every_authenticated_user_and_the_namespace_is_set_once() {
    for file in manifests() {
        for d in docs(&file) {
            for s in d["subjects"].as_sequence().into_iter().flatten() {
                let name = s["name"].as_str().unwrap_or_default();
                assert!(!name.starts_with("system:"), "{file}: bound to {name}");
            }
            assert!(
                d["metadata"].get("namespace").is_none(),
                "{file}: {:?} sets its namespace; kustomization.yaml does",
                d["metadata"]["name"]
            );
        }
    }
    let k: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("deploy/kustomization.yaml")).unwrap(),
    )
    .unwrap();
    assert!(k["namespace"].as_str().is_some_and(|n| !n.is_empty()));
    let listed = strs(&k["resources"]);
    let text = std::fs::read_to_string(repo().join("deploy/kustomization.yaml")).unwrap();
    for f in manifests() {
        assert!(
            listed.contains(&f) || text.contains(&format!("# - {f}")),
            "deploy/{f} is neither a resource nor an optional line of kustomization.yaml"
        );
    }
    for f in &listed {
        assert!(
            repo().join("deploy").join(f).is_file(),
            "kustomization.yaml lists missing {f}"
        );
    }
}

#[test]
fn the_uploader_is_what_submit_looks_for() {
    let up = docs("uploader.yaml");
    let svc = find(&up, "Service", "t2-uploader");
    assert_eq!(
        svc["metadata"]["labels"]["app.kubernetes.io/name"], "t2-uploader",
        "kubernetes.uploader_selector default"
    );
    assert_eq!(
        svc["metadata"]["annotations"]["t2.io/token-secret"],
        "t2-uploader-token"
    );
    let sts = find(&up, "StatefulSet", "t2-uploader");
    let c = &sts["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"][1], "uploader");
    assert!(strs(&c["command"]).contains(&"--token-file=/etc/t2-uploader/token".to_string()));
}

#[test]
fn the_image_runs_t2_as_the_uid_pods_expect_with_a_jre_variant() {
    let text = std::fs::read_to_string(repo().join("docker/Dockerfile")).unwrap();
    let uid = t2_kubernetes::manifests::pod::RUN_AS;
    assert!(
        text.contains(&format!("USER {uid}:{uid}")),
        "non-root user {uid}"
    );
    assert!(
        text.contains("AS runtime") && text.contains("AS jre"),
        "two targets"
    );
    assert!(text.contains("cargo build --release --locked -p t2-launcher --bin t2"));
    assert!(text.contains("COPY --from=build /usr/local/bin/t2 /usr/local/bin/t2"));
}

#[test]
fn the_dashboard_runs_t2_dash_with_its_token_secret_and_a_claim_for_its_database() {
    let d = docs("dashboard.yaml");
    let svc = find(&d, "Service", "t2-dashboard");
    assert_eq!(
        svc["spec"]["ports"][0]["name"], "http",
        "kubectl proxy's http:t2-dashboard:"
    );
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    let sts = find(&d, "StatefulSet", "t2-dashboard");
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(
        pod["automountServiceAccountToken"], false,
        "needs no API access"
    );
    let c = &pod["containers"][0];
    let cmd = strs(&c["command"]);
    assert_eq!(cmd[..2], ["t2".to_string(), "dash".to_string()]);
    assert!(cmd.contains(&"--token-file=/etc/t2-dashboard/token".to_string()));
    let db = cmd
        .iter()
        .find_map(|a| a.strip_prefix("--db="))
        .expect("--db");
    let claim = &sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"];
    let mount = c["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| &m["name"] == claim)
        .expect("the claim is mounted");
    assert!(
        db.starts_with(mount["mountPath"].as_str().unwrap()),
        "the database is on the claim"
    );
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "t2-dashboard-token"
    );
}
