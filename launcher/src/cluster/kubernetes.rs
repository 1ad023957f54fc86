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
        if watch {
            return rt.block_on(watch_list(&kube, output)).map(|_| 0);
        }
        let rows = rt.block_on(jobs::list_jobs(&kube)).map_err(err)?;
        let wide = output == Output::Wide;
        match output {
            Output::Text | Output::Wide if rows.is_empty() => {
                eprintln!("no t2 jobs in namespace '{}'", kube.namespace);
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
        Ok(0)
    }

    fn status(&self, job: &str, output: Output) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let s = rt.block_on(jobs::job_status(&kube, job)).map_err(err)?;
        print_as(output, &s, |s, wide| {
            jobs::render_status(s, wide, &crate::clock::age)
        })?;
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
            logs::print_logs_with(&kube, job, &targets, &view, &mut |line| {
                crate::stdout::or_exit(writeln!(std::io::stdout(), "{line}"));
            })
            .await
        })
        .map_err(err)?;
        Ok(0)
    }

    fn describe(&self, job: &str) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let (s, root, evs) = rt
            .block_on(async {
                let s = jobs::job_status(&kube, job).await?;
                let root = jobs::get_root(&kube, job).await?;
                let evs = t2_kubernetes::events::job_events(&kube, job).await?;
                Ok::<_, t2_kubernetes::error::KubeError>((s, root, evs))
            })
            .map_err(err)?;
        let spec_json = root
            .data
            .as_ref()
            .and_then(|d| d.get(t2_kubernetes::manifests::root::keys::SPEC).cloned())
            .unwrap_or_default();
        crate::stdout::out!("{}", describe_text(&s, &spec_json, &evs));
        Ok(0)
    }

    fn kill(&self, job: &str) -> Result<i32, LauncherError> {
        let (rt, kube) = self.connect()?;
        let r = rt
            .block_on(kill::kill(&kube, job, &user(), KILL_WAIT, || {
                eprintln!(
                    "t2: killing job {job}: deleting it in the foreground; waiting up to {}s for its last pod to stop",
                    KILL_WAIT.as_secs()
                )
            }))
            .map_err(err)?;
        if r.leftovers.is_empty() && r.root_gone {
            crate::stdout::outln!(
                "job {job} killed; it is gone: its last pod stopped and all its objects are gone"
            );
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
        h.push_str(&format!("  {:<20} {:<20} REASON", "SUBMITTED", "SINCE"));
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
        row.push_str(&format!(
            "  {:<20} {:<20} {}",
            r.submitted_at,
            r.state_at.as_deref().unwrap_or("-"),
            r.reason.as_deref().unwrap_or("")
        ));
    }
    row.trim_end().to_string()
}

/// What a watch compares: a change in any of these prints the job again.
fn watch_key(r: &jobs::JobRow) -> String {
    format!("{} {} {:?}", r.state, r.workers, r.reason)
}

/// Prints one job while watching: a table row, a JSON line, or a YAML document.
fn print_watched(r: &jobs::JobRow, output: Output) -> Result<(), LauncherError> {
    match output {
        Output::Text | Output::Wide => {
            crate::stdout::outln!("{}", list_row(r, output == Output::Wide))
        }
        Output::Yaml => crate::stdout::out!("---\n{}", super::to_yaml(r)?),
        Output::Json => {
            let line =
                serde_json::to_string(r).map_err(LauncherError::json("cannot encode a job"))?;
            crate::stdout::outln!("{line}")
        }
    }
    Ok(())
}

