//! The agent's error codes, their HTTP status, and its error body
//! `{"error": {"code", "status", "message", "class"?, "desc"?}}`.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $status:literal;)*) => {
        /// The stable error codes of the agent's HTTP API.
        ///
        /// An agent newer than its caller may send a code the caller does not know: it reads as
        /// [`ErrorCode::Unknown`] and keeps its HTTP status in the body.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $name)] $variant,)*
            /// A code this build does not know.
            #[serde(other, rename = "unknown")]
            Unknown,
        }

        impl ErrorCode {
            /// Every known code.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];

            /// The code as it appears in bodies and metrics.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                    Self::Unknown => "unknown",
                }
            }

            /// The HTTP status: the only mapping from agent errors to status codes.
            pub fn status(self) -> u16 {
                match self {
                    $(Self::$variant => $status,)*
                    Self::Unknown => 500,
                }
            }
        }
    };
}

codes! {
    /// 400: malformed request.
    BadRequest = "bad_request", 400;
    /// 401: missing or wrong shared secret.
    Unauthorized = "unauthorized", 401;
    /// 403: the action is not in `enabled_actions`.
    ActionDisabled = "action_disabled", 403;
    /// 404: no such route.
    NotFound = "not_found", 404;
    /// 405: the route exists with another method.
    MethodNotAllowed = "method_not_allowed", 405;
    /// 404: the instance has no agent channel on this host.
    InstanceNotFound = "instance_not_found", 404;
    /// 409: the channel exists but refuses connections or the connection broke.
    GuestUnavailable = "guest_unavailable", 409;
    /// 409: another operation on this guest held it past the deadline.
    GuestBusy = "guest_busy", 409;
    /// 429: too many requests already wait for this guest (`max_queued_per_guest`); retry
    /// after the `Retry-After` seconds.
    GuestQueueFull = "guest_queue_full", 429;
    /// 413: the body is too large.
    PayloadTooLarge = "payload_too_large", 413;
    /// 422: the guest agent answered with an error (its class and desc are included).
    GuestCommandFailed = "guest_command_failed", 422;
    /// 502: the guest agent sent something that is not a valid answer.
    GuestProtocolError = "guest_protocol_error", 502;
    /// 502: a file read back differently from what was written.
    VerifyFailed = "verify_failed", 502;
    /// 503: every operation slot stayed taken past the deadline.
    Overloaded = "overloaded", 503;
    /// 503: the daemon is shutting down.
    ShuttingDown = "shutting_down", 503;
    /// 504: the guest agent was silent past the deadline.
    GuestTimeout = "guest_timeout", 504;
    /// 500: a bug or a local failure.
    Internal = "internal_error", 500;
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The agent's error body: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The stable code.
    pub code: ErrorCode,
    /// The HTTP status (the code's, repeated for readers of the body alone).
    pub status: u16,
    /// A message for people; never holds secrets, file contents or program output.
    pub message: String,
    /// The guest agent's error class, for [`ErrorCode::GuestCommandFailed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The guest agent's error description, for [`ErrorCode::GuestCommandFailed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    /// The command reached the guest agent and may have run, though no answer says so (a
    /// timeout or a broken connection after sending): for set-password, the new password may
    /// or may not be in effect.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ambiguous: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

impl ErrorDetail {
    /// An error without a guest agent error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            status: code.status(),
            message: message.into(),
            class: None,
            desc: None,
            ambiguous: false,
        }
    }

    /// What to tell a person: the guest agent's `class: desc` when there is one, else the
    /// message.
    pub fn detail(&self) -> String {
        match (&self.class, &self.desc) {
            (Some(c), Some(d)) => format!("{c}: {d}"),
            (None, Some(d)) => d.clone(),
            _ => self.message.clone(),
        }
    }
}

/// A request body that breaks the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// Malformed: the message says what to fix and never repeats a value from the body.
    #[error("{0}")]
    Invalid(String),
    /// Larger than the receiver accepts.
    #[error("{0}")]
    TooLarge(String),
}

impl ContractError {
    /// The agent's code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::BadRequest,
            Self::TooLarge(_) => ErrorCode::PayloadTooLarge,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_kept_apart() {
        for code in ErrorCode::ALL {
            let v = serde_json::to_value(code).unwrap();
            assert_eq!(v, code.as_str());
            assert_eq!(serde_json::from_value::<ErrorCode>(v).unwrap(), *code);
        }
        assert_eq!(
            serde_json::from_value::<ErrorCode>("guest_on_fire".into()).unwrap(),
            ErrorCode::Unknown
        );
        assert_eq!(ErrorCode::GuestTimeout.status(), 504);
        assert_eq!(ErrorCode::Internal.as_str(), "internal_error");
    }

    #[test]
    fn bodies_have_the_documented_shape() {
        let mut e = ErrorDetail::new(ErrorCode::GuestCommandFailed, "guest command failed");
        e.class = Some("CommandNotFound".into());
        e.desc = Some("disabled".into());
        let v = serde_json::to_value(ErrorBody { error: e.clone() }).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": "guest_command_failed", "status": 422,
                "message": "guest command failed", "class": "CommandNotFound",
                "desc": "disabled"}})
        );
        assert_eq!(e.detail(), "CommandNotFound: disabled");
        let plain = ErrorDetail::new(ErrorCode::GuestBusy, "busy");
        assert!(serde_json::to_value(&plain).unwrap().get("class").is_none());
        assert_eq!(plain.detail(), "busy");
    }
}
