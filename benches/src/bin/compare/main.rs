//! `compare`: our client against a raw client, qapi-rs and (with `--python`) python qemu.qmp,
//! on a real qemu-ga (host mode, destructive commands blocked) and a real QEMU (QMP,
//! `-machine none`), everything pinned to CPU 0, interleaved, median of N rounds.
//!
//! ```text
//! cargo run --release -p qga-benches --bin compare [-- --python] [--rounds 3] [--quick]
//! cargo run --release -p qga-benches --bin compare -- --only ours:ping   # for profilers
//! ```
//!
//! Prints a Markdown table (ratios against the raw client measured in the same round) and
//! which of the goals of issue 5 are met.

mod cli;
mod clients;
mod exec;
mod file;
mod only;
mod python;
mod report;
mod scale;

use std::time::Instant;

use qga_benches::sys;
use qga_testing::{QemuGa, QemuQmp};

use crate::clients::{Case, Who};
use crate::only::Only;
use crate::report::Results;

/// Counts allocated bytes for the scale case (one relaxed atomic per allocation, the same
/// for every client measured).
#[global_allocator]
static ALLOC: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// The CPU everything runs on.
const CPU: usize = 0;

const USAGE: &str = "usage: compare [--python] [--rounds N] [--quick] [--only WHAT]
  --python     also python qemu.qmp (installed into a venv under target/qga-benches)
  --rounds N   rounds to take the median of (3)
  --quick      fewer calls per round (a smoke test; numbers are noisy)
  --only WHAT  run one thing and print its numbers, for profilers: WHO:CASE with WHO raw,
               raw-id, tokio-raw, ours, blocking, qapi or python and CASE ping, info or qmp;
               or raw|ours|blocking:exec, raw|ours|blocking:file; or decode
               (DECODE_DEBUG=1 prints every run); or cli (needs target/release/qga); or
               scale";

/// Command-line options.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) rounds: usize,
    pub(crate) python: bool,
    pub(crate) quick: bool,
    pub(crate) only: Option<Only>,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut opts = Self {
            rounds: 3,
            python: false,
            quick: false,
            only: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--python" => opts.python = true,
                "--quick" => opts.quick = true,
                "--rounds" => {
                    let v = args.next().ok_or("--rounds needs a number")?;
                    opts.rounds = v
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("bad --rounds {v}"))?;
                }
                "--only" => {
                    let v = args.next().ok_or("--only needs an argument")?;
                    opts.only = Some(Only::parse(&v).ok_or(format!("bad --only {v}\n{USAGE}"))?);
                }
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        if matches!(opts.only, Some(Only::RoundTrip(Who::Python, _))) {
            opts.python = true;
        }
        Ok(opts)
    }

    /// Calls per block and blocks per round for a round-trip case.
    pub(crate) fn plan(&self, case: Case) -> (usize, usize) {
        let (per_block, blocks) = match case {
            Case::Ping => (250, 8),
            Case::Info | Case::QueryStatus => (150, 8),
        };
        if self.quick {
            (per_block / 5, 2)
        } else {
            (per_block, blocks)
        }
    }
}

/// The real peers, pinned.
pub(crate) struct Peers {
    pub(crate) agent: QemuGa,
    pub(crate) qemu: QemuQmp,
}

/// Prints the error and exits: a broken run must not print a table.
pub(crate) fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("error: {what}: {e}");
    std::process::exit(1);
}

fn main() {
    let opts = match Options::parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Some(Only::Scale) = opts.only {
        // A child of the run below: no peers needed.
        if let Err(e) = sys::pin_self(CPU) {
            eprintln!("warning: cannot pin to CPU {CPU}: {e}");
        }
        println!("{}", scale::scale_round(opts.quick, &ALLOC).to_line());
        return;
    }
    let started = Instant::now();
    let load_before = sys::load_average();
    // Pin first: the peers and the python worker are spawned later and inherit the mask.
    let pinned = match sys::pin_self(CPU) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("warning: cannot pin to CPU {CPU}: {e}; results will be noisier");
            false
        }
    };
    let mut peers = Peers {
        agent: QemuGa::start(),
        qemu: QemuQmp::start(),
    };
    for pid in [peers.agent.pid(), peers.qemu.pid()] {
        if pinned && let Err(e) = sys::pin_process(pid, CPU) {
            eprintln!("warning: cannot pin pid {pid}: {e}");
        }
    }
    let mut python = opts
        .python
        .then(|| python::Worker::start().unwrap_or_else(|e| fail("python qemu.qmp", e)));
    if let Some(only) = opts.only {
        only.run(&mut peers, python.as_mut(), &opts);
        return;
    }
    let mut results = Results::new(opts.python);
    results.env.pinning = format!(
        "self {}, qemu-ga {}, qemu {}{}",
        sys::cpus_allowed(std::process::id()),
        sys::cpus_allowed(peers.agent.pid()),
        sys::cpus_allowed(peers.qemu.pid()),
        python
            .as_ref()
            .map(|p| format!(", python {}", sys::cpus_allowed(p.pid())))
            .unwrap_or_default(),
    );
    results.env.load_before = load_before;
    results.env.versions = clients::versions(&peers);

    // Every client of the table (Python only with its worker).
    let who = results.clients();
    let large_reply = qga_benches::payload::large_exec_status_reply();
    let test_file = file::TestFile::create(&peers).unwrap_or_else(|e| fail("the 100 MiB file", e));
    for round in 0..opts.rounds {
        eprintln!("round {}/{} ...", round + 1, opts.rounds);
        // A different client goes first in each round.
        let mut order = who.clone();
        order.rotate_left(round % who.len());
        for case in [Case::Ping, Case::Info, Case::QueryStatus] {
            let (per_block, blocks) = opts.plan(case);
            let mut acc = clients::RoundAcc::default();
            for _ in 0..blocks {
                for &w in &order {
                    if w == Who::Blocking && case == Case::QueryStatus {
                        continue; // The blocking client speaks QGA only.
                    }
                    match clients::run_block(&mut peers, python.as_mut(), w, case, per_block) {
                        Ok(b) => acc.add(w, b),
                        Err(e) => fail(&format!("{w:?} {case:?}"), e),
                    }
                }
            }
            results.add_round_trip(case, acc.summaries());
        }
        results
            .decode
            .push(exec::decode_round(&large_reply, opts.quick, round));
        match exec::exec_round(&mut peers, opts.quick, round) {
            Ok(r) => results.exec.push(r),
            Err(e) => fail("8 MiB exec", e),
        }
        match file::file_round(&mut peers, &test_file, opts.quick, round) {
            Ok(r) => results.file.push(r),
            Err(e) => fail("100 MiB file read", e),
        }
        match cli::cli_round(&mut peers, opts.quick) {
            Ok(r) => results.cli.push(r),
            Err(e) => fail("CLI process", e),
        }
        match scale::scale_round_in_child(opts.quick) {
            Ok(r) => results.scale.push(r),
            Err(e) => fail("scale case", e),
        }
    }
    results.env.load_after = sys::load_average();
    results.env.agent_starts = peers.agent.starts();
    results.env.elapsed = started.elapsed();
    results.env.rounds = opts.rounds;
    print!("{}", results.render());
}
