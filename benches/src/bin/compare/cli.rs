//! The CLI case: the wall time of a whole `qga ping` process (connect, handshake, ping, exit)
//! against a `socat` one-shot of the same bytes (`0xFF`, guest-sync-delimited and guest-ping
//! from a file, the replies to stdout). Pairs alternate which goes first.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use qga_benches::stats::median;

use crate::Peers;

/// The `qga` binary beside this one (`cargo build --release -p qga-examples`).
fn qga_binary() -> io::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name("qga");
    if path.is_file() {
        Ok(path)
    } else {
        Err(io::Error::other(format!(
            "{} is missing: build it with `cargo build --release -p qga-examples`",
            path.display()
        )))
    }
}

/// Runs `cmd` to completion with its output discarded; its wall time.
fn time(cmd: &mut Command) -> io::Result<Duration> {
    let t = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let took = t.elapsed();
    if !status.success() {
        return Err(io::Error::other(format!("{cmd:?} failed: {status}")));
    }
    Ok(took)
}

/// Medians of one round, seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CliRound {
    pub(crate) qga: f64,
    pub(crate) socat: f64,
    /// Median of the per-pair ratios qga / socat.
    pub(crate) ratio: f64,
}

/// `pairs` pairs (20, or 5 with `quick`) after two untimed ones.
pub(crate) fn cli_round(peers: &mut Peers, quick: bool) -> io::Result<CliRound> {
    let qga = qga_binary()?;
    let socat = qga_testing::locate_program("socat")
        .ok_or_else(|| io::Error::other("socat is not installed: apt-get install socat"))?;
    let socket = peers.agent.socket().to_owned();
    let bytes = peers.agent.scratch().join("ping.bin");
    std::fs::write(
        &bytes,
        b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":1234567890123}}\n{\"execute\":\"guest-ping\",\"id\":2718281828}\n",
    )?;
    let ours = |s: &Path| {
        let mut c = Command::new(&qga);
        c.arg("--socket").arg(s).arg("ping");
        c
    };
    let theirs = |s: &Path| {
        let mut c = Command::new(&socat);
        c.arg(format!("OPEN:{}!!STDOUT", bytes.display()))
            .arg(format!("UNIX-CONNECT:{}", s.display()));
        c
    };
    let pairs = if quick { 5 } else { 20 };
    let mut t: [Vec<f64>; 3] = Default::default();
    for i in 0..pairs + 2 {
        peers.agent.ensure_running();
        let (a, b) = if i % 2 == 0 {
            let a = time(&mut ours(&socket))?;
            (a, time(&mut theirs(&socket))?)
        } else {
            let b = time(&mut theirs(&socket))?;
            (time(&mut ours(&socket))?, b)
        };
        if i >= 2 {
            t[0].push(a.as_secs_f64());
            t[1].push(b.as_secs_f64());
            t[2].push(a.as_secs_f64() / b.as_secs_f64());
        }
    }
    Ok(CliRound {
        qga: median(&t[0]),
        socat: median(&t[1]),
        ratio: median(&t[2]),
    })
}
