//! The `t2` command line.

pub mod submit;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use submit::{SubmitArgs, SubmitTarget};

/// The environment variables t2 reads, shown under `t2 --help`.
const ENVIRONMENT: &str = "\
Environment:
  T2_HOME             where local jobs live (default: ~/.t2); jobs/<id>/ holds record, logs, package
  T2_CONF_DIR         configuration folder (CLUSTER/*.yaml), as --conf-dir; without either, the
                      first of $T2_HOME/conf, $XDG_CONFIG_HOME/t2, /etc/t2, conf/ beside t2
  T2_UPLOADER         --uploader for every local submit (a URL, or `local`)
  T2_UPLOADER_TOKEN   the uploader's token (--uploader-token)
  T2_DASHBOARD        --dashboard for every submit; T2_DASHBOARD_TOKEN its token
  KUBECONFIG          the kubeconfig for Kubernetes commands (default: ~/.kube/config)
  RUST_LOG            log filter of t2's own diagnostics, e.g. RUST_LOG=debug

Examples:
  t2 submit local examples/pi --workers 8      run a job here, follow it to its end
  t2 submit local job.jar -- a b               pass `a b` to the program
  t2 list;  t2 status JOB;  t2 logs JOB -f;  t2 describe JOB;  t2 kill JOB
  t2 config view examples/pi                   the job's spec, and where each value comes from
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
  t2 submit local examples/pi --workers 8              run it here, follow it to its end
  t2 submit kubernetes examples/pi -n t2 --dry-run     print its Kubernetes objects

See `t2 submit local --help` and `t2 submit kubernetes --help` for each one's flags.")]
    Submit {
        /// Where to run.
        #[command(subcommand)]
        target: SubmitTarget,
    },
    /// List jobs, newest first.
    #[command(
        after_help = "Examples:\n  t2 list\n  t2 list -o wide          also submitted, ended, reason\n  t2 list --watch          then one line per job whose state changes (Ctrl-C ends it)\n  t2 list -o json\n  t2 list -n t2            Kubernetes jobs of namespace t2"
    )]
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Keep watching: after the list, print a job again whenever its state or workers change.
        #[arg(short, long)]
        watch: bool,
        /// Which cluster (Kubernetes: with --cluster kubernetes, -n or --context).
        #[command(flatten)]
        target: crate::kube_cli::ClusterTarget,
    },
    /// Show a job's state and workers.
    #[command(
        after_help = "Examples:\n  t2 status pi-1a2b3c4d\n  t2 status pi-1a2b3c4d -o wide     also each worker's last line of output\n  t2 status pi-1a2b3c4d -o json"
    )]
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
    /// Print a job's worker output (or its job master's log).
    #[command(
        after_help = "Examples:\n  t2 logs pi-1a2b3c4d                  every worker, lines in time order, prefixed [worker-I]\n  t2 logs pi-1a2b3c4d --worker 3 -f     one worker, until the job ends\n  t2 logs pi-1a2b3c4d --tail 20 --timestamps\n  t2 logs pi-1a2b3c4d --since 5m\n  t2 logs pi-1a2b3c4d --jobmaster       the job master's log"
    )]
    Logs {
        /// Job ID.
        job: String,
        /// Only this worker.
        #[arg(long, conflicts_with = "jobmaster")]
        worker: Option<u32>,
        /// The job master's log instead of the workers' output.
        #[arg(long)]
        jobmaster: bool,
        /// Keep printing new output until the job ends.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (of all the workers together).
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Only lines written in the last DURATION, e.g. 30s, 5m, 2h.
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Start each line with the time it was written (RFC 3339, UTC).
        #[arg(long)]
        timestamps: bool,
        /// Which cluster.
        #[command(flatten)]
        target: crate::kube_cli::ClusterTarget,
    },
    /// Show everything about one job: its spec, workers, events and why it is in its state.
    #[command(
        after_help = "Examples:\n  t2 describe pi-1a2b3c4d\n  t2 describe pi-1a2b3c4d -n t2     a Kubernetes job"
    )]
    Describe {
        /// Job ID.
        job: String,
        /// Which cluster.
        #[command(flatten)]
        target: crate::kube_cli::ClusterTarget,
    },
    /// Configuration: what a job's spec would be, and where each value comes from.
    #[command(
        after_help = "Examples:\n  t2 config view                          the defaults and conf/local/*.yaml\n  t2 config view examples/pi -w 4         that job's merged spec, as a submit would make it\n  t2 config view examples/pi --cluster kubernetes --conf-dir ./conf"
    )]
    Config {
        /// Which.
        #[command(subcommand)]
        command: ConfigCommand,
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
    #[command(
        after_help = "Examples:\n  t2 uploader                                  127.0.0.1:8080, store in $T2_HOME/uploader\n  t2 uploader --listen 0.0.0.0:8080 --token-file /etc/t2/uploader.token\n  t2 submit local examples/pi --uploader http://127.0.0.1:8080 --uploader-token T"
    )]
    Uploader(crate::uploader::command::UploaderArgs),
    /// Serve the dashboard: every job and worker, live, in a browser (and its REST API).
    #[command(
        after_help = "Examples:\n  t2 dash                                 then open http://127.0.0.1:8080/\n  t2 dash --listen 0.0.0.0:8080 --db /var/lib/t2/dash.db\n  t2 submit local examples/pi --dashboard http://127.0.0.1:8080 --dashboard-token T"
    )]
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
    /// Inside a job: what job scripts call (barrier, worker list, identity, messages, events).
    #[command(
        after_help = "Examples (in a job's program, e.g. examples/shell/run.sh):\n  t2 worker barrier --timeout 30s     wait until every worker is here\n  t2 worker list                      every worker, as JSON\n  t2 worker send hello                a message to the other workers\n  t2 worker events                    failures, restarts, scaling, messages as JSON lines"
    )]
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
    /// For people, with more columns.
    Wide,
    /// For programs.
    Json,
    /// For programs and people.
    Yaml,
}

/// `t2 config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the merged job spec, each key with the layer it came from.
    #[command(
        after_help = "Examples:\n  t2 config view                          the defaults and conf/local/*.yaml\n  t2 config view examples/pi -w 4 -D max_restarts=0\n  t2 config view examples/pi --cluster kubernetes -o yaml"
    )]
    View(ConfigViewArgs),
}

/// `t2 config view`.
#[derive(Debug, Args)]
pub struct ConfigViewArgs {
    /// A job (directory with job.yaml, .tar.gz, .jar, executable); without one, only the
    /// defaults and the configuration folder.
    pub package: Option<PathBuf>,
    /// Which cluster's configuration.
    #[arg(long, value_enum, default_value_t = ClusterKind::Local)]
    pub cluster: ClusterKind,
    /// Number of workers, as `t2 submit --workers`.
    #[arg(short, long, allow_hyphen_values = true, value_name = "N")]
    pub workers: Option<String>,
    /// Job name, as `t2 submit --name`.
    #[arg(long)]
    pub name: Option<String>,
    /// Set a job spec key, `key=value` (repeatable).
    #[arg(short = 'D', value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Configuration folder, holding CLUSTER/*.yaml.
    #[arg(long, env = "T2_CONF_DIR", value_name = "DIR")]
    pub conf_dir: Option<PathBuf>,
    /// Output format: text (key, value, origin), json or yaml (the spec, then the origins).
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Where a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterKind {
    /// This machine, real processes.
    Local,
    /// A Kubernetes cluster.
    Kubernetes,
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
