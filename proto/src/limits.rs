//! Message-size limits, set from the number of workers where a message grows with it.
//!
//! Worker lists travel in pieces ([`crate::table`]), so worker streams keep gRPC's 4 MiB
//! default. A job status (`Watch`) carries every worker: its limit grows with the job.

/// Largest payload of one user message (`t2 worker send`), bytes.
pub const MAX_USER_MESSAGE_BYTES: usize = 64 << 10;

/// Longest host name or node field a worker may register with (a DNS name is at most 253).
pub const MAX_NAME_BYTES: usize = 255;

/// gRPC's default message limit, which worker streams keep.
pub const DEFAULT_MESSAGE_BYTES: usize = 4 << 20;

/// The largest job status of a job with `workers` workers: every worker's host and node
/// fields at their longest, plus room for the reason.
pub fn status_bytes(workers: u32) -> usize {
    let per_worker = 4 * (MAX_NAME_BYTES + 3) + 32;
    DEFAULT_MESSAGE_BYTES + workers as usize * per_worker
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_status_limit_grows_with_the_workers() {
        assert_eq!(super::status_bytes(0), super::DEFAULT_MESSAGE_BYTES);
        assert!(super::status_bytes(100_000) > 100 << 20);
    }
}
