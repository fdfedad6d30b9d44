//! Percentiles and medians.

/// Latency summary of one round of one client on one case.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Median latency, ns.
    pub p50_ns: f64,
    /// 99th percentile latency, ns.
    pub p99_ns: f64,
    /// Calls per second over the timed loops (sequential calls, so 1 / mean latency).
    pub ops_per_s: f64,
    /// Client CPU time (user + system, `getrusage`) per call, ns.
    pub cpu_ns: f64,
}

/// The `q`-quantile (0..=1) of `sorted` by the nearest-rank method.
pub fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

/// Summarises per-call latencies (ns), the wall time of the timed loops and the CPU they
/// used.
pub fn summarise(latencies: &mut [u64], wall_ns: u64, cpu_ns: u64) -> Summary {
    latencies.sort_unstable();
    let n = latencies.len().max(1) as f64;
    Summary {
        p50_ns: quantile(latencies, 0.50),
        p99_ns: quantile(latencies, 0.99),
        ops_per_s: n / (wall_ns.max(1) as f64 / 1e9),
        cpu_ns: cpu_ns as f64 / n,
    }
}

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_medians() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let s = summarise(&mut v, 1_000_000_000, 500);
        assert_eq!(s.p50_ns, 50.0);
        assert_eq!(s.p99_ns, 99.0);
        assert_eq!(s.ops_per_s, 100.0);
        assert_eq!(s.cpu_ns, 5.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
