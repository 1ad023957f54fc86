//! Getting the package to the pods (DESIGN §3 "Distribute").
//!
//! - [`direct`]: stream it into each worker pod's init container over the exec API, in
//!   process (what `kubectl cp` does, without a `kubectl` binary or `tar` in the image),
//!   several pods at once, retried, verified by sha256 on arrival, with a progress bar.
//! - [`uploader`]: find an uploader in the namespace by label, upload the package once
//!   through the API server's service proxy, and let init containers download it.
//!
//! Both sides of the direct path are here: [`Deliverer`] is what the submit's pod watch calls
//! for each pod whose init container waits; `t2 pod receive` is what runs in the pod.

pub mod direct;
pub mod uploader;

use async_trait::async_trait;

/// Puts the package into one pod.
#[async_trait]
pub trait Deliverer: Send + Sync {
    /// Delivers the package to pod `pod` (its init container is running); `Ok` once the pod
    /// has verified it.
    async fn deliver(&self, pod: &str) -> Result<(), String>;

    /// Delivers the package into running container `container` of pod `pod` (the job
    /// master's copy, for pods made later). A deliverer that reaches init containers only
    /// says so.
    async fn deliver_to(&self, pod: &str, container: &str) -> Result<(), String> {
        Err(format!(
            "this delivery reaches init containers only, not container {container} of pod {pod}"
        ))
    }
}
