//! `t2 uploader`: runs the package uploader until SIGTERM or Ctrl-C; prints
//! `T2_UPLOADER_ADDR=http://host:port` (`https://` with `--tls-cert`/`--tls-key`) as its
//! first line on stdout.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use t2_core::duration::{parse_within, MAX_DURATION, MAX_WAIT};

use crate::error::LauncherError;
use t2_uploader::auth::{self, TokenSource};
use t2_uploader::limits::{parse_size, Limits};
use t2_uploader::server::{run, UploaderConfig};

/// `t2 uploader`.
#[derive(Debug, Args)]
pub struct UploaderArgs {
    /// Address to listen on (0.0.0.0:PORT to serve other machines).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Folder of the package store (default: $T2_HOME/uploader).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Token for uploads and deletes (default: --token-file, else one made and kept in DIR/uploader.token).
    #[arg(long, env = "T2_UPLOADER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Largest package accepted (e.g. 1G, 512M).
    #[arg(long, default_value = "1G")]
    pub max_package_size: String,
    /// Disk space that must stay free after an upload.
    #[arg(long, default_value = "256M")]
    pub min_free: String,
    /// Most bytes stored in all (default: no quota besides the disk).
    #[arg(long)]
    pub max_store: Option<String>,
    /// Uploads accepted at once; more are answered 503 (retry).
    #[arg(long, default_value_t = 8)]
    pub max_uploads: usize,
    /// An upload silent for this long is abandoned.
    #[arg(long, default_value = "30s")]
    pub upload_idle_timeout: String,
    /// Packages nobody uploaded or downloaded for this long are removed.
    #[arg(long, default_value = "72h")]
    pub ttl: String,
    /// How often to look for such packages.
    #[arg(long, default_value = "10m")]
    pub sweep_interval: String,
    /// A running job's reference to its package is a lease it renews (three times per lease);
    /// a package with a live lease is never swept, one not renewed for this long has lapsed.
    #[arg(long, default_value = "10m")]
    pub lease: String,
    /// Serve HTTPS with this certificate (PEM, with its chain); needs --tls-key.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Stop when this process is gone (set by the local cluster for its own uploader).
    #[arg(long, hide = true)]
    pub parent_pid: Option<u32>,
}

fn flag<T>(name: &str, r: Result<T, String>) -> Result<T, LauncherError> {
    r.map_err(|e| LauncherError::Usage(format!("--{name}: {e}")))
}

/// Runs `t2 uploader`.
pub async fn serve(args: UploaderArgs) -> Result<i32, LauncherError> {
    let dir = match args.dir {
        Some(d) => d,
        None => t2_core::jobdir::t2_home()?.join("uploader"),
    };
    // Flags and the address first: a --listen that cannot be used leaves no --dir behind.
    let (tls, scheme) =
        crate::roles::https_flags(args.tls_cert.as_deref(), args.tls_key.as_deref())?;
    let (listener, addr) = crate::roles::listen(&args.listen).await?;
    let limits = Limits {
        max_package_bytes: flag("max-package-size", parse_size(&args.max_package_size))?,
        min_free_bytes: flag("min-free", parse_size(&args.min_free))?,
        max_store_bytes: args
            .max_store
            .as_deref()
            .map(|s| flag("max-store", parse_size(s)))
            .transpose()?,
        max_uploads: args.max_uploads,
        upload_idle: within(
            "--upload-idle-timeout",
            &args.upload_idle_timeout,
            Duration::from_secs(3600),
        )?,
    };
    let ttl = within("--ttl", &args.ttl, MAX_DURATION)?;
    let sweep_interval =
        within("--sweep-interval", &args.sweep_interval, MAX_WAIT)?.max(Duration::from_millis(50));
    let lease = within("--lease", &args.lease, MAX_WAIT)?.max(Duration::from_millis(300));
    let created = !dir.exists();
    std::fs::create_dir_all(&dir).map_err(LauncherError::io(format!(
        "cannot create {}",
        dir.display()
    )))?;
    let remove_new_dir = |e: LauncherError| {
        if created {
            let _ = std::fs::remove_dir_all(&dir);
        }
        e
    };
    let (token, source) = auth::resolve(args.token.as_deref(), args.token_file.as_deref(), &dir)
        .map_err(|e| remove_new_dir(LauncherError::Usage(e.to_string())))?;
    println!("T2_UPLOADER_ADDR={scheme}://{addr}");
    match &source {
        TokenSource::Generated(p) => {
            tracing::info!(token_file = %p.display(), "uploads need the token kept in this file")
        }
        TokenSource::File(p) => {
            tracing::info!(token_file = %p.display(), "uploads need the token from this file")
        }
        TokenSource::Given => {}
    }
    let config = UploaderConfig {
        dir,
        token,
        limits,
        ttl,
        sweep_interval,
        lease,
        tls,
    };
    let parent = args.parent_pid;
    let shutdown = async move {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = parent_gone(parent) => {
                        tracing::info!("the process that started this uploader is gone; stopping");
                    }
                }
            }
            _ => parent_gone(parent).await,
        }
    };
    run(listener, config, shutdown).await?;
    Ok(0)
}

/// Completes when process `pid` no longer exists (never, without one).
async fn parent_gone(pid: Option<u32>) {
    let Some(pid) = pid else {
        return std::future::pending().await;
    };
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    while nix::sys::signal::kill(pid, None).is_ok() {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A duration flag from 1ms to `max`.
fn within(name: &str, text: &str, max: Duration) -> Result<Duration, LauncherError> {
    parse_within(name, text, Duration::from_millis(1), max).map_err(LauncherError::Usage)
}
