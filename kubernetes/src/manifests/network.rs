//! The job's NetworkPolicies, owned by the root (`kubernetes.network_policy`, on by default):
//! `<id>` makes the worker pods accept traffic only from the job's own pods (workers talk to
//! each other: allreduce, MPI's remote shell or sshd), and `<id>-jm` makes the job master's
//! pod accept traffic only from the job's worker pods, only on its gRPC port (registration,
//! heartbeats, the package for pods made later). Nothing else connects into a job's pods:
//! direct delivery goes through the API server's exec (the kubelet), the uploader and the
//! dashboard are dialled out to, `t2 scale` writes into the root, and the job master calls
//! its own Scale RPC on loopback. Egress is left open (the uploader, ZooKeeper, the API
//! server, the dashboard). The kubelet's probes come from the node, which NetworkPolicies do
//! not restrict.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{owned_meta, selector, JOB, ROLE_JOBMASTER, ROLE_WORKER};
use super::JobInfo;
use crate::settings::Settings;

/// The component label of the policies.
const COMPONENT: &str = "network";

/// Every pod of the job.
fn job_pods(job: &JobInfo) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some([(JOB.to_string(), job.id.clone())].into()),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

/// The policies (none when `kubernetes.network_policy` is off): workers', then the job
/// master's.
pub fn network_policies(job: &JobInfo, s: &Settings) -> Vec<NetworkPolicy> {
    if !s.network_policy {
        return Vec::new();
    }
    let workers = NetworkPolicy {
        metadata: owned_meta(job, job.names().workers_service(), COMPONENT),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(job, ROLE_WORKER)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![job_pods(job)]),
                ports: None,
            }]),
            ..NetworkPolicySpec::default()
        }),
    };
    let jobmaster = NetworkPolicy {
        metadata: owned_meta(job, job.names().jobmaster_service(), COMPONENT),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(job, ROLE_JOBMASTER)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![NetworkPolicyPeer {
                    pod_selector: Some(selector(job, ROLE_WORKER)),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(i32::from(s.port))),
                    protocol: Some("TCP".into()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            ..NetworkPolicySpec::default()
        }),
    };
    vec![workers, jobmaster]
}
