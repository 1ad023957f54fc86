//! What a job's containers request and are limited to (issue 18): the workers' CPU and memory
//! from `resources` (limits from `resources.limits`, else memory = request and CPU only with
//! `kubernetes.cpu_limit`), the in-memory volume added to their memory (its pages are
//! charged to the pod), the init container with requests equal to its limits (so a pod
//! whose workers' requests equal their limits is Guaranteed), and `/t2` sized from the
//! package.
//!
//! `/t2` holds the package, one unpacked copy per worker container (each agent unpacks its
//! own) and the agents' small run files. t2 knows the package's size, not its unpacked size,
//! so it counts [`UNPACKED_FACTOR`] × the package per worker (gzip'd code and text data
//! unpack to about 2–4× their size) plus [`WORK_SLACK_MB`], which is both the volume's
//! `sizeLimit` and (shared between the worker containers) its ephemeral-storage request.
//! The kubelet evicts a pod whose `/t2` outgrows it: a job that unpacks to more, or writes
//! more into its working folder, sets `kubernetes.work_volume_mb` (or writes to
//! `resources.disk_mb`'s `/t2/volatile` or `/tmp`).

use k8s_openapi::api::core::v1::ResourceRequirements;
use t2_core::spec::JobSpec;

use super::pod::{cpu, mib, quantities};
use super::JobInfo;
use crate::settings::Settings;

/// Unpacked size of a package counted per worker, × its size.
pub const UNPACKED_FACTOR: u64 = 4;

/// Room in `/t2` beyond the package and its unpacked copies, MiB (run files, sockets).
pub const WORK_SLACK_MB: u64 = 256;

/// Memory of the init container, MiB (it streams the package to disk and hashes it).
pub const INIT_MEMORY_MB: u64 = 256;

const MIB: u64 = 1024 * 1024;

fn ceil_mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB)
}

/// `total` split between `parts` (rounded up).
fn share(total: u64, parts: u32) -> u64 {
    total.div_ceil(u64::from(parts.max(1)))
}

/// The size of a worker pod's `/t2`, MiB: `kubernetes.work_volume_mb`, else the package,
/// [`UNPACKED_FACTOR`] × the package per worker container, and [`WORK_SLACK_MB`].
pub fn work_area_mb(job: &JobInfo, spec: &JobSpec, s: &Settings) -> u64 {
    if s.work_volume_mb > 0 {
        return s.work_volume_mb;
    }
    let unpacked = ceil_mib(job.package_bytes.saturating_mul(UNPACKED_FACTOR));
    ceil_mib(job.package_bytes)
        .saturating_add(unpacked.saturating_mul(u64::from(spec.workers_per_pod.max(1))))
        .saturating_add(WORK_SLACK_MB)
}

/// The size of the job master's `/t2` (direct delivery: its copy of the package), MiB.
pub fn jobmaster_work_mb(job: &JobInfo) -> u64 {
    ceil_mib(job.package_bytes).saturating_add(WORK_SLACK_MB)
}

/// A worker container's requests and limits.
pub fn worker_resources(job: &JobInfo, spec: &JobSpec, s: &Settings) -> ResourceRequirements {
    let r = &spec.resources;
    let wpp = spec.workers_per_pod;
    let memory_volume = share(s.memory_volume_mb, wpp);
    let work = share(work_area_mb(job, spec, s), wpp);
    let requests = vec![
        ("cpu", cpu(r.cpu)),
        ("memory", mib(r.memory_mb.saturating_add(memory_volume))),
        ("ephemeral-storage", mib(r.disk_mb.saturating_add(work))),
    ];
    let memory_limit = r.limits.memory_mb.unwrap_or(r.memory_mb);
    let mut limits = vec![("memory", mib(memory_limit.saturating_add(memory_volume)))];
    match (r.limits.cpu, s.cpu_limit) {
        (Some(limit), _) => limits.push(("cpu", cpu(limit))),
        (None, true) => limits.push(("cpu", cpu(r.cpu))),
        (None, false) => {}
    }
    ResourceRequirements {
        requests: Some(quantities(&requests)),
        limits: Some(quantities(&limits)),
        ..ResourceRequirements::default()
    }
}

/// The init container's requests, equal to its limits: the CPU its pod's workers request
/// (it runs before them, so this never raises what the pod requests) and
/// [`INIT_MEMORY_MB`].
pub fn init_resources(spec: &JobSpec) -> ResourceRequirements {
    let cores = spec.resources.cpu * f64::from(spec.workers_per_pod.max(1));
    let both = quantities(&[("cpu", cpu(cores)), ("memory", mib(INIT_MEMORY_MB))]);
    ResourceRequirements {
        requests: Some(both.clone()),
        limits: Some(both),
        ..ResourceRequirements::default()
    }
}

/// The job master's requests and limits (memory = request; CPU too with `cpu_limit`), and
/// `/t2`'s ephemeral storage when it keeps the package (direct delivery).
pub fn jobmaster_resources(job: &JobInfo, s: &Settings) -> ResourceRequirements {
    let mut requests = vec![
        ("cpu", cpu(s.jobmaster.cpu)),
        ("memory", mib(s.jobmaster.memory_mb)),
    ];
    if job.package_url.is_none() {
        requests.push(("ephemeral-storage", mib(jobmaster_work_mb(job))));
    }
    let mut limits = vec![("memory", mib(s.jobmaster.memory_mb))];
    if s.cpu_limit {
        limits.push(("cpu", cpu(s.jobmaster.cpu)));
    }
    ResourceRequirements {
        requests: Some(quantities(&requests)),
        limits: Some(quantities(&limits)),
        ..ResourceRequirements::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_up() {
        assert_eq!(share(0, 2), 0);
        assert_eq!(share(5, 2), 3);
        assert_eq!(share(5, 0), 5);
        assert_eq!(ceil_mib(1), 1);
        assert_eq!(ceil_mib(MIB), 1);
        assert_eq!(ceil_mib(MIB + 1), 2);
    }
}
