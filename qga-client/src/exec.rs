//! `guest-exec` with polling.

use std::time::Duration;

use qga_proto::base64::Base64Bytes;
use qga_proto::qga::{CaptureOutput, GuestExec, GuestExecStatus};
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{Error, Result};

/// First pause between two `guest-exec-status` polls; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(1);
/// Longest pause between two polls.
const MAX_POLL: Duration = Duration::from_millis(200);

/// A program to run in the guest. Output is captured unless [`ExecRequest::capture`] is
/// turned off.
#[derive(Clone)]
#[must_use]
pub struct ExecRequest {
    program: String,
    args: Vec<String>,
    env: Option<Vec<String>>,
    stdin: Option<Vec<u8>>,
    capture: bool,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for ExecRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Arguments, environment and input may carry secrets.
        f.debug_struct("ExecRequest")
            .field("program", &self.program)
            .field("args", &self.args.len())
            .field("env", &self.env.as_ref().map(Vec::len))
            .field("stdin", &self.stdin.as_ref().map(Vec::len))
            .field("capture", &self.capture)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ExecRequest {
    /// Runs `program` (looked up in the agent's PATH).
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: None,
            stdin: None,
            capture: true,
            timeout: None,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable. Once any is set, the program sees only these (qemu-ga
    /// replaces the whole environment, PATH included).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env
            .get_or_insert_with(Vec::new)
            .push(format!("{key}={value}"));
        self
    }

    /// Bytes for stdin (closed afterwards). Without this, stdin is /dev/null.
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Capture stdout and stderr (default true).
    pub fn capture(mut self, on: bool) -> Self {
        self.capture = on;
        self
    }

    /// Deadline for the program to exit; default: the client's long timeout. On a
    /// [`Client::with_deadline`] handle the handle's deadline applies too: the earlier wins.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// How a guest process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Normal exit with this code.
    Code(i64),
    /// Killed by this signal (on Windows, an NTSTATUS code).
    Signal(i64),
    /// The agent reported neither.
    Unknown,
}

impl ExitStatus {
    /// True for exit code 0.
    pub fn success(self) -> bool {
        self == Self::Code(0)
    }
}

/// What a finished guest process left.
#[derive(Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its pid in the guest.
    pub pid: i64,
    /// How it ended.
    pub status: ExitStatus,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// The agent dropped stdout past its capture limit (16 MiB).
    pub stdout_truncated: bool,
    /// The agent dropped stderr past its capture limit.
    pub stderr_truncated: bool,
}

impl std::fmt::Debug for ExecOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecOutput")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .field("stdout", &format_args!("{} bytes", self.stdout.len()))
            .field("stderr", &format_args!("{} bytes", self.stderr.len()))
            .field("stdout_truncated", &self.stdout_truncated)
            .field("stderr_truncated", &self.stderr_truncated)
            .finish()
    }
}

impl Client {
    /// Runs a program in the guest and waits for it: `guest-exec`, then `guest-exec-status`
    /// polled with a growing pause (1 ms doubling to 200 ms) until it exits or the deadline
    /// passes: [`ExecRequest::timeout`] (default: the long timeout), or this handle's
    /// deadline when that comes first.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`] when it cannot be started (for example not found);
    /// [`Error::ExecTimeout`] with the pid when it runs past the deadline (it keeps running in
    /// the guest); else as for [`Client::call`].
    pub async fn exec(&self, request: ExecRequest) -> Result<ExecOutput> {
        let timeout = request.timeout.unwrap_or(self.config().long_timeout);
        // The program's own limit, cut short by this handle's deadline.
        let (deadline, after) = self.bound(Instant::now(), timeout);
        let command = GuestExec {
            path: request.program,
            arg: (!request.args.is_empty()).then_some(request.args),
            env: request.env,
            input_data: request.stdin.map(Base64Bytes),
            capture_output: request.capture.then_some(CaptureOutput::Flag(true)),
        };
        let pid = self.call(&command).await?.pid;
        let mut pause = FIRST_POLL;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::ExecTimeout { pid, after });
            }
            let per_call = self
                .config()
                .timeout_for("guest-exec-status", false)
                .min(deadline - now);
            let status = match self.call_timeout(&GuestExecStatus { pid }, per_call).await {
                Ok(status) => status,
                Err(e) if e.is_timeout() && Instant::now() >= deadline => {
                    return Err(Error::ExecTimeout { pid, after });
                }
                Err(e) => return Err(e),
            };
            if status.exited {
                let exit = match (status.exitcode, status.signal) {
                    (Some(code), _) => ExitStatus::Code(code),
                    (None, Some(signal)) => ExitStatus::Signal(signal),
                    (None, None) => ExitStatus::Unknown,
                };
                return Ok(ExecOutput {
                    pid,
                    status: exit,
                    stdout: status
                        .out_data
                        .map(Base64Bytes::into_vec)
                        .unwrap_or_default(),
                    stderr: status
                        .err_data
                        .map(Base64Bytes::into_vec)
                        .unwrap_or_default(),
                    stdout_truncated: status.out_truncated.unwrap_or(false),
                    stderr_truncated: status.err_truncated.unwrap_or(false),
                });
            }
            tokio::time::sleep_until(deadline.min(Instant::now() + pause)).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}
