//! The `qga` binary against a real qemu-ga (host mode, destructive commands blocked) and a
//! real QEMU (`-machine none`).

mod errors;
mod qmp;
mod queries;
#[path = "../support/mod.rs"]
mod support;
mod transfer;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use qga_testing::{BLOCKED_RPCS, QemuGa, QemuQmp, find_program, wait_until};
use serde_json::Value;
use sha2::{Digest, Sha256};
use support::{AGENT, IO, TIMEOUT, UNAVAILABLE, USAGE, qga, run, run_with};

/// `qga --socket AGENT ARGS...`.
fn on(agent: &QemuGa, args: &[&str]) -> Command {
    let mut cmd = qga(&["--socket", path_str(agent.socket())]);
    cmd.args(args);
    cmd
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic bytes that do not compress to a pattern (xorshift).
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}