/// `t2 list --watch`: the jobs, then each job again when its state, workers or reason change
/// (its final state too, recorded just before its root goes). A job whose root is deleted
/// without a final state shows as `DELETED`.
async fn watch_list(kube: &t2_kubernetes::Kube, output: Output) -> Result<(), LauncherError> {
    use std::collections::BTreeMap;
    use t2_kubernetes::follow::is_final;
    use t2_kubernetes::jobs_watch::{JobsChange, JobsWatch};
    let mut watch = JobsWatch::new(kube);
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut first = true;
    let mut failures = 0u32;
    let started = std::time::Instant::now();
    while started.elapsed() < WATCH_DEADLINE {
        let left = WATCH_DEADLINE.saturating_sub(started.elapsed());
        let Ok(next) = tokio::time::timeout(left, watch.next()).await else {
            break;
        };
        let change = match next {
            Ok(c) => {
                failures = 0;
                c
            }
            // The first list must work; later, a failed watch is retried a few times.
            Err(e) if !first && failures < 5 => {
                failures += 1;
                tracing::warn!(error = %e, "the watch of the jobs failed; watching again");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            Err(e) => return Err(err(e)),
        };
        let show = |seen: &mut BTreeMap<String, String>, r: &jobs::JobRow| {
            let k = watch_key(r);
            if seen.get(&r.id) != Some(&k) {
                print_watched(r, output)?;
                seen.insert(r.id.clone(), k);
            }
            Ok::<_, LauncherError>(())
        };
        match change {
            JobsChange::Listed(rows) => {
                if first && matches!(output, Output::Text | Output::Wide) {
                    crate::stdout::outln!("{}", list_header(output == Output::Wide));
                }
                let gone: Vec<String> = seen
                    .keys()
                    .filter(|id| !rows.iter().any(|r| &r.id == *id))
                    .cloned()
                    .collect();
                // Newest first in the table; after a new list, oldest first, so that lines
                // come in the order things happened.
                if first {
                    rows.iter().try_for_each(|r| show(&mut seen, r))?;
                } else {
                    rows.iter().rev().try_for_each(|r| show(&mut seen, r))?;
                }
                for id in gone {
                    seen.remove(&id);
                }
                first = false;
            }
            JobsChange::Changed(r) => show(&mut seen, &r)?,
            JobsChange::Deleted(mut r) => {
                if !is_final(&r.state) {
                    r.state = "DELETED".into();
                }
                show(&mut seen, &r)?;
                seen.remove(&r.id);
            }
        }
    }
    Ok(())
}

/// `t2 describe JOB` for a Kubernetes job, as `kubectl describe` shows an object.
fn describe_text(
    s: &jobs::JobStatus,
    spec_json: &str,
    evs: &[t2_kubernetes::events::JobEvent],
) -> String {
    use std::fmt::Write as _;
    let age = crate::clock::age;
    let mut out = String::new();
    let _ = writeln!(out, "Job:          {}", s.id);
    let _ = writeln!(out, "Cluster:      kubernetes (namespace {})", s.namespace);
    let _ = writeln!(out, "State:        {}", s.state);
    let _ = writeln!(
        out,
        "Reason:       {}",
        s.reason
            .clone()
            .unwrap_or_else(|| crate::commands::describe::last_change(&s.state))
    );
    if let Some(t) = &s.state_at {
        let _ = writeln!(out, "Since:        {t} ({} ago)", age(t));
    }
    let _ = writeln!(
        out,
        "Submitted:    {} ({} ago) by {}",
        s.submitted_at,
        age(&s.submitted_at),
        s.owner
    );
    match serde_json::from_str::<t2_core::spec::JobSpec>(spec_json) {
        Ok(spec) => {
            let mut command = spec.command.clone();
            command.extend(spec.args.iter().cloned());
            let _ = writeln!(out, "Spec:");
            let _ = writeln!(out, "  Name:         {}", spec.name);
            let _ = writeln!(
                out,
                "  Workers:      {} ({} per pod)",
                spec.workers, spec.workers_per_pod
            );
            let _ = writeln!(
                out,
                "  Command:      {}",
                crate::commands::describe::shell_words(&command)
            );
            let _ = writeln!(out, "  Max restarts: {}", spec.max_restarts);
            let _ = writeln!(
                out,
                "  Resources:    cpu {}, memory {} MB, disk {} MB",
                spec.resources.cpu, spec.resources.memory_mb, spec.resources.disk_mb
            );
            if !spec.env.is_empty() {
                let keys: Vec<&str> = spec.env.keys().map(String::as_str).collect();
                let _ = writeln!(out, "  Env:          {}", keys.join(", "));
            }
        }
        Err(e) => {
            let _ = writeln!(out, "Spec:         unreadable: {e}");
        }
    }
    let _ = writeln!(out, "Package:      sha256 {}", s.package_sha256);
    let _ = writeln!(
        out,
        "Workers:      {} ({} per pod)",
        s.workers, s.workers_per_pod
    );
    for line in jobs::render_status(s, false, &age).lines().skip(2) {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "Events:");
    if evs.is_empty() {
        let _ = writeln!(
            out,
            "  (none of the job's objects in the namespace's events)"
        );
    } else {
        let _ = writeln!(
            out,
            "  {:<8} {:<20} {:>6} {:<34} {:<24} MESSAGE",
            "TYPE", "REASON", "AGE", "OBJECT", "FROM"
        );
        for e in evs {
            let seen = if e.count > 1 {
                format!("{} (x{})", age(&e.time), e.count)
            } else {
                age(&e.time)
            };
            let _ = writeln!(
                out,
                "  {:<8} {:<20} {:>6} {:<34} {:<24} {}",
                e.kind, e.reason, seen, e.object, e.from, e.message
            );
        }
    }
    out
}
