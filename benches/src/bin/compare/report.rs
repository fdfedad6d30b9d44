//! Aggregation over rounds, the Markdown table and the goals of issue 5.
//!
//! Every figure is the median over rounds of that round's value. Every ratio is the median
//! over rounds of the ratio measured within the round (client against raw in the same round,
//! interleaved), so it need not equal the quotient of the two medians shown.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use qga_benches::stats::{Summary, median};
use qga_benches::sys;

use crate::cli::CliRound;
use crate::clients::{Case, Who};
use crate::exec::{DecodeRound, ExecRound};
use crate::file::FileRound;
use crate::scale::{self, CONNECTIONS, ScaleRound};

/// The machine and the run.
#[derive(Debug, Default)]
pub(crate) struct Env {
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) pinning: String,
    pub(crate) versions: String,
    pub(crate) agent_starts: u32,
    pub(crate) rounds: usize,
    pub(crate) elapsed: Duration,
}

/// Everything measured.
#[derive(Debug)]
pub(crate) struct Results {
    pub(crate) env: Env,
    python: bool,
    round_trips: HashMap<Case, Vec<HashMap<Who, Summary>>>,
    pub(crate) decode: Vec<DecodeRound>,
    pub(crate) exec: Vec<ExecRound>,
    pub(crate) file: Vec<FileRound>,
    pub(crate) cli: Vec<CliRound>,
    pub(crate) scale: Vec<ScaleRound>,
}

/// One metric of one client over the rounds: the median value and the median within-round
/// ratio against raw.
#[derive(Debug, Clone, Copy)]
struct Cell {
    value: f64,
    ratio: f64,
}

#[derive(Debug, Clone, Copy)]
enum Metric {
    P50,
    P99,
    Ops,
    Cpu,
}

impl Metric {
    fn of(self, s: &Summary) -> f64 {
        match self {
            Self::P50 => s.p50_ns,
            Self::P99 => s.p99_ns,
            Self::Ops => s.ops_per_s,
            Self::Cpu => s.cpu_ns,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::P50 => "round trip p50",
            Self::P99 => "round trip p99",
            Self::Ops => "ops/s",
            Self::Cpu => "client CPU per call",
        }
    }

    /// True when a larger value is better.
    fn higher_is_better(self) -> bool {
        matches!(self, Self::Ops)
    }

    fn format(self, v: f64) -> String {
        match self {
            Self::Ops => format_count(v),
            _ => format_ns(v),
        }
    }
}

