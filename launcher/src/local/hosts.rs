//! Addresses of the local cluster's workers. A plain job's workers all use 127.0.0.1. Each
//! worker of an MPI job gets a loopback address of its own (all of 127.0.0.0/8 reaches this
//! machine), so that mpirun sees every worker as a host of its own and starts one daemon per
//! worker through t2 rather than forking the ranks itself: OpenMPI counts only its interfaces'
//! own addresses (127.0.0.1 here) as local.

/// The address every worker of a job that is not an MPI job uses.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// How many workers share the third octet.
const PER_BLOCK: u32 = 250;
/// How many workers one second octet holds.
const PER_SECOND: u32 = PER_BLOCK * 256;

/// Worker `id`'s address in an MPI job: `127.1.0.2` for worker 0, `127.1.0.3` for worker 1,
/// … (the last octet stays within 2..=251; 64,000 workers per second octet).
pub fn mpi_worker_host(id: u32) -> String {
    let second = 1 + id / PER_SECOND;
    let rest = id % PER_SECOND;
    format!("127.{second}.{}.{}", rest / PER_BLOCK, rest % PER_BLOCK + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_worker_gets_a_distinct_loopback_address() {
        assert_eq!(mpi_worker_host(0), "127.1.0.2");
        assert_eq!(mpi_worker_host(249), "127.1.0.251");
        assert_eq!(mpi_worker_host(250), "127.1.1.2");
        assert_eq!(mpi_worker_host(64_000), "127.2.0.2");
        let max = t2_core::spec::MAX_WORKERS;
        let all: std::collections::BTreeSet<String> = (0..max).map(mpi_worker_host).collect();
        assert_eq!(all.len(), max as usize);
        for a in [mpi_worker_host(0), mpi_worker_host(max - 1)] {
            let ip: std::net::Ipv4Addr = a.parse().expect("an address");
            assert!(
                ip.is_loopback() && ip != std::net::Ipv4Addr::LOCALHOST,
                "{a}"
            );
        }
    }
}
