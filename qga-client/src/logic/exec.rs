//! `guest-exec` with polling: the request, the output, and the polling schedule both clients
//! follow (1 ms doubling to 200 ms, until the program exits or the deadline passes).

use std::time::Duration;

use qga_proto::base64::Base64Bytes;
use qga_proto::qga::{CaptureOutput, ExecStatus, GuestExec, GuestExecStatus};

use crate::error::{Error, Result};
use crate::logic::config::Config;
use crate::logic::deadline::{Moment, later};

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
    /// [`Client::with_deadline`](crate::Client::with_deadline) handle the handle's deadline applies too: the earlier wins.
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

impl ExecRequest {
    /// The program's own limit: its timeout, or the long timeout of `config`.
    pub(crate) fn limit(&self, config: &Config) -> Duration {
        self.timeout.unwrap_or(config.long_timeout)
    }

    /// The `guest-exec` request.
    pub(crate) fn into_command(self) -> GuestExec {
        GuestExec {
            path: self.program,
            arg: (!self.args.is_empty()).then_some(self.args),
            env: self.env,
            input_data: self.stdin.map(Base64Bytes),
            capture_output: self.capture.then_some(CaptureOutput::Flag(true)),
        }
    }
}

impl ExecOutput {
    /// The output of a process whose status says it exited.
    fn from_status(pid: i64, status: ExecStatus) -> Self {
        let exit = match (status.exitcode, status.signal) {
            (Some(code), _) => ExitStatus::Code(code),
            (None, Some(signal)) => ExitStatus::Signal(signal),
            (None, None) => ExitStatus::Unknown,
        };
        Self {
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
        }
    }
}

/// The polling of one started program: which status call to make with which timeout, what
/// its answer means, and how long to pause before the next one.
#[derive(Debug)]
pub(crate) struct ExecPoll<I> {
    pid: i64,
    deadline: I,
    /// How long the program had (for [`Error::ExecTimeout`]).
    after: Duration,
    pause: Duration,
}

impl<I: Moment> ExecPoll<I> {
    /// Polling of `pid`, until `deadline`, which leaves the program `after` in all.
    pub(crate) fn new(pid: i64, (deadline, after): (I, Duration)) -> Self {
        Self {
            pid,
            deadline,
            after,
            pause: FIRST_POLL,
        }
    }

    fn timed_out(&self) -> Error {
        Error::ExecTimeout {
            pid: self.pid,
            after: self.after,
        }
    }

    /// The next status call at `now` and its timeout (its own, cut short by the deadline), or
    /// [`Error::ExecTimeout`] once the deadline has passed.
    pub(crate) fn next_call(&self, now: I, config: &Config) -> Result<(GuestExecStatus, Duration)> {
        if now >= self.deadline {
            return Err(self.timed_out());
        }
        let left = self.deadline.saturating_duration_since(now);
        let timeout = config.timeout_for("guest-exec-status", false).min(left);
        Ok((GuestExecStatus { pid: self.pid }, timeout))
    }

    /// What a status call's result, arriving at `now`, means: the output once the program
    /// exited, `None` while it runs. A status call that ran into the deadline is the
    /// program's timeout.
    pub(crate) fn judge(&self, status: Result<ExecStatus>, now: I) -> Result<Option<ExecOutput>> {
        match status {
            Ok(status) if status.exited => Ok(Some(ExecOutput::from_status(self.pid, status))),
            Ok(_) => Ok(None),
            Err(e) if e.is_timeout() && now >= self.deadline => Err(self.timed_out()),
            Err(e) => Err(e),
        }
    }

    /// When to poll next, pausing from `now`; the pause doubles each time, up to 200 ms.
    pub(crate) fn wake_at(&mut self, now: I) -> I {
        let at = self.deadline.min(later(now, self.pause));
        self.pause = (self.pause * 2).min(MAX_POLL);
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_schedule_doubles_to_200_ms_and_stops_at_the_deadline() {
        let now = Instant::now();
        let mut poll = ExecPoll::new(7, (now + Duration::from_secs(1), Duration::from_secs(1)));
        let pauses: Vec<Duration> = (0..10).map(|_| poll.wake_at(now) - now).collect();
        let ms = |n| Duration::from_millis(n);
        assert_eq!(pauses[..9], [1, 2, 4, 8, 16, 32, 64, 128, 200].map(ms));
        assert_eq!(pauses[9], ms(200));
        let config = Config::default();
        let (call, t) = poll.next_call(now + ms(900), &config).unwrap();
        assert_eq!((call.pid, t), (7, ms(100)));
        let late = now + Duration::from_secs(2);
        assert!(matches!(
            poll.next_call(late, &config),
            Err(Error::ExecTimeout { pid: 7, .. })
        ));
        assert_eq!(poll.wake_at(now + ms(999)), now + Duration::from_secs(1));
    }

    #[test]
    fn the_status_becomes_the_output() {
        let now = Instant::now();
        let poll = ExecPoll::new(3, (now, Duration::ZERO));
        assert_eq!(poll.judge(Ok(ExecStatus::default()), now).unwrap(), None);
        let status = ExecStatus {
            exited: true,
            signal: Some(9),
            out_data: Some(Base64Bytes(b"hi".to_vec())),
            out_truncated: Some(true),
            ..ExecStatus::default()
        };
        let out = poll.judge(Ok(status), now).unwrap().unwrap();
        assert_eq!(out.status, ExitStatus::Signal(9));
        assert_eq!((&out.stdout[..], out.stderr.len()), (&b"hi"[..], 0));
        assert!(out.stdout_truncated && !out.stderr_truncated);
        let timeout = Error::Timeout {
            command: "guest-exec-status".into(),
            after: Duration::ZERO,
        };
        assert!(matches!(
            poll.judge(Err(timeout), now),
            Err(Error::ExecTimeout { pid: 3, .. })
        ));
    }
}
