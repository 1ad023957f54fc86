//! `t2 scale JOB N` for a local job: asks the job's job master (gRPC `Scale`) for N workers.
//! The job master tells the workers (JobScaled) and reports the new count on its `Watch`
//! stream; the job's supervisor follows it, starting agents for the new worker IDs or stopping
//! those with IDs >= N.

use std::path::Path;
use std::time::Duration;

use t2_core::jobdir::JobDir;
use t2_core::spec::check_worker_count;
use t2_proto::job_master_client::JobMasterClient;
use t2_proto::ScaleParams;
use tonic::Code;

use crate::error::LauncherError;
use crate::local::process::alive_with;

/// How long the job master may take to be reached.
const CONNECT_DEADLINE: Duration = Duration::from_secs(5);
/// How long the job master may take to answer.
const SCALE_DEADLINE: Duration = Duration::from_secs(30);

/// Scales the job (`job` is a valid job ID) to `workers` workers; prints
/// `job JOB: N workers (was M)` (`1 worker`).
pub fn run(home: &Path, job: &str, workers: u32) -> Result<(), LauncherError> {
    if let Err(e) = check_worker_count(workers) {
        return Err(LauncherError::Usage(format!(
            "job {job}: {e} (to end the job, use 't2 kill {job}')"
        )));
    }
    let dir = JobDir::existing(home, job)?;
    let record = dir.read_record()?;
    if record.state.is_final() {
        return Err(LauncherError::Failed(format!(
            "job {job} has ended ({}); only a running job can be scaled",
            record.state
        )));
    }
    match record.supervisor_pid {
        Some(pid) if alive_with(pid, "t2") => {}
        _ => {
            return Err(LauncherError::Failed(format!(
                "job {job} has no running supervisor, so nothing would start or stop its workers; end it with 't2 kill {job}'"
            )))
        }
    }
    let addr = match record.jobmaster_addr {
        Some(addr) if !addr.is_empty() => addr,
        _ => {
            return Err(LauncherError::Failed(format!(
                "job {job} is {}: its job master is not listening yet; try again in a moment",
                record.state
            )))
        }
    };
    let token = crate::jobfiles::read_token(&dir)?;
    let spec = crate::jobfiles::read_spec(&dir)?;
    let dialer = crate::jobfiles::dialer(&dir, &spec)?;
    let answer = crate::runtime()?
        .block_on(ask(&dialer, job, &addr, token, workers))
        .map_err(LauncherError::Failed)?;
    let noun = if answer.num_workers == 1 {
        "worker"
    } else {
        "workers"
    };
    crate::stdout::outln!(
        "job {job}: {} {noun} (was {})",
        answer.num_workers,
        answer.previous
    );
    Ok(())
}

/// Calls `Scale` on the job master of `job` at `addr`; the error is one line.
async fn ask(
    dialer: &t2_worker::agent::dial::Dialer,
    job: &str,
    addr: &str,
    token: String,
    workers: u32,
) -> Result<t2_proto::ScaleResult, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(addr.to_string())
        .map_err(|e| format!("job {job}: bad job master address '{addr}' in job.json: {e}"))?
        .connect_timeout(CONNECT_DEADLINE)
        .timeout(SCALE_DEADLINE);
    let channel = dialer.channel(endpoint).await.map_err(|e| {
        format!("job {job}: cannot reach its job master at {addr}: {e}; see 't2 status {job}'")
    })?;
    let params = ScaleParams {
        token,
        num_workers: workers,
    };
    match JobMasterClient::new(channel).scale(params).await {
        Ok(answer) => Ok(answer.into_inner()),
        Err(s) => Err(match s.code() {
            Code::Unimplemented => format!(
                "job {job}: its job master does not support scaling (it answered: {})",
                s.message()
            ),
            Code::Cancelled | Code::DeadlineExceeded => {
                format!("job {job}: its job master did not answer within {SCALE_DEADLINE:?}")
            }
            Code::Unavailable => format!(
                "job {job}: cannot reach its job master at {addr}: {}",
                s.message()
            ),
            // The job master's refusals name the job and what to do.
            _ => s.message().to_string(),
        }),
    }
}
