//! Running the `qga` binary from the integration tests: a clean environment, a hard time limit,
//! and what the run left (exit status, output), shared by every test target of the crate.

// Each test target uses part of this module.
#![allow(dead_code)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub(crate) const QGA: &str = env!("CARGO_BIN_EXE_qga");
/// No CLI run in these tests may take longer than this.
pub(crate) const RUN_LIMIT: Duration = Duration::from_secs(120);

// The CLI's exit statuses (sysexits.h).
pub(crate) const USAGE: i32 = 64;
pub(crate) const NO_DOMAIN: i32 = 68;
pub(crate) const UNAVAILABLE: i32 = 69;
/// The agent answered with an error.
pub(crate) const AGENT: i32 = 70;
pub(crate) const IO: i32 = 74;
pub(crate) const TIMEOUT: i32 = 75;

/// What one run of the CLI left.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
    pub(crate) elapsed: Duration,
}

impl Run {
    /// Standard output as text.
    pub(crate) fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.out()))
    }

    #[track_caller]
    pub(crate) fn ok(self) -> Self {
        assert_eq!(
            self.code,
            0,
            "stdout {:?}, stderr {:?}",
            self.out(),
            self.stderr
        );
        self
    }

    /// Exited with `code` and said why on standard error.
    #[track_caller]
    pub(crate) fn fails(self, code: i32) -> Self {
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
pub(crate) fn qga(args: &[&str]) -> Command {
    let mut cmd = Command::new(QGA);
    cmd.args(args)
        .env_remove("QGA_SOCKET")
        .env_remove("RUST_LOG");
    cmd
}

/// Runs to completion (killing it after [`RUN_LIMIT`]) with `stdin` as input.
pub(crate) fn run_with(mut cmd: Command, stdin: &[u8]) -> Run {
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

pub(crate) fn run(cmd: Command) -> Run {
    run_with(cmd, b"")
}
