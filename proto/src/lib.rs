//! Generated gRPC types and services of the t2 protocols: the job master service
//! (`t2.jobmaster.v1`, re-exported at the top) and the agent-to-agent service
//! (`t2.agent.v1`, in [`agent`]).

/// The protocol version a worker must present at registration; bumped on incompatible changes.
/// Version 2 added `WorkerInfo.agent_port` and the agent service.
pub const PROTOCOL_VERSION: u32 = 2;

/// Generated code for package `t2.jobmaster.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod jobmaster {
    tonic::include_proto!("t2.jobmaster.v1");
}

/// Generated code for package `t2.agent.v1`: what an agent serves the other agents of its job.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod agent {
    tonic::include_proto!("t2.agent.v1");
}

pub use jobmaster::*;
