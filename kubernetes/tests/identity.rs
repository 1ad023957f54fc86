//! The owner label from the cluster's identity (issue 18): a SelfSubjectReview's user name,
//! made a label value; the local user only where the review is forbidden or not served.

mod support;

use serde_json::json;
use support::mock::{run, Step};
use t2_kubernetes::identity::owner;

const REVIEWS: &str = "/apis/authentication.k8s.io/v1/selfsubjectreviews?";

#[tokio::test]
async fn the_owner_is_the_clusters_name_for_the_caller_made_a_label_value() {
    let steps = vec![Step::new("POST", REVIEWS)
        .check(|b, _| {
            assert_eq!(b["kind"], "SelfSubjectReview");
            assert_eq!(b["apiVersion"], "authentication.k8s.io/v1");
        })
        .json(
            201,
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                   "metadata": {}, "status": {"userInfo": {
                       "username": "system:serviceaccount:ci:runner", "groups": ["system:authenticated"]}}}),
        )];
    let got = run(steps, |kube| async move { owner(&kube, "bob").await }).await;
    assert_eq!(got.unwrap(), "system-serviceaccount-ci-runner");
}

#[tokio::test]
async fn a_forbidden_or_missing_review_falls_back_to_the_local_user() {
    for (code, reason) in [(403, "Forbidden"), (404, "NotFound")] {
        let steps = vec![Step::new("POST", REVIEWS).status(code, reason, "no")];
        let got = run(steps, |kube| async move { owner(&kube, "bob smith").await }).await;
        assert_eq!(got.unwrap(), "bob-smith", "after {code}");
    }
}

#[tokio::test]
async fn another_failure_of_the_review_is_an_error() {
    let steps = vec![Step::new("POST", REVIEWS).status(500, "InternalError", "etcd is down")];
    let got = run(steps, |kube| async move { owner(&kube, "bob").await }).await;
    let e = got.expect_err("an error").to_string();
    assert!(e.contains("selfsubjectreviews"), "{e}");
}
