//! `t2 dash`: runs the dashboard (crate `t2-dashboard`) until SIGTERM or Ctrl-C; prints
//! `T2_DASHBOARD_ADDR=http://host:port` (`https://` with `--tls-cert`/`--tls-key`) as its
//! first line on stdout. Its token comes from
//! `--token`, `$T2_DASHBOARD_TOKEN` or `--token-file`; without one it is made once and kept
//! in `$T2_HOME/dashboard.token` (mode 0600), as the uploader keeps its own.

use std::path::PathBuf;

use clap::Args;

use crate::error::LauncherError;
use t2_uploader::auth::{self, TokenSource};

/// `t2 dash`.
#[derive(Debug, Args)]
pub struct DashArgs {
    /// Address to listen on (0.0.0.0:8080 to serve other machines).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// The SQLite file of the history (default: $T2_HOME/dashboard.db).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Token for reports and kills (default: --token-file, else one made and kept in
    /// $T2_HOME/dashboard.token).
    #[arg(long, env = "T2_DASHBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Serve HTTPS with this certificate (PEM, with its chain); needs --tls-key.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
}

/// Runs `t2 dash`.
pub async fn serve(args: DashArgs) -> Result<i32, LauncherError> {
    let home = t2_core::jobdir::t2_home()?;
    let (tls, scheme) =
        crate::roles::https_flags(args.tls_cert.as_deref(), args.tls_key.as_deref())?;
    let db = match args.db {
        Some(d) => d,
        None => home.join("dashboard.db"),
    };
    let db_dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&db_dir).map_err(LauncherError::io(format!(
        "cannot create {}",
        db_dir.display()
    )))?;
    let needs_home =
        args.token.as_deref().is_none_or(|t| t.trim().is_empty()) && args.token_file.is_none();
    if needs_home {
        std::fs::create_dir_all(&home).map_err(LauncherError::io(format!(
            "cannot create {}",
            home.display()
        )))?;
    }
    let (token, source) = auth::resolve_kept(
        args.token.as_deref(),
        args.token_file.as_deref(),
        &home.join("dashboard.token"),
    )
    .map_err(|e| LauncherError::Usage(e.to_string()))?;
    let (listener, addr) = crate::roles::listen(&args.listen).await?;
    println!("T2_DASHBOARD_ADDR={scheme}://{addr}");
    match &source {
        TokenSource::Generated(p) => {
            tracing::info!(token_file = %p.display(), "reports and kills need the token kept in this file")
        }
        TokenSource::File(p) => {
            tracing::info!(token_file = %p.display(), "reports and kills need the token from this file")
        }
        TokenSource::Given => {}
    }
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        if let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        } else {
            std::future::pending::<()>().await
        }
    };
    t2_dashboard::run(
        listener,
        t2_dashboard::DashboardConfig { db, token, tls },
        shutdown,
    )
    .await
    .map_err(|e| LauncherError::Failed(e.to_string()))?;
    Ok(0)
}
