//! `t2 submit local|kubernetes`: one subcommand per cluster, so that each one's `--help`
//! shows only the flags that apply to it; both become one [`SubmitArgs`].

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::ClusterKind;
use crate::kube_cli::args::{KubeFlags, KubeSubmitArgs, ObjectFormat};

/// Examples under `t2 submit local --help`.
const LOCAL_HELP: &str = "\
Examples:
  t2 submit local examples/pi --workers 8          follow the job; exit 0 when it COMPLETED
  t2 submit local examples/shell -D max_restarts=0 --detach
  t2 submit local hello.jar --class org.example.Hello -- a b
  t2 submit local examples/pi --uploader local     agents download the package over HTTP

Exit codes: 0 COMPLETED, 1 FAILED (or a bad input), 3 KILLED (Ctrl-C, t2 kill, a closed terminal).";

/// Examples under `t2 submit kubernetes --help`.
const KUBERNETES_HELP: &str = "\
Examples:
  t2 submit kubernetes examples/pi -n t2 --dry-run -o yaml   print every object, create nothing
  t2 submit kubernetes examples/pi --workers 8 -n t2         follow the job to its end
  t2 submit kubernetes examples/pi -n t2 --context prod --detach

Exit codes: 0 COMPLETED, 1 FAILED (or a bad input), 3 KILLED.";

/// Where to run the job.
#[derive(Debug, Subcommand)]
pub enum SubmitTarget {
    /// Run the job on this machine: a job master and one process per worker.
    #[command(after_help = LOCAL_HELP)]
    Local(LocalSubmit),
    /// Run the job on Kubernetes (or print its objects with --dry-run).
    #[command(after_help = KUBERNETES_HELP)]
    Kubernetes(KubernetesSubmit),
}

/// What every submit takes.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job: a directory with job.yaml, a .tar.gz, a .jar or an executable.
    pub package: PathBuf,
    /// Number of workers (overrides job.yaml).
    #[arg(short, long, allow_hyphen_values = true, value_name = "N")]
    pub workers: Option<String>,
    /// Job name (overrides job.yaml; made a valid name if it is not one).
    #[arg(long)]
    pub name: Option<String>,
    /// Main class of a .jar without Main-Class (runs `java -cp JAR CLASS`).
    #[arg(long)]
    pub class: Option<String>,
    /// Set a job spec key, `key=value` (repeatable), e.g. -D max_restarts=2 (see t2 config view).
    #[arg(short = 'D', value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Return once the job has started, printing its ID; follow it with t2 status/logs.
    #[arg(long)]
    pub detach: bool,
    /// Configuration folder, holding CLUSTER/*.yaml (default: the first of $T2_HOME/conf,
    /// $XDG_CONFIG_HOME/t2, /etc/t2, conf/ beside the t2 executable).
    #[arg(long, env = "T2_CONF_DIR", value_name = "DIR")]
    pub conf_dir: Option<PathBuf>,
    /// The dashboard the job master reports to, http[s]://host:port (overrides the spec's
    /// `dashboard`).
    #[arg(long, env = "T2_DASHBOARD", value_name = "URL")]
    pub dashboard: Option<String>,
    /// The dashboard's token (overrides the spec's `dashboard_token`).
    #[arg(long, env = "T2_DASHBOARD_TOKEN", hide_env_values = true)]
    pub dashboard_token: Option<String>,
    /// For an https:// dashboard: the CA certificate (PEM) its certificate must be signed
    /// by; the job master trusts nothing else (sets the spec's `dashboard_ca`).
    #[arg(long, env = "T2_DASHBOARD_CA", value_name = "FILE")]
    pub dashboard_ca: Option<PathBuf>,
}

/// `t2 submit local`.
#[derive(Debug, Args)]
pub struct LocalSubmit {
    /// The job and its settings.
    #[command(flatten)]
    pub job: JobArgs,
    /// Ship the package through an uploader: its URL (http://host:port), or `local` to run one
    /// for this job; agents then download it over HTTP.
    #[arg(long, env = "T2_UPLOADER", value_name = "URL|local")]
    pub uploader: Option<String>,
    /// The uploader's token (for uploads and deletes).
    #[arg(long, env = "T2_UPLOADER_TOKEN", hide_env_values = true)]
    pub uploader_token: Option<String>,
    /// For an https:// uploader: the CA certificate (PEM) that signed its certificate; t2
    /// and the agents trust only it.
    #[arg(long, env = "T2_UPLOADER_CA", value_name = "FILE")]
    pub uploader_ca: Option<PathBuf>,
    /// Kubernetes flags, accepted only to say that they are for Kubernetes jobs.
    #[command(flatten)]
    pub refused: RefusedKubeFlags,
    /// Arguments for the program, after `--` (appended to job.yaml's `args`).
    #[arg(last = true, value_name = "PROGRAM ARGS")]
    pub program_args: Vec<String>,
}

