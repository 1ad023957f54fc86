//! Generates the tonic/prost code from `proto/jobmaster.proto` and `proto/agent.proto` with a
//! vendored `protoc`, so a fresh machine needs nothing installed to build t2.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY-free: build scripts are single-threaded; tonic-prost-build reads PROTOC.
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto/jobmaster.proto");
    println!("cargo:rerun-if-changed=proto/agent.proto");
    tonic_prost_build::configure()
        // The job master protocol's `bytes` fields as `bytes::Bytes`: a worker table or a user message fanned out to
        // every worker is shared (reference-counted), not copied once per stream.
        .bytes(".t2.jobmaster.v1")
        .compile_protos(&["proto/jobmaster.proto", "proto/agent.proto"], &["proto"])?;
    Ok(())
}
