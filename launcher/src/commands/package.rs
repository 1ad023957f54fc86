//! `t2 package DIR -o OUT` (hidden): builds a job's package exactly as `t2 submit` does and
//! prints its sha256 and size, without running anything (benchmarks, checks, uploads by hand).

use std::path::Path;
use std::time::Instant;

use t2_core::package::{build_package, PackageSource};

use crate::error::LauncherError;

/// Builds the package of `source` into `out`.
pub fn run(source: &Path, out: &Path) -> Result<i32, LauncherError> {
    let started = Instant::now();
    let src = PackageSource::detect(source, None)?;
    let job_yaml = src.job_yaml()?.unwrap_or_default();
    let pkg = build_package(&src, &job_yaml, &[], out, u64::MAX)?;
    crate::stdout::outln!("{} {} {}", pkg.sha256, pkg.size, out.display());
    tracing::info!(took = ?started.elapsed(), "package built");
    Ok(0)
}
