//! The `t2` command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The environment variables t2 reads, shown under `t2 --help`.
const ENVIRONMENT: &str = "\
Environment:
  T2_HOME            where local jobs live (default: ~/.t2); jobs/<id>/ holds record, logs, package
  T2_CONF_DIR        configuration folder (conf/<cluster>/*.yaml); --conf-dir overrides it
  T2_UPLOADER        --uploader for every local submit (a URL, or `local`)
  T2_UPLOADER_TOKEN  the uploader's token (--uploader-token)
  KUBECONFIG         the kubeconfig for Kubernetes commands (default: ~/.kube/config)
  RUST_LOG           log filter of t2's own diagnostics, e.g. RUST_LOG=debug

Examples:
  t2 submit local examples/pi --workers 8      run a job here, follow it to its end
  t2 submit local job.jar -- a b               pass `a b` to the program
  t2 list;  t2 status JOB;  t2 logs JOB -f;  t2 kill JOB
  t2 submit kubernetes examples/pi -n t2 --dry-run   print the Kubernetes objects";

/// t2: launch distributed jobs on one machine or on Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "t2", version, long_about = None, after_help = ENVIRONMENT)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Submit a job: a directory with job.yaml, a .tar.gz, a .jar or an executable.
    #[command(after_help = "\
Examples:
  t2 submit local examples/pi --workers 8          follow the job; exit 0 when it COMPLETED
  t2 submit local examples/shell -D max_restarts=0 --detach
  t2 submit local hello.jar --class org.example.Hello -- a b
  t2 submit kubernetes examples/pi -n t2 --dry-run -o yaml

Exit codes: 0 COMPLETED, 1 FAILED (or a bad input), 3 KILLED.")]
    Submit(SubmitArgs),
    /// List jobs.
    #[command(
        after_help = "Examples:\n  t2 list\n  t2 list -n t2        Kubernetes jobs of namespace t2"
    )]
    List {
        /// Which cluster (Kubernetes: with --cluster kubernetes, -n or --context).
        #[command(flatten)]
        target: crate::kube_cli::ClusterTarget,
    },
    /// Show a job's state and workers.
    #[command(after_help = "Examples:\n  t2 status pi-1a2b3c4d\n  t2 status pi-1a2b3c4d -o json")]
    Status {
        /// Job ID.
        job: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Which cluster.
        #[command(flatten)]
        target: crate::kube_cli::ClusterTarget,
    },
    /// Print a job's worker output.
    #[command(
        after_help = "Examples:\n  t2 logs pi-1a2b3c4d               every worker, lines prefixed [worker-I]\n  t2 logs pi-1a2b3c4d --worker 3 -f   one worker, until the job ends"
    )]
    Logs {
        /// Job ID.
        job: String,
        /// Only this worker.
        #[arg(long)]
        worker: Option<u32>,
        /// Keep printing new output until the job ends.
        #[arg(short, long)]
        follow: bool,
        /// Which cluster.
        #[command(flatten)]
        target: crate::kube_cli::ClusterTarget,
    },
    /// Kill a job and every process of it.
    #[command(
        after_help = "Example:\n  t2 kill pi-1a2b3c4d     (a foreground t2 submit of it prints `job … KILLED` and exits 3)"
    )]
    Kill {
        /// Job ID.
        job: String,
        /// Which cluster.
        #[command(flatten)]
        target: crate::kube_cli::ClusterTarget,
    },
    /// Delete an ended local job: its record, logs and package.
    #[command(
        after_help = "Example:\n  t2 delete pi-1a2b3c4d      (a job still running must be killed first: t2 kill JOB)"
    )]
    Delete {
        /// Job ID.
        job: String,
    },
    /// Change the number of workers of a running job.
    #[command(
        after_help = "Example:\n  t2 scale elastic-1a2b3c4d 4     workers 2 and 3 start and join; running ones get job_scaled"
    )]
    Scale {
        /// Job ID.
        job: String,
        /// The new number of workers (Kubernetes: a multiple of workers_per_pod).
        workers: u32,
        /// Which cluster.
        #[command(flatten)]
        target: crate::kube_cli::ClusterTarget,
    },
    /// Print t2's version, and the Kubernetes API server's when one is reachable.
    #[command(
        after_help = "Examples:\n  t2 version\n  t2 version -n t2     also ask the cluster of the current kubeconfig context"
    )]
    Version {
        /// Which cluster (Kubernetes is asked only with --cluster kubernetes or a flag).
        #[command(flatten)]
        target: crate::kube_cli::ClusterTarget,
    },
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  t2 completion bash > /etc/bash_completion.d/t2\n  t2 completion zsh > \"${fpath[1]}/_t2\"\n  t2 completion fish > ~/.config/fish/completions/t2.fish"
    )]
    Completion {
        /// bash, zsh or fish (also elvish, powershell).
        shell: clap_complete::Shell,
    },
    /// Kubernetes: gc, doctor.
    #[command(flatten)]
    Kubernetes(crate::kube_cli::KubeCommand),
    /// Serve job packages over HTTP (the package uploader).
    Uploader(crate::uploader::command::UploaderArgs),
    /// Serve the dashboard: every job and worker, live, in a browser (and its REST API).
    Dash(crate::dash::DashArgs),
    /// Build a job's package without running it; prints its sha256 and size.
    #[command(hide = true)]
    Package {
        /// The job: a directory with job.yaml, a .tar.gz, a .jar or an executable.
        source: PathBuf,
        /// Where to write the package.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Run a job master (started by a cluster backend).
    #[command(hide = true)]
    Jobmaster(JobmasterArgs),
    /// Worker commands: the agent, and the local API for job scripts.
    Worker {
        /// Which.
        #[command(subcommand)]
        command: WorkerCommand,
    },
    /// Supervise a prepared local job (what `submit --detach` runs in the background).
    #[command(hide = true)]
    Supervise {
        /// The job's directory.
        #[arg(long)]
        job_dir: PathBuf,
    },
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterKind {
    /// This machine, real processes.
    Local,
    /// A Kubernetes cluster.
    Kubernetes,
}

/// `t2 submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Where to run.
    #[arg(value_enum)]
    pub cluster: ClusterKind,
    /// The job: a directory with job.yaml, a .tar.gz, a .jar or an executable.
    pub package: PathBuf,
    /// Number of workers (overrides job.yaml).
    #[arg(short, long, allow_hyphen_values = true)]
    pub workers: Option<String>,
    /// Job name (overrides job.yaml; sanitised).
    #[arg(long)]
    pub name: Option<String>,
    /// Main class of a .jar (runs `java -cp JAR CLASS`).
    #[arg(long)]
    pub class: Option<String>,
    /// Configuration override, `key=value` (repeatable), e.g. -D max_restarts=2.
    #[arg(short = 'D', value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Return once the job has started; follow it with t2 status/logs.
    #[arg(long)]
    pub detach: bool,
    /// Configuration folder, holding CLUSTER/*.yaml (default: the first of $T2_HOME/conf,
    /// $XDG_CONFIG_HOME/t2, /etc/t2, conf/ beside the t2 executable).
    #[arg(long, env = "T2_CONF_DIR")]
    pub conf_dir: Option<PathBuf>,
    /// Ship the package through an uploader: its URL (http://host:port), or `local` to run one
    /// for this job; agents then download it over HTTP.
    #[arg(long, env = "T2_UPLOADER", value_name = "URL|local")]
    pub uploader: Option<String>,
    /// The uploader's token (for uploads and deletes).
    #[arg(long, env = "T2_UPLOADER_TOKEN", hide_env_values = true)]
    pub uploader_token: Option<String>,
    /// The dashboard the job master reports to, http://host:port (overrides the spec's
    /// `dashboard`).
    #[arg(long, env = "T2_DASHBOARD", value_name = "URL")]
    pub dashboard: Option<String>,
    /// The dashboard's token (overrides the spec's `dashboard_token`).
    #[arg(long, env = "T2_DASHBOARD_TOKEN", hide_env_values = true)]
    pub dashboard_token: Option<String>,
    /// Kubernetes flags (-n, --context, --kubeconfig, --dry-run, -o).
    #[command(flatten)]
    pub kube: crate::kube_cli::KubeSubmitArgs,
    /// Arguments for the program, after `--` (appended to job.yaml's `args`).
    #[arg(last = true, value_name = "PROGRAM ARGS")]
    pub program_args: Vec<String>,
}

/// `t2 jobmaster`.
#[derive(Debug, Args)]
pub struct JobmasterArgs {
    /// The job's directory (spec.json and token).
    #[arg(long)]
    pub job_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
}

/// `t2 worker …`.
#[derive(Debug, Subcommand)]
pub enum WorkerCommand {
    /// Run a worker agent (started by a cluster backend).
    #[command(hide = true)]
    Agent(AgentArgs),
    /// Wait until every worker reaches the barrier; prints SUCCESS, TIMED_OUT or JOB_FAULTY.
    Barrier {
        /// Timeout, e.g. 30s (default: the job's barrier_timeout).
        #[arg(long)]
        timeout: Option<String>,
        /// Use the init barrier.
        #[arg(long)]
        init: bool,
    },
    /// Print the worker list as JSON (waits until all have joined unless --now).
    List {
        /// Do not wait for all workers.
        #[arg(long)]
        now: bool,
    },
    /// Print this worker's identity as JSON.
    Info,
    /// Send a message to every other worker.
    Send {
        /// The message.
        message: String,
    },
    /// Print fault events and messages as JSON lines until the job ends.
    Events,
    /// Run a command on the worker whose host is HOST, through its agent: OpenMPI's remote
    /// shell in MPI jobs (mpirun gets `--mca plm_rsh_agent "t2 worker rsh"`). As with ssh, the
    /// words are joined with spaces and run by /bin/sh -c there; the exit code is the
    /// command's, 255 when it could not be run.
    Rsh {
        /// The target worker's host, as in the MPI hostfile and `t2 worker list`.
        host: String,
        /// The command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
}

/// `t2 worker agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The job's directory.
    #[arg(long)]
    pub job_dir: PathBuf,
    /// This worker's ID.
    #[arg(long)]
    pub worker_id: u32,
    /// Restarts so far.
    #[arg(long, default_value_t = 0)]
    pub restart_count: u32,
    /// Job master address.
    #[arg(long)]
    pub job_master: String,
    /// Job token (default: read from the job directory).
    #[arg(long, env = "T2_JOB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Download the package from this URL (an uploader) instead of reading the job folder's.
    #[arg(long, env = "T2_PACKAGE_URL")]
    pub package_url: Option<String>,
    /// Give up downloading the package after this long.
    #[arg(long, default_value = "2m")]
    pub fetch_timeout: String,
    /// This worker's address as the others see it (the local cluster gives each worker of an
    /// MPI job a loopback address of its own).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
}
