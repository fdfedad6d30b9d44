//! What each action returns: `{"<action>": result}`, in the original nova-guest's shapes.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::action::Action;

/// The body of a successful `POST /v1/instances/{uuid}/actions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionReply {
    /// `apply-networking`.
    ApplyNetworking(ApplyNetworkingResult),
    /// `set-password`.
    SetPassword(SetPasswordResult),
    /// `inject-file`.
    InjectFile(InjectFileResult),
    /// `ping`.
    Ping(PingResult),
    /// `exec`.
    Exec(ExecResult),
}

impl ActionReply {
    /// Which action this answers.
    pub fn action(&self) -> Action {
        match self {
            Self::ApplyNetworking(_) => Action::ApplyNetworking,
            Self::SetPassword(_) => Action::SetPassword,
            Self::InjectFile(_) => Action::InjectFile,
            Self::Ping(_) => Action::Ping,
            Self::Exec(_) => Action::Exec,
        }
    }
}

/// `ping`: `{"success": true}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingResult {
    /// Always true: a failed ping is an error.
    pub success: bool,
}

/// `set-password`: `{"success": true, "username": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPasswordResult {
    /// Always true: a failure is an error.
    pub success: bool,
    /// The user whose password was set (the per-OS default when none was asked for).
    pub username: String,
}

/// `inject-file`: what was written, verified by reading it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectFileResult {
    /// Bytes written.
    pub size: u64,
    /// SHA-256 of the file as read back, in lower-case hex.
    pub sha256: String,
}

/// `apply-networking`: `success` (the script exited 0) and the script's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyNetworkingResult {
    /// The script exited with code 0.
    pub success: bool,
    /// What the script left.
    pub message: ExecResult,
}

/// The result of a guest program: `exited`, `exitcode` (null when killed by a signal),
/// `signal` (0 when not killed, null when the agent reported neither), the truncation flags
/// and `out-data`/`err-data` (text or base64, as asked).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExecResult {
    /// Always true: a program still running is an error (timeout).
    pub exited: bool,
    /// The exit code.
    pub exitcode: Option<i64>,
    /// The signal that killed it, 0 for a normal exit.
    pub signal: Option<i64>,
    /// The guest agent dropped stdout past its capture limit.
    pub out_truncated: bool,
    /// The guest agent dropped stderr past its capture limit.
    pub err_truncated: bool,
    /// stdout.
    pub out_data: String,
    /// stderr.
    pub err_data: String,
}

impl fmt::Debug for ExecResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Program output may hold secrets: only its size is shown.
        f.debug_struct("ExecResult")
            .field("exitcode", &self.exitcode)
            .field("signal", &self.signal)
            .field("out_data", &format_args!("{} bytes", self.out_data.len()))
            .field("err_data", &format_args!("{} bytes", self.err_data.len()))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_of_the_original_nova_guest() {
        let exec = ExecResult {
            exited: true,
            exitcode: None,
            signal: Some(9),
            out_truncated: false,
            err_truncated: false,
            out_data: "secret".into(),
            err_data: String::new(),
        };
        let reply = ActionReply::ApplyNetworking(ApplyNetworkingResult {
            success: false,
            message: exec.clone(),
        });
        assert_eq!(
            serde_json::to_value(&reply).unwrap(),
            json!({"apply-networking": {"success": false, "message": {"exited": true,
                "exitcode": null, "signal": 9, "out-truncated": false, "err-truncated": false,
                "out-data": "secret", "err-data": ""}}})
        );
        assert_eq!(reply.action(), Action::ApplyNetworking);
        assert!(!format!("{exec:?}").contains("secret"));
        let ping: ActionReply = serde_json::from_str(r#"{"ping": {"success": true}}"#).unwrap();
        assert_eq!(ping, ActionReply::Ping(PingResult { success: true }));
        assert!(serde_json::from_str::<ActionReply>(r#"{"reboot": {}}"#).is_err());
    }
}
