//! The MPI example jobs of the Kubernetes tests: `examples/mpi-allreduce` copied for a
//! submit, and the check of its output on 3 workers of 2 slots.

use std::path::{Path, PathBuf};

use super::TestNs;

/// A copy of `examples/mpi-allreduce` in `dir` (its build step makes the binary there).
pub fn mpi_example(dir: &Path) -> PathBuf {
    let src = super::repo().join("examples/mpi-allreduce");
    let dst = dir.join("mpi-allreduce");
    std::fs::create_dir_all(&dst).expect("mkdir");
    for f in ["job.yaml", "allreduce.c"] {
        std::fs::copy(src.join(f), dst.join(f)).expect("copy the example");
    }
    dst
}

/// Worker 0 of job `id` (3 workers of 2 slots) printed the right sum of 6 ranks, and every
/// rank ran on its own worker: ranks 2w and 2w+1 on worker w.
pub fn assert_allreduce_of_6_ranks(ns: &TestNs, id: &str) {
    let log0 = ns.runtime.log(&format!("{id}-0"), "worker-0");
    assert!(
        log0.contains("allreduce over 6 ranks: sum = 21 (expected 21) OK"),
        "worker 0's output:\n{log0}\nruntime:\n{}",
        ns.runtime.report()
    );
    for r in 0..6 {
        assert!(
            log0.contains(&format!("rank {r} of 6 on t2 worker {}", r / 2)),
            "rank {r}:\n{log0}"
        );
    }
}
