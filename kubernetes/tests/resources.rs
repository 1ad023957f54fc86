//! Requests, limits and volumes of a job's pods (issue 18), without a cluster: the init
//! container's requests equal its limits, an integer `cpu_limit` job has requests equal to
//! limits in every container (Guaranteed), `resources.limits` above the requests, the
//! in-memory volume counted in the memory, `/t2` sized from the package, the read-only root
//! with `/tmp`, and existing claims and host paths mounted as written.

mod support;

use serde_json::{json, Value};
use support::jobs;
use t2_kubernetes::manifests::build_objects;
use t2_kubernetes::manifests::sizing::{UNPACKED_FACTOR, WORK_SLACK_MB};

fn pod_of(job: &jobs::TestJob, jobmaster: bool) -> Value {
    let objects: Vec<Value> = build_objects(&job.info, &job.spec, &job.settings)
        .iter()
        .map(|o| o.to_json())
        .collect();
    objects
        .into_iter()
        .find(|o| {
            o["kind"] == "StatefulSet"
                && o["metadata"]["name"].as_str().unwrap().ends_with("-jm") == jobmaster
        })
        .unwrap()["spec"]["template"]["spec"]
        .clone()
}

fn containers(pod: &Value) -> Vec<Value> {
    let mut all: Vec<Value> = pod["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    all.extend(pod["containers"].as_array().cloned().unwrap_or_default());
    all
}

fn requests_equal_limits(c: &Value) -> bool {
    let r = &c["resources"];
    ["cpu", "memory"]
        .iter()
        .all(|k| !r["limits"][k].is_null() && r["requests"][k] == r["limits"][k])
}

#[test]
fn every_init_container_has_requests_equal_to_its_limits() {
    for job in jobs::all() {
        let pod = pod_of(&job, false);
        let init = &pod["initContainers"][0];
        assert!(
            requests_equal_limits(init),
            "{}: {}",
            job.name,
            init["resources"]
        );
    }
}

#[test]
fn an_integer_cpu_limit_jobs_containers_all_have_requests_equal_to_limits() {
    let job = jobs::guaranteed();
    for jobmaster in [false, true] {
        for c in containers(&pod_of(&job, jobmaster)) {
            assert!(
                requests_equal_limits(&c),
                "{}: {}",
                c["name"],
                c["resources"]
            );
        }
    }
    let pod = pod_of(&job, false);
    assert_eq!(pod["containers"][0]["resources"]["limits"]["cpu"], "2");
    assert_eq!(pod["initContainers"][0]["resources"]["limits"]["cpu"], "2");
    // Without cpu_limit, no CPU limit: Burstable, as before.
    let plain = pod_of(&jobs::plain(), false);
    assert!(plain["containers"][0]["resources"]["limits"]["cpu"].is_null());
}

#[test]
fn limits_above_the_requests_and_the_memory_volume_in_the_memory() {
    let job = jobs::limits();
    let pod = pod_of(&job, false);
    // Two workers per pod share the 1024 MiB in-memory volume: 512 MiB each.
    for c in pod["containers"].as_array().unwrap() {
        let r = &c["resources"];
        assert_eq!(r["requests"]["cpu"], "1");
        assert_eq!(r["limits"]["cpu"], "4");
        assert_eq!(r["requests"]["memory"], "2560Mi");
        assert_eq!(r["limits"]["memory"], "8704Mi");
        // work_volume_mb 4096 over two containers.
        assert_eq!(r["requests"]["ephemeral-storage"], "2048Mi");
    }
    let volumes = pod["volumes"].as_array().unwrap();
    let memory = volumes.iter().find(|v| v["name"] == "memory").unwrap();
    assert_eq!(
        memory["emptyDir"],
        json!({"medium": "Memory", "sizeLimit": "1024Mi"})
    );
    let work = volumes.iter().find(|v| v["name"] == "t2").unwrap();
    assert_eq!(work["emptyDir"]["sizeLimit"], "4096Mi");
    // The init container asks for the CPU both workers request.
    assert_eq!(
        pod["initContainers"][0]["resources"]["requests"]["cpu"],
        "2"
    );
}

#[test]
fn the_work_area_is_sized_from_the_package() {
    let job = jobs::plain();
    let pod = pod_of(&job, false);
    let mib = |b: u64| b.div_ceil(1024 * 1024);
    let bytes = job.info.package_bytes;
    let want = mib(bytes) + mib(bytes * UNPACKED_FACTOR) + WORK_SLACK_MB;
    let work = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "t2")
        .unwrap()
        .clone();
    assert_eq!(work["emptyDir"]["sizeLimit"], format!("{want}Mi"));
    assert_eq!(
        pod["containers"][0]["resources"]["requests"]["ephemeral-storage"],
        format!("{want}Mi")
    );
    // The job master's copy (direct delivery): the package and the slack.
    let jm = pod_of(&job, true);
    let jm_work = jm["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "t2")
        .unwrap()
        .clone();
    assert_eq!(
        jm_work["emptyDir"]["sizeLimit"],
        format!("{}Mi", mib(bytes) + WORK_SLACK_MB)
    );
}

#[test]
fn workers_have_a_read_only_root_and_a_tmp_emptydir() {
    for job in jobs::all() {
        let pod = pod_of(&job, false);
        for c in containers(&pod) {
            assert_eq!(
                c["securityContext"]["readOnlyRootFilesystem"], true,
                "{}: {}",
                job.name, c["name"]
            );
        }
        for c in pod["containers"].as_array().unwrap() {
            let mounts = c["volumeMounts"].as_array().unwrap();
            assert!(
                mounts
                    .iter()
                    .any(|m| m["name"] == "tmp" && m["mountPath"] == "/tmp"),
                "{}",
                job.name
            );
        }
        let tmp = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "tmp")
            .cloned()
            .unwrap();
        assert_eq!(tmp["emptyDir"], json!({}));
    }
}

