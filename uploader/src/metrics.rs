//! Uploader counters, rendered as Prometheus text at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::store::Totals;

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests by method.
    requests: Mutex<BTreeMap<String, u64>>,
    /// Error answers (4xx and 5xx) by status code.
    errors: Mutex<BTreeMap<u16, u64>>,
    /// Package bytes sent to clients.
    pub bytes_served: AtomicU64,
    /// Package bytes received and stored.
    pub bytes_received: AtomicU64,
    /// Packages deleted by request.
    pub deleted: AtomicU64,
    /// Packages removed by the TTL sweep.
    pub swept: AtomicU64,
}

impl Metrics {
    /// Counts a request and its answer.
    pub fn record(&self, method: &str, status: u16) {
        let method = match method {
            "GET" | "HEAD" | "PUT" | "DELETE" => method,
            _ => "OTHER",
        };
        *lock(&self.requests).entry(method.to_string()).or_default() += 1;
        if status >= 400 {
            *lock(&self.errors).entry(status).or_default() += 1;
        }
    }

    /// Adds `n` bytes served.
    pub fn served(&self, n: u64) {
        self.bytes_served.fetch_add(n, Ordering::Relaxed);
    }

    /// The Prometheus text exposition, with the store's `totals` and uploads in progress.
    pub fn render(&self, totals: Totals, uploads: usize) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        let requests = lock(&self.requests)
            .iter()
            .map(|(m, v)| (format!("{{method=\"{m}\"}}"), *v))
            .collect();
        metric(
            "t2_uploader_requests_total",
            "counter",
            "HTTP requests by method.",
            requests,
        );
        let errors: Vec<_> = lock(&self.errors)
            .iter()
            .map(|(s, v)| (format!("{{status=\"{s}\"}}"), *v))
            .collect();
        let total_errors = errors.iter().map(|(_, v)| v).sum();
        metric(
            "t2_uploader_errors_total",
            "counter",
            "Error answers (4xx and 5xx).",
            vec![(String::new(), total_errors)],
        );
        metric(
            "t2_uploader_errors_by_status_total",
            "counter",
            "Error answers by status.",
            errors,
        );
        let plain = |v: &AtomicU64| vec![(String::new(), v.load(Ordering::Relaxed))];
        metric(
            "t2_uploader_bytes_served_total",
            "counter",
            "Package bytes sent.",
            plain(&self.bytes_served),
        );
        metric(
            "t2_uploader_bytes_received_total",
            "counter",
            "Package bytes received and stored.",
            plain(&self.bytes_received),
        );
        metric(
            "t2_uploader_packages_deleted_total",
            "counter",
            "Packages deleted on request.",
            plain(&self.deleted),
        );
        metric(
            "t2_uploader_packages_swept_total",
            "counter",
            "Packages removed by the TTL sweep.",
            plain(&self.swept),
        );
        metric(
            "t2_uploader_packages_stored",
            "gauge",
            "Packages stored.",
            vec![(String::new(), totals.count)],
        );
        metric(
            "t2_uploader_bytes_stored",
            "gauge",
            "Bytes of packages stored.",
            vec![(String::new(), totals.bytes)],
        );
        metric(
            "t2_uploader_uploads_in_progress",
            "gauge",
            "Uploads running now.",
            vec![(String::new(), uploads as u64)],
        );
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.record("GET", 200);
        m.record("PUT", 400);
        m.record("BREW", 405);
        m.served(10);
        let text = m.render(
            Totals {
                count: 2,
                bytes: 30,
            },
            1,
        );
        for line in [
            "t2_uploader_requests_total{method=\"GET\"} 1",
            "t2_uploader_requests_total{method=\"OTHER\"} 1",
            "t2_uploader_errors_total 2",
            "t2_uploader_errors_by_status_total{status=\"400\"} 1",
            "t2_uploader_bytes_served_total 10",
            "t2_uploader_packages_stored 2",
            "# TYPE t2_uploader_bytes_stored gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
