//! Flags of the Kubernetes commands, kubectl-style.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use t2_kubernetes::ClientOptions;

/// How to reach the cluster.
#[derive(Debug, Clone, Default, Args)]
pub struct KubeFlags {
    /// Kubernetes: the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config; inside a pod, the in-cluster configuration).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubernetes: the kubeconfig context (default: its current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Kubernetes: the namespace (default: the context's, else default).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
}

impl KubeSubmitArgs {
    /// The first of these flags that was given, as the user would write it (for refusing
    /// them where they do not apply).
    pub fn first_given(&self) -> Option<&'static str> {
        if self.dry_run.is_some() {
            Some("--dry-run")
        } else if self.output.is_some() {
            Some("-o")
        } else if self.kube.namespace.is_some() {
            Some("-n/--namespace")
        } else if self.kube.context.is_some() {
            Some("--context")
        } else if self.kube.kubeconfig.is_some() {
            Some("--kubeconfig")
        } else {
            None
        }
    }
}

impl KubeFlags {
    /// As client options.
    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
        }
    }

    /// True when any flag was given.
    pub fn any(&self) -> bool {
        self.kubeconfig.is_some() || self.context.is_some() || self.namespace.is_some()
    }
}

/// Which cluster a job is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TargetCluster {
    /// Local when the job is under $T2_HOME, else Kubernetes when a kubeconfig (or a -n/--context flag) is there.
    #[default]
    Auto,
    /// This machine.
    Local,
    /// Kubernetes.
    Kubernetes,
}

/// `--cluster` and the Kubernetes flags, for list, status, logs, kill and scale.
#[derive(Debug, Clone, Default, Args)]
pub struct ClusterTarget {
    /// Which cluster: auto, local or kubernetes.
    #[arg(long, value_enum, default_value_t = TargetCluster::Auto)]
    pub cluster: TargetCluster,
    /// Kubernetes flags.
    #[command(flatten)]
    pub kube: KubeFlags,
}

/// Where `--dry-run` judges the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Print the objects; no cluster is contacted.
    Client,
    /// Send every object with dryRun=All; print each verdict.
    Server,
}

impl KubeSubmitArgs {
    /// True for either dry run.
    pub fn is_dry_run(&self) -> bool {
        self.dry_run.is_some()
    }
}

/// Formats of `--dry-run` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ObjectFormat {
    /// Multi-document YAML (kubectl apply -f -).
    #[default]
    Yaml,
    /// A JSON List.
    Json,
}

/// The Kubernetes flags of `t2 submit`.
#[derive(Debug, Clone, Default, Args)]
pub struct KubeSubmitArgs {
    /// Kubernetes flags.
    #[command(flatten)]
    pub kube: KubeFlags,
    /// Kubernetes: create nothing. `--dry-run` (client) prints every object of the job;
    /// `--dry-run=server` sends each to the API server with dryRun=All (authorization,
    /// validation, quotas, Pod Security and webhooks judge it) and prints its verdict.
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "client",
        value_name = "client|server"
    )]
    pub dry_run: Option<DryRun>,
    /// Kubernetes: format of --dry-run [default: yaml].
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ObjectFormat>,
}

/// What `t2 doctor` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorTarget {
    /// A Kubernetes cluster and namespace.
    Kubernetes,
}

/// Commands of the Kubernetes cluster.
#[derive(Debug, Subcommand)]
pub enum KubeCommand {
    /// Delete ended jobs: local job folders, or (with a Kubernetes flag) what finished or
    /// broken Kubernetes jobs left in the namespace.
    #[command(
        after_help = "Examples:\n  t2 gc                      every ended local job (record, logs, package)\n  t2 gc --older-than 7d      local jobs that ended over a week ago\n  t2 gc -n t2 --dry-run      what Kubernetes jobs of namespace t2 left"
    )]
    Gc {
        /// Only show what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Local: only jobs that ended longer ago than this (e.g. 7d, 12h).
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        /// Which cluster: local unless --cluster kubernetes or a Kubernetes flag says otherwise.
        #[arg(long, value_enum, default_value_t = TargetCluster::Auto)]
        cluster: TargetCluster,
        /// Kubernetes flags.
        #[command(flatten)]
        kube: KubeFlags,
    },
    /// Check that you can run jobs here (permissions, namespace), and print how to fix what is missing.
    #[command(
        after_help = "Examples:\n  t2 doctor kubernetes -n t2\n  t2 doctor kubernetes --context prod -n jobs"
    )]
    Doctor {
        /// What to check.
        #[arg(value_enum)]
        cluster: DoctorTarget,
        /// Kubernetes flags.
        #[command(flatten)]
        kube: KubeFlags,
    },
    /// Roles inside a job's pods.
    #[command(hide = true)]
    Pod {
        /// Which.
        #[command(subcommand)]
        role: PodRole,
    },
}

/// The roles inside a job's pods.
#[derive(Debug, Subcommand)]
pub enum PodRole {
    /// The init container: fetch or wait for the package.
    Init,
    /// Receive the package on stdin (direct delivery).
    Receive {
        /// Exactly this many bytes.
        #[arg(long)]
        bytes: u64,
        /// Their sha256.
        #[arg(long)]
        sha256: String,
        /// Where to put it (default: the pod's package path).
        #[arg(long)]
        dest: Option<PathBuf>,
    },
    /// A worker agent.
    Agent,
    /// The job master.
    Jobmaster,
}
