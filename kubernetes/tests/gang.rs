//! Gang scheduling, queues, priority and the user's labels in a job's objects (issue 18),
//! without a cluster: the Volcano PodGroup (owned by the root, before the pods, `minMember` =
//! worker pods + the job master), the pods' scheduler, group annotation and priority, the
//! job master's Role on its one PodGroup, Kueue's queue label on the workloads, and
//! `kubernetes.labels`/`annotations` with the recommended instance/version labels on every
//! object and pod.

mod support;

use serde_json::Value;
use support::jobs;
use t2_kubernetes::manifests::{build_objects, Object};

fn objects(job: &jobs::TestJob) -> Vec<Value> {
    build_objects(&job.info, &job.spec, &job.settings)
        .iter()
        .map(Object::to_json)
        .collect()
}

fn templates(objects: &[Value]) -> Vec<&Value> {
    objects
        .iter()
        .filter(|o| o["kind"] == "StatefulSet")
        .map(|o| &o["spec"]["template"])
        .collect()
}

#[test]
fn a_volcano_job_is_one_podgroup_owned_by_the_root_before_its_pods() {
    let job = jobs::gang_volcano();
    let id = job.info.id.as_str();
    let objects = objects(&job);
    let at = |kind: &str| objects.iter().position(|o| o["kind"] == kind).unwrap();
    let pg = &objects[at("PodGroup")];
    assert!(
        at("PodGroup") < at("StatefulSet"),
        "the gang exists before its pods"
    );
    assert_eq!(pg["apiVersion"], "scheduling.volcano.sh/v1beta1");
    assert_eq!(pg["metadata"]["name"], id);
    assert_eq!(pg["metadata"]["ownerReferences"][0]["name"], id);
    assert_eq!(pg["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        pg["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
        true
    );
    assert_eq!(
        pg["spec"]["minMember"], 4,
        "3 worker pods and the job master"
    );
    assert_eq!(pg["spec"]["queue"], "research");
    assert_eq!(pg["spec"]["priorityClassName"], "batch-high");
    let t = templates(&objects);
    assert_eq!(t.len(), 2);
    for t in t {
        assert_eq!(t["spec"]["schedulerName"], "volcano");
        assert_eq!(t["spec"]["priorityClassName"], "batch-high");
        assert_eq!(
            t["metadata"]["annotations"]["scheduling.k8s.io/group-name"],
            id
        );
    }
    let role = objects.iter().find(|o| o["kind"] == "Role").unwrap();
    let rule = role["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["apiGroups"][0] == "scheduling.volcano.sh")
        .expect("the job master's rule on its PodGroup");
    assert_eq!(rule["resources"][0], "podgroups");
    assert_eq!(rule["resourceNames"], serde_json::json!([id]));
    assert_eq!(rule["verbs"], serde_json::json!(["get", "patch"]));
}

#[test]
fn a_kueue_jobs_workloads_carry_the_queue_label_and_it_cannot_be_scaled() {
    let job = jobs::gang_kueue();
    let objects = objects(&job);
    assert!(objects.iter().all(|o| o["kind"] != "PodGroup"));
    for sts in objects.iter().filter(|o| o["kind"] == "StatefulSet") {
        assert_eq!(
            sts["metadata"]["labels"]["kueue.x-k8s.io/queue-name"],
            "team-a"
        );
        let t = &sts["spec"]["template"];
        assert_eq!(
            t["metadata"]["labels"]["kueue.x-k8s.io/queue-name"],
            "team-a"
        );
        assert!(t["spec"].get("schedulerName").is_none());
    }
    let why = t2_kubernetes::gang::scale_refusal(&job.settings).expect("refused");
    assert!(why.contains("Kueue") && why.contains("team-a"), "{why}");
    assert!(t2_kubernetes::gang::scale_refusal(&jobs::gang_volcano().settings).is_none());
}

#[test]
fn the_users_labels_and_annotations_are_on_every_object_and_pod() {
    let job = jobs::priority_labels();
    let id = job.info.id.as_str();
    let objects = objects(&job);
    let mut metas: Vec<&Value> = objects.iter().map(|o| &o["metadata"]).collect();
    metas.extend(templates(&objects).into_iter().map(|t| &t["metadata"]));
    for m in metas {
        assert_eq!(m["labels"]["example.com/team"], "ml-infra", "{m}");
        assert_eq!(m["labels"]["cost-center"], "4711", "{m}");
        assert_eq!(
            m["annotations"]["example.com/contact"], "alice@example.com",
            "{m}"
        );
        assert_eq!(m["labels"]["app.kubernetes.io/instance"], id, "{m}");
        assert_eq!(
            m["labels"]["app.kubernetes.io/version"],
            env!("CARGO_PKG_VERSION"),
            "{m}"
        );
    }
    for t in templates(&objects) {
        assert_eq!(t["spec"]["schedulerName"], "my-scheduler");
        assert_eq!(t["spec"]["priorityClassName"], "low-priority");
    }
    // Without gang scheduling the pods keep the cluster's default scheduler.
    let plain = objects_of_plain();
    for t in templates(&plain) {
        assert!(t["spec"].get("schedulerName").is_none());
        assert!(t["spec"].get("priorityClassName").is_none());
    }
}

fn objects_of_plain() -> Vec<Value> {
    objects(&jobs::plain())
}
