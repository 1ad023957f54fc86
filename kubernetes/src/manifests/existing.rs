//! Existing volumes in worker pods (`kubernetes.volumes`, issue 18): a claim made outside
//! t2 (`persistentVolumeClaim`, never owned or deleted by the job) or a node's folder
//! (`hostPath` of type `Directory`: it must already exist there), mounted into every worker
//! container, read-only when asked.

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
};

use crate::settings::Settings;

/// The pod's name of existing volume `index`.
pub fn volume_name(index: usize) -> String {
    format!("volume-{index}")
}

/// Adds the volumes of `s.volumes` to a worker pod's `volumes` and its containers' `mounts`.
pub fn add(s: &Settings, volumes: &mut Vec<Volume>, mounts: &mut Vec<VolumeMount>) {
    for (i, v) in s.volumes.iter().enumerate() {
        let name = volume_name(i);
        let read_only = v.read_only.then_some(true);
        let mut volume = Volume {
            name: name.clone(),
            ..Volume::default()
        };
        if let Some(claim) = &v.claim {
            volume.persistent_volume_claim = Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only,
            });
        } else if let Some(path) = &v.host_path {
            volume.host_path = Some(HostPathVolumeSource {
                path: path.clone(),
                type_: Some("Directory".into()),
            });
        } else {
            // Refused when the settings were read.
            continue;
        }
        volumes.push(volume);
        mounts.push(VolumeMount {
            name,
            mount_path: v.mount.clone(),
            read_only,
            ..VolumeMount::default()
        });
    }
}
