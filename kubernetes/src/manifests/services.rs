//! The job's Services: the headless worker Service `<id>` (the worker StatefulSet's governing
//! Service, publishing pods before they are ready so that discovery never waits on
//! readiness) and the job master Service `<id>-jm` (a stable address across job master
//! restarts).

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::labels::{owned_meta, selector_labels, ROLE_JOBMASTER, ROLE_WORKER};
use super::JobInfo;
use crate::settings::Settings;

/// The port name of the job master's gRPC port.
pub const GRPC_PORT_NAME: &str = "grpc";

/// The headless worker Service.
pub fn workers_service(job: &JobInfo) -> Service {
    Service {
        metadata: owned_meta(job, job.names().workers_service(), ROLE_WORKER),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(job, ROLE_WORKER)),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The job master Service.
pub fn jobmaster_service(job: &JobInfo, settings: &Settings) -> Service {
    Service {
        metadata: owned_meta(job, job.names().jobmaster_service(), ROLE_JOBMASTER),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(job, ROLE_JOBMASTER)),
            ports: Some(vec![ServicePort {
                name: Some(GRPC_PORT_NAME.into()),
                port: i32::from(settings.port),
                target_port: Some(IntOrString::String(GRPC_PORT_NAME.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
