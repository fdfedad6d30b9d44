//! Running programs in the guest. `guest-exec` returns at once with a pid; the output arrives
//! in the first `guest-exec-status` reply with `exited` true, which also reaps the record
//! (asking again is an error). Each stream is captured up to 16 MiB, then truncated.

use serde::{Deserialize, Serialize};

use crate::base64::Base64Bytes;

/// How much output qemu-ga keeps per stream before it sets `*-truncated`.
pub const EXEC_CAPTURE_LIMIT: usize = 16 * 1024 * 1024;

open_enum! {
    /// Capture modes of agents since 8.0. Older agents accept only the boolean form.
    pub enum CaptureMode {
        /// Capture nothing.
        None = "none",
        /// Only stdout.
        Stdout = "stdout",
        /// Only stderr.
        Stderr = "stderr",
        /// Both, separately (the boolean `true`).
        Separated = "separated",
        /// stderr merged into stdout (not on Windows).
        Merged = "merged",
    }
}

/// The `capture-output` argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum CaptureOutput {
    /// `true` captures stdout and stderr separately; understood by every agent.
    Flag(bool),
    /// A named mode (agents 8.0+).
    Mode(CaptureMode),
}

/// `guest-exec`.
#[derive(Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestExec {
    /// Program; looked up in the agent's PATH.
    pub path: String,
    /// Arguments, without argv\[0\].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arg: Option<Vec<String>>,
    /// `NAME=value` entries. When present they replace the whole environment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Written to stdin, which is then closed (stdin is /dev/null otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_data: Option<Base64Bytes>,
    /// What to capture (nothing by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_output: Option<CaptureOutput>,
}
command!(GuestExec, "guest-exec", GuestExecPid);

impl std::fmt::Debug for GuestExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Arguments and environment may carry secrets; only the program is shown.
        f.debug_struct("GuestExec")
            .field("path", &self.path)
            .field("arg", &self.arg.as_ref().map(Vec::len))
            .field("env", &self.env.as_ref().map(Vec::len))
            .field("input_data", &self.input_data)
            .field("capture_output", &self.capture_output)
            .finish()
    }
}

/// The reply to [`GuestExec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestExecPid {
    /// Process id in the guest.
    pub pid: i64,
}

/// `guest-exec-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestExecStatus {
    /// From [`GuestExecPid`].
    pub pid: i64,
}
command!(GuestExecStatus, "guest-exec-status", ExecStatus);

/// The reply to [`GuestExecStatus`]. While the process runs only `exited` (false) is set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExecStatus {
    /// The process has exited and its output pipes are closed.
    pub exited: bool,
    /// Exit code after a normal exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exitcode: Option<i64>,
    /// Signal that killed it (on Windows, an NTSTATUS code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i64>,
    /// Captured stdout, present only when at least one byte was captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_data: Option<Base64Bytes>,
    /// Captured stderr, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_data: Option<Base64Bytes>,
    /// stdout went past the capture limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_truncated: Option<bool>,
    /// stderr went past the capture limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_truncated: Option<bool>,
}