fn format_ns(ns: f64) -> String {
    if ns.is_nan() {
        "–".into()
    } else if ns < 10_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

fn format_count(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn format_rate(bytes_per_s: f64) -> String {
    format!("{:.2} GB/s", bytes_per_s / 1e9)
}

fn ratio(r: f64) -> String {
    format!("{r:.2}×")
}

impl Results {
    pub(crate) fn new(python: bool) -> Self {
        Self {
            env: Env::default(),
            python,
            round_trips: HashMap::new(),
            decode: Vec::new(),
            exec: Vec::new(),
            file: Vec::new(),
            cli: Vec::new(),
            scale: Vec::new(),
        }
    }

    pub(crate) fn add_round_trip(&mut self, case: Case, round: HashMap<Who, Summary>) {
        self.round_trips.entry(case).or_default().push(round);
    }

    fn cell(&self, case: Case, who: Who, metric: Metric) -> Cell {
        let rounds = self.round_trips.get(&case).map_or(&[][..], Vec::as_slice);
        let values: Vec<f64> = rounds
            .iter()
            .filter_map(|r| r.get(&who).map(|s| metric.of(s)))
            .collect();
        let ratios: Vec<f64> = rounds
            .iter()
            .filter_map(|r| Some(metric.of(r.get(&who)?) / metric.of(r.get(&Who::Raw)?)))
            .collect();
        Cell {
            value: median(&values),
            ratio: median(&ratios),
        }
    }

    /// Median over rounds of `who`'s `metric` over `base`'s in the same round.
    fn ratio_between(&self, case: Case, who: Who, base: Who, metric: Metric) -> f64 {
        let rounds = self.round_trips.get(&case).map_or(&[][..], Vec::as_slice);
        let ratios: Vec<f64> = rounds
            .iter()
            .filter_map(|r| Some(metric.of(r.get(&who)?) / metric.of(r.get(&base)?)))
            .collect();
        median(&ratios)
    }

    pub(crate) fn clients(&self) -> Vec<Who> {
        let mut v = vec![
            Who::Raw,
            Who::RawId,
            Who::TokioRaw,
            Who::Ours,
            Who::Blocking,
            Who::Qapi,
        ];
        if self.python {
            v.push(Who::Python);
        }
        v
    }

    /// The table, the goals and the run's details, as Markdown.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let clients = self.clients();
        out.push_str("| case |");
        for who in &clients {
            let _ = write!(out, " {} |", who.label());
        }
        out.push_str("\n|---|");
        for _ in &clients {
            out.push_str("---|");
        }
        out.push('\n');
        let cases = [Case::Ping, Case::Info, Case::QueryStatus];
        let metrics = [Metric::P50, Metric::P99, Metric::Ops, Metric::Cpu];
        for case in cases {
            for metric in metrics {
                let _ = write!(out, "| {} {} |", case.label(), metric.label());
                for &who in &clients {
                    let c = self.cell(case, who, metric);
                    if c.value.is_nan() {
                        out.push_str(" – |");
                    } else if who == Who::Raw {
                        let _ = write!(out, " {} |", metric.format(c.value));
                    } else {
                        let _ = write!(out, " {} ({}) |", metric.format(c.value), ratio(c.ratio));
                    }
                }
                out.push('\n');
            }
        }
        let d = self.decode_medians();
        let row = |out: &mut String, label: &str, cells: &[(Who, String)]| {
            let _ = write!(out, "| {label} |");
            for who in &clients {
                match cells.iter().find(|(w, _)| w == who) {
                    Some((_, text)) => {
                        let _ = write!(out, " {text} |");
                    }
                    None => out.push_str(" – |"),
                }
            }
            out.push('\n');
        };
        let same = "the same decoder as ours".to_owned();
        row(
            &mut out,
            "decode 11 MB guest-exec-status reply, typed, base64 included (per CPU-second)",
            &[
                (
                    Who::Ours,
                    format!(
                        "{} (split + typed: {})",
                        format_rate(d.typed),
                        format_rate(d.split_typed)
                    ),
                ),
                (Who::Blocking, same.clone()),
                (
                    Who::Qapi,
                    format!(
                        "{} async path, {} sync",
                        format_rate(d.qapi_async),
                        format_rate(d.qapi_sync)
                    ),
                ),
            ],
        );
        row(
            &mut out,
            "FrameDecoder message splitting alone, same 11 MB",
            &[(Who::Ours, format_rate(d.split)), (Who::Blocking, same)],
        );
        let e = self.exec_medians();
        let timed =
            |wall: f64, cpu: f64| format!("{} ({})", format_ns(wall * 1e9), format_ns(cpu * 1e9));
        row(
            &mut out,
            "8 MiB guest-exec end to end (head -c 8388608 /dev/zero), client CPU in brackets",
            &[
                (Who::Raw, timed(e.raw, e.raw_cpu)),
                (
                    Who::Ours,
                    format!("{}, {}", timed(e.ours, e.ours_cpu), ratio(e.ratio)),
                ),
                (
                    Who::Blocking,
                    format!(
                        "{}, {}",
                        timed(e.blocking, e.blocking_cpu),
                        ratio(e.blocking_ratio)
                    ),
                ),
            ],
        );
        let f = self.file_medians();
        let mbps = |v: f64| format!("{:.0} MB/s", v / 1e6);
        row(
            &mut out,
            "read a 100 MiB guest file (guest-file-read, 4 MiB chunks), throughput",
            &[
                (Who::Raw, mbps(f.raw)),
                (
                    Who::Ours,
                    format!("{} ({:.0} % of raw)", mbps(f.ours), f.ours_share * 100.0),
                ),
                (
                    Who::Blocking,
                    format!(
                        "{} ({:.0} % of raw)",
                        mbps(f.blocking),
                        f.blocking_share * 100.0
                    ),
                ),
            ],
        );
        let c = self.cli_medians();
        row(
            &mut out,
            "`qga ping` process wall time (raw column: a socat one-shot of the same bytes)",
            &[
                (Who::Raw, format_ns(c.socat * 1e9)),
                (
                    Who::Blocking,
                    format!("{} ({})", format_ns(c.qga * 1e9), ratio(c.ratio)),
                ),
            ],
        );
        let s = scale::medians(&self.scale);
        row(
            &mut out,
            &format!("{CONNECTIONS} idle connections, memory per connection"),
            &[(
                Who::Ours,
                format!(
                    "{:.1} KiB RSS, {:.1} KiB heap",
                    s.rss_per_conn / 1024.0,
                    s.heap_per_conn / 1024.0
                ),
            )],
        );
        row(
            &mut out,
            &format!("{CONNECTIONS} connections all busy (scripted peers, one process)"),
            &[(
                Who::Ours,
                format!("{} round trips/s", format_count(s.busy_rt_per_s)),
            )],
        );
        let w = d.wall;
        let _ = writeln!(
            out,
            "\nDecode by wall-clock time instead (preemption by other work on the core included): ours typed {}, split + typed {}, split {}; qapi-rs {} async, {} sync.",
            format_rate(w[1]),
            format_rate(w[2]),
            format_rate(w[0]),
            format_rate(w[4]),
            format_rate(w[3])
        );
        out.push('\n');
        out.push_str(&self.goals());
        out.push('\n');
        let env = &self.env;
        let _ = writeln!(
            out,
            "Machine: {} CPUs ({}), load average {} before, {} after. {}. Pinned: {}.",
            sys::nproc(),
            sys::cpu_model(),
            env.load_before,
            env.load_after,
            env.versions,
            env.pinning
        );
        let _ = writeln!(
            out,
            "Median of {} rounds; qemu-ga started {} time(s); compare ran {:.1} s.",
            env.rounds,
            env.agent_starts,
            env.elapsed.as_secs_f64()
        );
        out
    }

    /// The rows of `cases` on which `who` is not ahead of qapi-rs.
    fn behind_qapi(&self, who: Who, cases: &[Case]) -> Vec<String> {
        let mut behind = Vec::new();
        for &case in cases {
            for metric in [Metric::P50, Metric::P99, Metric::Ops, Metric::Cpu] {
                let ours = self.cell(case, who, metric).value;
                let qapi = self.cell(case, Who::Qapi, metric).value;
                let ahead = if metric.higher_is_better() {
                    ours > qapi
                } else {
                    ours < qapi
                };
                if !ahead {
                    behind.push(format!("{} {}", case.label(), metric.label()));
                }
            }
        }
        behind
    }

    fn decode_medians(&self) -> DecodeRound {
        let m = |f: &dyn Fn(&DecodeRound) -> f64| {
            median(&self.decode.iter().map(f).collect::<Vec<_>>())
        };
        DecodeRound {
            split: m(&|r| r.split),
            typed: m(&|r| r.typed),
            split_typed: m(&|r| r.split_typed),
            qapi_sync: m(&|r| r.qapi_sync),
            qapi_async: m(&|r| r.qapi_async),
            vs_qapi: m(&|r| r.vs_qapi),
            wall: [0, 1, 2, 3, 4].map(|k| m(&|r| r.wall[k])),
        }
    }

    fn exec_medians(&self) -> ExecRound {
        let m = |f: fn(&ExecRound) -> f64| median(&self.exec.iter().map(f).collect::<Vec<_>>());
        ExecRound {
            raw: m(|r| r.raw),
            ours: m(|r| r.ours),
            blocking: m(|r| r.blocking),
            ratio: m(|r| r.ratio),
            blocking_ratio: m(|r| r.blocking_ratio),
            raw_cpu: m(|r| r.raw_cpu),
            ours_cpu: m(|r| r.ours_cpu),
            blocking_cpu: m(|r| r.blocking_cpu),
        }
    }

    fn file_medians(&self) -> FileRound {
        let m = |f: fn(&FileRound) -> f64| median(&self.file.iter().map(f).collect::<Vec<_>>());
        FileRound {
            raw: m(|r| r.raw),
            ours: m(|r| r.ours),
            blocking: m(|r| r.blocking),
            ours_share: m(|r| r.ours_share),
            blocking_share: m(|r| r.blocking_share),
        }
    }

    fn cli_medians(&self) -> CliRound {
        let m = |f: fn(&CliRound) -> f64| median(&self.cli.iter().map(f).collect::<Vec<_>>());
        CliRound {
            qga: m(|r| r.qga),
            socat: m(|r| r.socat),
            ratio: m(|r| r.ratio),
        }
    }

    fn goals(&self) -> String {
        let mut lines = Vec::new();
        let mut goal = |ok: bool, text: String| {
            lines.push(format!("- [{}] {text}", if ok { "met" } else { "MISSED" }));
        };
        for (case, limit) in [
            (Case::Ping, 1.10),
            (Case::Info, 1.15),
            (Case::QueryStatus, 1.15),
        ] {
            let c = self.cell(case, Who::Ours, Metric::P50);
            goal(
                c.ratio <= limit,
                format!(
                    "{} p50 ≤ {} raw: {} (against the raw client sending the same request \
                     with an id: {}; the raw client on tokio is at {} of raw)",
                    case.label(),
                    ratio(limit),
                    ratio(c.ratio),
                    ratio(self.ratio_between(case, Who::Ours, Who::RawId, Metric::P50)),
                    ratio(self.cell(case, Who::TokioRaw, Metric::P50).ratio),
                ),
            );
        }
        for case in [Case::Ping, Case::Info, Case::QueryStatus] {
            let c = self.cell(case, Who::Ours, Metric::Cpu);
            goal(
                c.ratio <= 1.5,
                format!(
                    "{} client CPU per call ≤ 1.50× raw: {} (the raw client on tokio: {})",
                    case.label(),
                    ratio(c.ratio),
                    ratio(self.cell(case, Who::TokioRaw, Metric::Cpu).ratio),
                ),
            );
        }
        let mut behind = self.behind_qapi(Who::Ours, &[Case::Ping, Case::Info, Case::QueryStatus]);
        let d = self.decode_medians();
        let qapi_best = d.qapi_sync.max(d.qapi_async);
        if d.typed <= qapi_best {
            behind.push("decode".into());
        }
        goal(
            behind.is_empty(),
            if behind.is_empty() {
                "ahead of qapi-rs on every row".into()
            } else {
                format!(
                    "ahead of qapi-rs on every row: behind on {}",
                    behind.join(", ")
                )
            },
        );
        goal(
            d.typed >= 1.5e9,
            format!("typed decode ≥ 1.50 GB/s: {}", format_rate(d.typed)),
        );
        goal(
            d.vs_qapi >= 2.0,
            format!(
                "typed decode ≥ 2× qapi-rs's best path: {} (its best: {})",
                ratio(d.vs_qapi),
                format_rate(qapi_best)
            ),
        );
        goal(
            d.split >= 2e9,
            format!("message splitting ≥ 2.00 GB/s: {}", format_rate(d.split)),
        );
        let e = self.exec_medians();
        goal(
            e.ratio <= 1.05,
            format!("8 MiB guest-exec ≤ 1.05× raw: {}", ratio(e.ratio)),
        );
        let s = scale::medians(&self.scale);
        let per_conn = s.rss_per_conn.max(s.heap_per_conn);
        goal(
            per_conn <= 64.0 * 1024.0,
            format!(
                "≤ 64 KiB per idle connection: {:.1} KiB (the larger of RSS and heap)",
                per_conn / 1024.0
            ),
        );
        lines.push("\nGoals of issue 15:".into());
        let mut goal = |ok: bool, text: String| {
            lines.push(format!("- [{}] {text}", if ok { "met" } else { "MISSED" }));
        };
        let b = |case, metric| self.cell(case, Who::Blocking, metric).ratio;
        for (case, metric, limit) in [
            (Case::Ping, Metric::P50, 1.08),
            (Case::Ping, Metric::Cpu, 1.30),
            (Case::Info, Metric::P50, 1.12),
        ] {
            let r = b(case, metric);
            goal(
                r <= limit,
                format!(
                    "blocking {} {} ≤ {} raw: {}",
                    case.label(),
                    metric.label(),
                    ratio(limit),
                    ratio(r)
                ),
            );
        }
        goal(
            e.blocking_ratio <= 1.05,
            format!(
                "blocking 8 MiB guest-exec ≤ 1.05× raw: {} (async: {})",
                ratio(e.blocking_ratio),
                ratio(e.ratio)
            ),
        );
        let c = self.cli_medians();
        goal(
            c.ratio <= 1.20,
            format!(
                "`qga ping` process ≤ 1.20× a socat one-shot: {} ({} against {})",
                ratio(c.ratio),
                format_ns(c.qga * 1e9),
                format_ns(c.socat * 1e9)
            ),
        );
        goal(
            d.vs_qapi >= 2.5,
            format!(
                "typed decode ≥ 2.5× qapi-rs's best path: {} ({} against {})",
                ratio(d.vs_qapi),
                format_rate(d.typed),
                format_rate(qapi_best)
            ),
        );
        let f = self.file_medians();
        goal(
            f.ours_share >= 0.8 && f.blocking_share >= 0.8,
            format!(
                "100 MiB file read ≥ 80 % of the raw client's throughput: async {:.0} %, blocking {:.0} %",
                f.ours_share * 100.0,
                f.blocking_share * 100.0
            ),
        );
        for case in [Case::Ping, Case::Info] {
            let r = self.ratio_between(case, Who::Ours, Who::TokioRaw, Metric::P50);
            goal(
                r <= 1.05,
                format!(
                    "async {} p50 ≤ 1.05× the raw client on tokio: {}",
                    case.label(),
                    ratio(r)
                ),
            );
        }
        let behind = self.behind_qapi(Who::Blocking, &[Case::Ping, Case::Info]);
        goal(
            behind.is_empty(),
            if behind.is_empty() {
                "blocking ahead of qapi-rs on every QGA row".into()
            } else {
                format!(
                    "blocking ahead of qapi-rs on every QGA row: behind on {}",
                    behind.join(", ")
                )
            },
        );
        lines.join("\n") + "\n"
    }
}