#[test]
fn existing_claims_and_host_paths_are_mounted_as_written_and_never_made() {
    let job = jobs::existing_volumes();
    let objects: Vec<Value> = build_objects(&job.info, &job.spec, &job.settings)
        .iter()
        .map(|o| o.to_json())
        .collect();
    assert!(
        !objects.iter().any(|o| o["kind"] == "PersistentVolumeClaim"),
        "t2 makes no existing claim"
    );
    let pod = pod_of(&job, false);
    let volumes = pod["volumes"].as_array().unwrap();
    let v0 = volumes.iter().find(|v| v["name"] == "volume-0").unwrap();
    assert_eq!(
        v0["persistentVolumeClaim"],
        json!({"claimName": "pv1000g", "readOnly": true})
    );
    let v1 = volumes.iter().find(|v| v["name"] == "volume-1").unwrap();
    assert_eq!(
        v1["persistentVolumeClaim"],
        json!({"claimName": "shared-workspace"})
    );
    for c in pod["containers"].as_array().unwrap() {
        let mounts = c["volumeMounts"].as_array().unwrap();
        assert!(mounts
            .contains(&json!({"name": "volume-0", "mountPath": "/datasource", "readOnly": true})));
        assert!(mounts.contains(&json!({"name": "volume-1", "mountPath": "/workspace"})));
    }
    // Not in the init container, nor in the job master's pod.
    let init = &pod["initContainers"][0]["volumeMounts"];
    assert!(!init.to_string().contains("volume-0"));
    assert!(!pod_of(&job, true).to_string().contains("pv1000g"));

    let job = jobs::host_path();
    let pod = pod_of(&job, false);
    let v0 = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "volume-0")
        .cloned()
        .unwrap();
    assert_eq!(
        v0["hostPath"],
        json!({"path": "/data/scratch", "type": "Directory"})
    );
}
