//! The TTL sweep: packages nobody uploaded or downloaded for longer than the TTL, and on which
//! no running job holds a live lease (see [`crate::lease`]), were abandoned (their job never
//! said it ended) and are removed, with temporary files that no upload is writing any more.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{info, warn};

use crate::server::App;

/// Sweeps every `interval` until the task is dropped.
pub async fn run(app: Arc<App>, ttl: Duration, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let app2 = app.clone();
        match tokio::task::spawn_blocking(move || sweep_once(&app2, ttl)).await {
            Ok(0) => {}
            Ok(n) => info!(removed = n, ttl = ?ttl, "swept abandoned packages"),
            Err(e) => warn!(error = %e, "sweep task failed"),
        }
    }
}

/// Removes packages unused for longer than `ttl` that no live lease holds, and stale
/// temporary files; returns how many packages went.
pub fn sweep_once(app: &App, ttl: Duration) -> usize {
    let now = SystemTime::now();
    let age = |m: &std::fs::Metadata| {
        m.modified()
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default()
    };
    let mut removed = 0;
    for (id, meta) in app.store.list() {
        if age(&meta) > ttl {
            match app.store.remove_unused_for(&id, ttl) {
                Ok(true) => {
                    removed += 1;
                    app.metrics.swept.fetch_add(1, Ordering::Relaxed);
                    info!(package = %id, "package unused for longer than the TTL; removed");
                }
                Ok(false) => {}
                Err(e) => warn!(package = %id, error = %e, "cannot remove an expired package"),
            }
        }
    }
    let stale = (app.gate.limits.upload_idle * 2).max(crate::store::STALE_TEMP);
    if let Ok(entries) = std::fs::read_dir(app.store.temp_dir()) {
        for e in entries.flatten() {
            if e.metadata().is_ok_and(|m| age(&m) > stale) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    removed
}
