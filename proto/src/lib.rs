//! Generated gRPC types and services of the t2 job master protocol, and the compact worker
//! list ([`table`]) with the message-size limits ([`limits`]) that let it scale.

pub mod limits;
pub mod table;

/// The protocol version a worker must present at registration; bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Generated code for package `t2.jobmaster.v1`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod jobmaster {
    tonic::include_proto!("t2.jobmaster.v1");
}

pub use jobmaster::*;
