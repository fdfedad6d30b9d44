//! Prometheus metrics, rendered as text on `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the guest latency histogram.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// The agent's counters.
#[derive(Default)]
pub struct Metrics {
    /// (route, method, status) → count.
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    /// (action, result) → count; result is `ok` or an error code.
    actions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// operation → latency histogram.
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    /// (result) → count.
    reloads: Mutex<BTreeMap<&'static str, u64>>,
    in_flight: AtomicI64,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *map.entry(key).or_default() += 1;
}

impl Metrics {
    /// Counts a finished HTTP request.
    pub fn request(&self, route: &'static str, method: &str, status: u16) {
        bump(&self.requests, (route, method.to_owned(), status));
    }

    /// Counts an action by result (`ok` or an error code).
    pub fn action(&self, action: &'static str, result: &'static str) {
        bump(&self.actions, (action, result));
    }

    /// Records how long a guest operation took (queueing included).
    pub fn guest_latency(&self, operation: &'static str, took: Duration) {
        let mut map = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(operation)
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// Counts a configuration reload.
    pub fn reload(&self, ok: bool) {
        bump(&self.reloads, if ok { "ok" } else { "error" });
    }

    /// A request started; the guard ends it.
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self)
    }

    /// The Prometheus text exposition. `guest_connections` is sampled by the caller.
    pub fn render(&self, guest_connections: usize) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP nova_guest_agent_http_requests_total HTTP requests by route, method and status.\n\
             # TYPE nova_guest_agent_http_requests_total counter\n",
        );
        for ((route, method, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "nova_guest_agent_http_requests_total{{route=\"{route}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(method)
            );
        }
        out.push_str(
            "# HELP nova_guest_agent_actions_total Actions by result (ok or an error code).\n\
             # TYPE nova_guest_agent_actions_total counter\n",
        );
        for ((action, result), n) in self
            .actions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "nova_guest_agent_actions_total{{action=\"{action}\",result=\"{result}\"}} {n}"
            );
        }
        out.push_str(
            "# HELP nova_guest_agent_guest_operation_seconds Guest operation latency, queueing included.\n\
             # TYPE nova_guest_agent_guest_operation_seconds histogram\n",
        );
        for (op, h) in self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            for (bound, n) in BUCKETS.iter().zip(&h.counts) {
                let _ = writeln!(
                    out,
                    "nova_guest_agent_guest_operation_seconds_bucket{{operation=\"{op}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "nova_guest_agent_guest_operation_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {}\n\
                 nova_guest_agent_guest_operation_seconds_sum{{operation=\"{op}\"}} {}\n\
                 nova_guest_agent_guest_operation_seconds_count{{operation=\"{op}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP nova_guest_agent_guest_connections Guest agent clients held open (one connection each at most).\n\
             # TYPE nova_guest_agent_guest_connections gauge\n\
             nova_guest_agent_guest_connections {guest_connections}\n\
             # HELP nova_guest_agent_requests_in_flight HTTP requests being handled.\n\
             # TYPE nova_guest_agent_requests_in_flight gauge\n\
             nova_guest_agent_requests_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP nova_guest_agent_config_reloads_total Configuration reloads (SIGHUP) by result.\n\
             # TYPE nova_guest_agent_config_reloads_total counter\n",
        );
        for (result, n) in self
            .reloads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "nova_guest_agent_config_reloads_total{{result=\"{result}\"}} {n}"
            );
        }
        out
    }
}

/// Ends an in-flight request when dropped.
pub struct InFlight<'a>(&'a Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request("/v1/instances/{uuid}/actions", "POST", 200);
        m.action("ping", "ok");
        m.guest_latency("ping", Duration::from_millis(3));
        let text = m.render(2);
        assert!(text.contains(
            "nova_guest_agent_http_requests_total{route=\"/v1/instances/{uuid}/actions\",method=\"POST\",status=\"200\"} 1"
        ));
        assert!(text.contains("nova_guest_agent_actions_total{action=\"ping\",result=\"ok\"} 1"));
        assert!(text.contains(
            "nova_guest_agent_guest_operation_seconds_bucket{operation=\"ping\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains(
            "nova_guest_agent_guest_operation_seconds_bucket{operation=\"ping\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("nova_guest_agent_guest_connections 2"));
    }
}
