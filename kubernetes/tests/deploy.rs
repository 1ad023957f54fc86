//! deploy/ and docker/ checked against the code: the job master's Role (and the optional node
//! reader ClusterRole) grant exactly what the job master uses and are bound to its
//! ServiceAccount alone; the submitter Role grants
//! everything `t2 doctor kubernetes` checks; nothing is bound to `system:authenticated`; the
//! namespace is set only in kustomization.yaml, which lists files that exist; the uploader
//! Service is what `t2 submit` looks for; the image runs as the uid the pod specs expect.
//! (`scripts/validate-kubernetes` checks the same files against the Kubernetes schemas.)

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_yaml::Value;
use t2_kubernetes::manifests::access;
use t2_kubernetes::permissions::{
    JobObject, Permission, DIRECT_DELIVERY, JOBMASTER, JOBMASTER_NODES, SUBMITTER,
};

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

fn namespace() -> String {
    let k: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo().join("deploy/kustomization.yaml")).unwrap(),
    )
    .unwrap();
    k["namespace"].as_str().unwrap().to_string()
}

#[test]
fn a_jobs_own_role_grants_exactly_what_its_job_master_uses_on_its_own_objects_alone() {
    let rbac = docs("rbac.yaml");
    assert!(
        !rbac.iter().any(|d| d["metadata"]["name"] == "t2-jobmaster"),
        "deploy/rbac.yaml has no shared job master ServiceAccount, Role or binding"
    );
    let job = support::jobs::info("job-00000001", None);
    let settings = t2_kubernetes::settings::Settings::default();
    let role = serde_yaml::to_value(access::role(&job)).unwrap();
    let granted = grants(&role);
    let used: BTreeSet<_> = JOBMASTER
        .iter()
        .map(|p| {
            let (v, g, r, _) = key(p);
            let name = p.object.map(|o| match o {
                JobObject::Root => "job-00000001".to_string(),
                JobObject::Workers => "job-00000001".to_string(),
            });
            (v, g, r, name)
        })
        .collect();
    assert_eq!(
        granted, used,
        "the job's Role must grant exactly JOBMASTER, by name"
    );
    // Every rule is limited by resourceNames but reading pods (issue 18: telling a disrupted
    // worker from a failed one; worker pod names change with scaling).
    let unnamed: Vec<_> = granted
        .iter()
        .filter(|(_, _, _, n)| n.is_none())
        .map(|(v, g, r, _)| format!("{v} {g}/{r}"))
        .collect();
    assert_eq!(
        unnamed,
        ["get /pods", "list /pods", "watch /pods"],
        "every rule but reading pods is limited by resourceNames"
    );
    let binding = serde_yaml::to_value(access::role_binding(&job, &settings)).unwrap();
    assert_eq!(binding["roleRef"]["kind"], "Role");
    assert_eq!(binding["roleRef"]["name"], "job-00000001-jm");
    let subjects = binding["subjects"].as_sequence().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], "job-00000001-jm");
    let sa = access::service_account(&job, &settings).expect("the job's own ServiceAccount");
    assert_eq!(sa.metadata.name.as_deref(), Some("job-00000001-jm"));
    let sa = serde_yaml::to_value(sa).unwrap();
    for (what, v) in [
        ("ServiceAccount", &sa),
        ("Role", &role),
        ("RoleBinding", &binding),
    ] {
        let owner = &v["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ConfigMap", "{what} owned by the root");
        assert_eq!(owner["name"], "job-00000001", "{what} owned by the root");
    }
    // A ServiceAccount the settings name is used as is: none is made.
    let named = t2_kubernetes::settings::Settings {
        service_account: "shared".into(),
        ..settings
    };
    assert!(access::service_account(&job, &named).is_none());
    let binding = serde_yaml::to_value(access::role_binding(&job, &named)).unwrap();
    assert_eq!(binding["subjects"][0]["name"], "shared");
}

#[test]
fn the_optional_node_reader_grants_exactly_the_node_list_to_the_namespaces_service_accounts() {
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
    assert_eq!(subjects[0]["kind"], "Group");
    assert_eq!(
        subjects[0]["name"].as_str(),
        Some(format!("system:serviceaccounts:{}", namespace()).as_str()),
        "the namespace's ServiceAccounts (written out: kustomize does not rewrite groups)"
    );
}

#[test]
fn the_submitter_roles_grant_everything_doctor_checks_and_no_exec_or_secret_reading() {
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
    for (verb, group, resource, name) in &granted {
        assert!(
            !(resource == "pods/exec" || resource == "pods/attach" || resource == "*"),
            "t2-submitter grants {verb} {resource}"
        );
        if group.is_empty()
            && resource == "secrets"
            && ["get", "list", "watch"].contains(&verb.as_str())
        {
            assert_eq!(
                name.as_deref(),
                Some("t2-uploader-token"),
                "t2-submitter may read only the uploader's token Secret"
            );
        }
    }
    let direct = grants(find(&rbac, "Role", "t2-direct-delivery"));
    let wanted: BTreeSet<_> = DIRECT_DELIVERY.iter().map(key).collect();
    assert_eq!(
        direct, wanted,
        "t2-direct-delivery grants exactly DIRECT_DELIVERY"
    );
}

#[test]
fn nothing_is_bound_to_every_authenticated_user_and_the_namespace_is_set_once() {
    for file in manifests() {
        for d in docs(&file) {
            for s in d["subjects"].as_sequence().into_iter().flatten() {
                let name = s["name"].as_str().unwrap_or_default();
                let own_accounts = format!("system:serviceaccounts:{}", namespace());
                assert!(
                    !name.starts_with("system:")
                        || (file == "rbac-nodes.yaml" && name == own_accounts),
                    "{file}: bound to {name}"
                );
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
