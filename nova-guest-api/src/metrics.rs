//! Prometheus text metrics (`GET /metrics`): request counts by route and status, request
//! latency histogram, in-flight requests, token cache hits and misses, and outbound calls by
//! service and result.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// The process's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<(&'static str, String), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
    in_flight: AtomicI64,
}

/// Counter families.
const HELP: &[(&str, &str)] = &[
    (
        "nova_guest_api_requests_total",
        "HTTP requests by route and status.",
    ),
    (
        "nova_guest_api_token_cache_total",
        "Token validations by cache result.",
    ),
    (
        "nova_guest_api_upstream_requests_total",
        "Outbound calls by service and result.",
    ),
    (
        "nova_guest_api_notifications_total",
        "Notifications received, by result (accepted, ignored, malformed).",
    ),
    (
        "nova_guest_api_notifications_acked_total",
        "Notifications acked (their applies done, given up, or nothing to do).",
    ),
    (
        "nova_guest_api_auto_applies_total",
        "Automatic applies by result (success, failed, given_up).",
    ),
];

impl Metrics {
    /// Adds one to counter `family` with the label set `labels` (`a="b",c="d"`).
    pub fn inc(&self, family: &'static str, labels: String) {
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((family, labels)).or_insert(0) += 1;
        }
    }

    /// Records one finished request.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        self.inc(
            "nova_guest_api_requests_total",
            format!("route=\"{route}\",code=\"{status}\""),
        );
        let s = elapsed.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// A request started (+1) or ended (-1).
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.fetch_add(delta, Ordering::Relaxed);
    }

    /// The value of one counter (tests and diagnostics).
    pub fn counter(&self, family: &'static str, labels: &str) -> u64 {
        self.counters
            .lock()
            .ok()
            .and_then(|c| c.get(&(family, labels.to_owned())).copied())
            .unwrap_or(0)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        for (family, help) in HELP {
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} counter");
            for ((f, labels), v) in &counters {
                if f == family {
                    let _ = writeln!(out, "{f}{{{labels}}} {v}");
                }
            }
        }
        let h = "nova_guest_api_request_duration_seconds";
        let _ = writeln!(out, "# HELP {h} Request latency.\n# TYPE {h} histogram");
        for (i, b) in BUCKETS.iter().enumerate() {
            let v = self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{h}_bucket{{le=\"{b}\"}} {v}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{h}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{h}_sum {sum}\n{h}_count {count}");
        let g = "nova_guest_api_requests_in_flight";
        let _ = writeln!(
            out,
            "# HELP {g} Requests being handled.\n# TYPE {g} gauge\n{g} {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.request("guest", 200, Duration::from_millis(3));
        m.inc("nova_guest_api_token_cache_total", "result=\"hit\"".into());
        let text = m.render();
        assert!(text.contains("nova_guest_api_requests_total{route=\"guest\",code=\"200\"} 1"));
        assert!(text.contains("nova_guest_api_token_cache_total{result=\"hit\"} 1"));
        assert!(text.contains("nova_guest_api_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("nova_guest_api_request_duration_seconds_bucket{le=\"0.001\"} 0"));
    }
}
