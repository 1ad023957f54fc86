//! The Kubernetes cluster behind the [`Cluster`] trait: each command connects with the
//! kubectl-style flags and calls the library (`t2_kubernetes`).

use std::io::Write;
use std::time::Duration;

use t2_kubernetes::{client, jobs, kill, logs, scale, Kube};

use super::{print_as, Cluster};
use crate::cli::{Output, SubmitArgs};
use crate::commands::logs::LogOptions;
use crate::error::LauncherError;
use crate::kube_cli::args::KubeFlags;
use crate::kube_cli::{err, user};

/// Longest `t2 list --watch` runs (a week).
const WATCH_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long `t2 kill` waits for a job's objects to go.
const KILL_WAIT: Duration = Duration::from_secs(60);

/// A Kubernetes cluster, reached with these flags.
pub struct KubernetesCluster {
    flags: KubeFlags,
}

impl KubernetesCluster {
    /// The cluster `flags` (kubeconfig, context, namespace) name.
    pub fn new(flags: KubeFlags) -> Self {
        Self { flags }
    }

    fn connect(&self) -> Result<(tokio::runtime::Runtime, Kube), LauncherError> {
        connect(&self.flags)
    }
}

/// A runtime and a client of the cluster `flags` name.
pub fn connect(flags: &KubeFlags) -> Result<(tokio::runtime::Runtime, Kube), LauncherError> {
    let rt = crate::runtime()?;
    let kube = rt
        .block_on(client::connect(&flags.options()))
        .map_err(err)?;
    Ok((rt, kube))
}

impl Cluster for KubernetesCluster {
    fn submit(&self, args: SubmitArgs) -> Result<i32, LauncherError> {
        crate::kube_cli::submit::run(args)
    }

    fn list(&self, output: Output, watch: bool) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let rows = rt.block_on(jobs::list_jobs(&kube)).map_err(err)?;
        let wide = output == Output::Wide;
        match output {
            Output::Text | Output::Wide if rows.is_empty() && !watch => {
                crate::stdout::out!("{}", jobs::render_list(&rows, &kube.namespace))
            }
            Output::Text | Output::Wide => {
                crate::stdout::outln!("{}", list_header(wide));
                for r in &rows {
                    crate::stdout::outln!("{}", list_row(r, wide));
                }
            }
            _ => print_as(output, &serde_json::json!({ "jobs": rows }), |_, _| {
                String::new()
            })?,
        }
        if !watch {
            return Ok(0);
        }
        let mut seen: std::collections::BTreeMap<String, String> = rows
            .iter()
            .map(|r| (r.id.clone(), format!("{} {}", r.state, r.workers)))
            .collect();
        let started = std::time::Instant::now();
        while started.elapsed() < WATCH_DEADLINE {
            std::thread::sleep(Duration::from_secs(2));
            let rows = rt.block_on(jobs::list_jobs(&kube)).map_err(err)?;
            for r in rows.iter().rev() {
                let k = format!("{} {}", r.state, r.workers);
                if seen.get(&r.id) != Some(&k) {
                    match output {
                        Output::Text | Output::Wide => {
                            crate::stdout::outln!("{}", list_row(r, wide))
                        }
                        _ => {
                            let line = serde_json::to_string(r)
                                .map_err(LauncherError::json("cannot encode a job"))?;
                            crate::stdout::outln!("{line}")
                        }
                    }
                    seen.insert(r.id.clone(), k);
                }
            }
        }
        Ok(0)
    }

    fn status(&self, job: &str, output: Output) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let s = rt.block_on(jobs::job_status(&kube, job)).map_err(err)?;
        print_as(output, &s, |s, _| jobs::render_status(s))?;
        Ok(0)
    }

    fn logs(&self, job: &str, o: &LogOptions) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let view = logs::LogView {
            follow: o.follow,
            tail: o.tail,
            since_seconds: o.since.map(|d| d.as_secs().max(1) as i64),
            timestamps: o.timestamps,
        };
        rt.block_on(async {
            let targets = if o.jobmaster {
                logs::jobmaster_target(&kube, job).await?
            } else {
                logs::log_targets(&kube, job, o.worker).await?
            };
            logs::print_logs_with(&kube, &targets, &view, &mut |line| {
                crate::stdout::or_exit(writeln!(std::io::stdout(), "{line}"));
            })
            .await
        })
        .map_err(err)?;
        Ok(0)
    }

    fn describe(&self, job: &str) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let (s, spec, evs) = rt
            .block_on(async {
                let s = jobs::job_status(&kube, job).await?;
                let root = jobs::get_root(&kube, job).await?;
                let evs = t2_kubernetes::events::job_events(&kube, job).await?;
                Ok::<_, t2_kubernetes::error::KubeError>((s, root, evs))
            })
            .map_err(err)?;
        let mut out = jobs::render_status(&s);
        let spec_json = spec
            .data
            .as_ref()
            .and_then(|d| d.get("spec.json").cloned())
            .unwrap_or_default();
        if let Ok(spec) = serde_json::from_str::<t2_core::spec::JobSpec>(&spec_json) {
            let mut command = spec.command.clone();
            command.extend(spec.args.iter().cloned());
            out.push_str(&format!(
                "Spec: {} workers ({} per pod), command {:?}, max_restarts {}, cpu {}, memory {} MB\n",
                spec.workers,
                spec.workers_per_pod,
                command,
                spec.max_restarts,
                spec.resources.cpu,
                spec.resources.memory_mb
            ));
        }
        out.push_str("Events:\n");
        if evs.is_empty() {
            out.push_str("  (none in the namespace's event list)\n");
        }
        for e in &evs {
            out.push_str(&format!(
                "  {:<25} {:<8} {:<40} {:<18} {}\n",
                e.time, e.kind, e.object, e.reason, e.message
            ));
        }
        crate::stdout::out!("{out}");
        Ok(0)
    }

    fn kill(&self, job: &str) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let r = rt
            .block_on(kill::kill(&kube, job, &user(), KILL_WAIT))
            .map_err(err)?;
        if r.leftovers.is_empty() {
            crate::stdout::outln!("job {job} killed; all its objects are gone");
            Ok(0)
        } else {
            Err(LauncherError::Failed(format!(
                "job {job} was killed, but after {}s these are still there: {}; Kubernetes may still be removing them (check with 'kubectl -n {} get all -l t2.io/job={job}', or run 't2 gc' later)",
                KILL_WAIT.as_secs(),
                kill::describe(&r.leftovers),
                kube.namespace
            )))
        }
    }

    fn scale(&self, job: &str, workers: u32) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let pods = rt
            .block_on(scale::scale(&kube, job, workers))
            .map_err(err)?;
        crate::stdout::outln!("job {job}: {workers} workers in {pods} pods");
        Ok(0)
    }
}

/// The header of `t2 list` for Kubernetes jobs.
fn list_header(wide: bool) -> String {
    let mut h = format!(
        "{:<40} {:<10} {:>7} {:<12} {:>6}",
        "JOB", "STATE", "WORKERS", "OWNER", "AGE"
    );
    if wide {
        h.push_str("  SUBMITTED");
    }
    h
}

/// One Kubernetes job in `t2 list`.
fn list_row(r: &jobs::JobRow, wide: bool) -> String {
    let mut row = format!(
        "{:<40} {:<10} {:>7} {:<12} {:>6}",
        r.id,
        r.state,
        r.workers,
        r.owner,
        crate::clock::age(&r.submitted_at)
    );
    if wide {
        row.push_str(&format!("  {}", r.submitted_at));
    }
    row
}
