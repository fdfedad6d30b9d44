//! The `qga` binary against a real qemu-ga (host mode, destructive commands blocked) and a
//! real QEMU (`-machine none`).

mod errors;
mod qmp;
mod queries;
mod transfer;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use qga_testing::{BLOCKED_RPCS, QemuGa, QemuQmp, find_program, wait_until};
use serde_json::Value;
use sha2::{Digest, Sha256};

const QGA: &str = env!("CARGO_BIN_EXE_qga");
/// No CLI run in these tests may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(120);

const USAGE: i32 = 64;
const UNAVAILABLE: i32 = 69;
const AGENT: i32 = 70;
const IO: i32 = 74;
const TIMEOUT: i32 = 75;

/// What one run of the CLI left.
struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.out()))
    }

    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(
            self.code,
            0,
            "stdout {:?}, stderr {:?}",
            self.out(),
            self.stderr
        );
        self
    }

    #[track_caller]
    fn fails(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            code,
            "stdout {:?}, stderr {:?}",
            self.out(),
            self.stderr
        );
        assert!(
            self.stderr.contains("qga: "),
            "error not reported: {:?}",
            self.stderr
        );
        self
    }
}

/// The CLI with a clean environment.
fn qga(args: &[&str]) -> Command {
    let mut cmd = Command::new(QGA);
    cmd.args(args)
        .env_remove("QGA_SOCKET")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs to completion (killing it after [`RUN_LIMIT`]) with `stdin` as input.
fn run_with(mut cmd: Command, stdin: &[u8]) -> Run {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn qga");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The program may exit without reading its input.
        let _ = input.write_all(&data);
    });
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(RUN_LIMIT) {
        Ok(output) => output.expect("wait for qga"),
        Err(_) => {
            qga_testing::signal(pid, "KILL");
            panic!("qga {:?} ran for more than {RUN_LIMIT:?}", cmd.get_args());
        }
    };
    writer.join().expect("stdin writer");
    Run {
        code: output.status.code().expect("qga died by a signal"),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

fn run(cmd: Command) -> Run {
    run_with(cmd, b"")
}

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