/// The Kubernetes flags, hidden under `t2 submit local`: given there, they get one line
/// naming the flag instead of clap's "unexpected argument".
#[derive(Debug, Args)]
pub struct RefusedKubeFlags {
    /// Kubernetes only.
    #[arg(long, hide = true, num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    dry_run: Option<String>,
    /// Kubernetes only.
    #[arg(short = 'o', long, hide = true)]
    output: Option<String>,
    /// Kubernetes only.
    #[arg(short = 'n', long, hide = true)]
    namespace: Option<String>,
    /// Kubernetes only.
    #[arg(long, hide = true)]
    context: Option<String>,
    /// Kubernetes only.
    #[arg(long, hide = true)]
    kubeconfig: Option<PathBuf>,
}

/// `t2 submit kubernetes`.
#[derive(Debug, Args)]
pub struct KubernetesSubmit {
    /// The job and its settings.
    #[command(flatten)]
    pub job: JobArgs,
    /// The token of the uploader in the namespace (kubernetes.upload).
    #[arg(long, env = "T2_UPLOADER_TOKEN", hide_env_values = true)]
    pub uploader_token: Option<String>,
    /// Kubernetes flags (-n, --context, --kubeconfig, --dry-run, -o).
    #[command(flatten)]
    pub kube: KubeSubmitArgs,
    /// Arguments for the program, after `--` (appended to job.yaml's `args`).
    #[arg(last = true, value_name = "PROGRAM ARGS")]
    pub program_args: Vec<String>,
}

/// A submit, whichever cluster it is for.
#[derive(Debug)]
pub struct SubmitArgs {
    /// Where to run.
    pub cluster: ClusterKind,
    /// The job: a directory with job.yaml, a .tar.gz, a .jar or an executable.
    pub package: PathBuf,
    /// `--workers`.
    pub workers: Option<String>,
    /// `--name`.
    pub name: Option<String>,
    /// `--class`.
    pub class: Option<String>,
    /// `-D key=value`.
    pub overrides: Vec<String>,
    /// `--detach`.
    pub detach: bool,
    /// `--conf-dir`, `$T2_CONF_DIR`.
    pub conf_dir: Option<PathBuf>,
    /// `--uploader` (local).
    pub uploader: Option<String>,
    /// `--uploader-token`.
    pub uploader_token: Option<String>,
    /// `--uploader-ca` (local).
    pub uploader_ca: Option<PathBuf>,
    /// `--dashboard`.
    pub dashboard: Option<String>,
    /// `--dashboard-token`.
    pub dashboard_token: Option<String>,
    /// `--dashboard-ca`.
    pub dashboard_ca: Option<PathBuf>,
    /// The Kubernetes flags (for a local submit: those given, to be refused).
    pub kube: KubeSubmitArgs,
    /// Arguments after `--`.
    pub program_args: Vec<String>,
}

impl SubmitTarget {
    /// One submit's arguments.
    pub fn into_args(self) -> SubmitArgs {
        let (cluster, job, uploader, uploader_token, uploader_ca, kube, program_args) = match self {
            Self::Local(l) => {
                let r = l.refused;
                let kube = KubeSubmitArgs {
                    kube: KubeFlags {
                        kubeconfig: r.kubeconfig,
                        context: r.context,
                        namespace: r.namespace,
                    },
                    dry_run: r.dry_run.map(|_| crate::kube_cli::args::DryRun::Client),
                    output: r.output.map(|_| ObjectFormat::Yaml),
                };
                (
                    ClusterKind::Local,
                    l.job,
                    l.uploader,
                    l.uploader_token,
                    l.uploader_ca,
                    kube,
                    l.program_args,
                )
            }
            Self::Kubernetes(k) => (
                ClusterKind::Kubernetes,
                k.job,
                None,
                k.uploader_token,
                None,
                k.kube,
                k.program_args,
            ),
        };
        SubmitArgs {
            cluster,
            package: job.package,
            workers: job.workers,
            name: job.name,
            class: job.class,
            overrides: job.overrides,
            detach: job.detach,
            conf_dir: job.conf_dir,
            uploader,
            uploader_token,
            uploader_ca,
            dashboard: job.dashboard,
            dashboard_token: job.dashboard_token,
            dashboard_ca: job.dashboard_ca,
            kube,
            program_args,
        }
    }
}
