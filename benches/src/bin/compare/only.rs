//! `--only`: one client on one case, its numbers printed, no table; to run under `strace -c`,
//! `perf record` or `valgrind --tool=callgrind`.

use crate::clients::{self, Case, Who};
use crate::exec::ExecWho;
use crate::python::Worker;
use crate::{Options, Peers, exec, fail};

/// What `--only` runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Only {
    /// `rounds` × 8 blocks of a round-trip case.
    RoundTrip(Who, Case),
    /// `rounds` × 3 runs of the 8 MiB exec.
    Exec(ExecWho),
    /// `rounds` × 3 reads of the 100 MiB file.
    FileRead(ExecWho),
    /// `rounds` pairs of `qga ping` and the socat one-shot.
    Cli,
    /// `rounds` decode rounds.
    Decode,
    /// One scale round, printed as one line for the parent `compare` (which runs it in a
    /// fresh process so that the RSS it measures is not memory freed by earlier cases).
    Scale,
}

impl Only {
    pub(crate) fn parse(v: &str) -> Option<Self> {
        match v {
            "decode" => return Some(Self::Decode),
            "cli" => return Some(Self::Cli),
            "scale" => return Some(Self::Scale),
            _ => {}
        }
        let (who, case) = v.split_once(':')?;
        let who = match who {
            "raw" => Who::Raw,
            "raw-id" => Who::RawId,
            "tokio-raw" => Who::TokioRaw,
            "ours" => Who::Ours,
            "blocking" => Who::Blocking,
            "qapi" => Who::Qapi,
            "python" => Who::Python,
            _ => return None,
        };
        let case = match case {
            "ping" => Case::Ping,
            "info" => Case::Info,
            "qmp" => Case::QueryStatus,
            "exec" | "file" => {
                let who = match who {
                    Who::Raw => ExecWho::Raw,
                    Who::Ours => ExecWho::Ours,
                    Who::Blocking => ExecWho::Blocking,
                    _ => return None,
                };
                return Some(if case == "exec" {
                    Self::Exec(who)
                } else {
                    Self::FileRead(who)
                });
            }
            _ => return None,
        };
        Some(Self::RoundTrip(who, case))
    }

    pub(crate) fn run(self, peers: &mut Peers, mut python: Option<&mut Worker>, opts: &Options) {
        match self {
            Self::RoundTrip(who, case) => {
                let (per_block, _) = opts.plan(case);
                let mut acc = clients::RoundAcc::default();
                for _ in 0..opts.rounds * 8 {
                    match clients::run_block(peers, python.as_deref_mut(), who, case, per_block) {
                        Ok(b) => acc.add(who, b),
                        Err(e) => fail(&format!("{who:?} {case:?}"), e),
                    }
                }
                for (w, s) in acc.summaries() {
                    println!(
                        "{w:?} {case:?}: p50 {:.2} µs, p99 {:.2} µs, {:.0} ops/s, CPU {:.2} µs per call",
                        s.p50_ns / 1e3,
                        s.p99_ns / 1e3,
                        s.ops_per_s,
                        s.cpu_ns / 1e3
                    );
                }
            }
            Self::FileRead(who) => {
                let file = crate::file::TestFile::create(peers).unwrap_or_else(|e| fail("file", e));
                for _ in 0..opts.rounds * 3 {
                    peers.agent.ensure_running();
                    match crate::file::read_once(peers, &file, who) {
                        Ok(t) => println!(
                            "{who:?} file read: {:.1} ms wall, {:.1} ms client CPU",
                            t.wall.as_secs_f64() * 1e3,
                            t.cpu.as_secs_f64() * 1e3
                        ),
                        Err(e) => fail("file read", e),
                    }
                }
            }
            Self::Cli => match crate::cli::cli_round(peers, opts.quick) {
                Ok(r) => println!("{r:?}"),
                Err(e) => fail("cli", e),
            },
            Self::Exec(who) => {
                for _ in 0..opts.rounds * 3 {
                    peers.agent.ensure_running();
                    match exec::exec_once(peers, who) {
                        Ok(t) => println!(
                            "{who:?} exec: {:.1} ms wall, {:.1} ms client CPU",
                            t.wall.as_secs_f64() * 1e3,
                            t.cpu.as_secs_f64() * 1e3
                        ),
                        Err(e) => fail("exec", e),
                    }
                }
            }
            Self::Scale => unreachable!("run before the peers start"),
            Self::Decode => {
                let reply = qga_benches::payload::large_exec_status_reply();
                for round in 0..opts.rounds {
                    println!("{:?}", exec::decode_round(&reply, opts.quick, round));
                }
            }
        }
    }
}
