//! Who the cluster says the caller is (issue 18): the user name of a SelfSubjectReview
//! (`authentication.k8s.io/v1`), made a label value for `t2.io/owner`. Where the review is not
//! allowed (or not served), the local `$USER` stands in, and a warning says so.

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::PostParams;
use kube::Api;
use tracing::info;

use super::checks::label_value;
use super::client::Kube;
use super::error::{is_status, KubeError, Op};

/// The caller's user name as the API server authenticated it; `None` when the review is not
/// allowed (403) or not served (404, a cluster older than 1.28).
pub async fn username(kube: &Kube) -> Result<Option<String>, KubeError> {
    let api: Api<SelfSubjectReview> = Api::all(kube.client.clone());
    match api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(r) => Ok(r
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .filter(|u| !u.is_empty())),
        Err(e) if is_status(&e, 403) || is_status(&e, 404) => Ok(None),
        Err(e) => Err(
            Op::collection("create", "selfsubjectreviews.authentication.k8s.io", "")
                .error(&kube.server, e),
        ),
    }
}

/// The `t2.io/owner` label value for the caller: the cluster's name for them, else
/// `local_user` (logged at info level: older or locked-down clusters do not serve the review).
pub async fn owner(kube: &Kube, local_user: &str) -> Result<String, KubeError> {
    match username(kube).await? {
        Some(u) => Ok(label_value(&u)),
        None => {
            info!(
                server = %kube.server,
                user = %local_user,
                "the cluster does not allow a SelfSubjectReview (authentication.k8s.io/v1) here; the owner label is the local user name instead"
            );
            Ok(label_value(local_user))
        }
    }
}
