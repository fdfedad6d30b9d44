//! API errors: a stable code, and the one place that maps errors to HTTP status.

use std::fmt;
use std::io::ErrorKind;

use http::StatusCode;
pub use nova_guest_contract::ErrorCode;
use nova_guest_contract::{ContractError, ErrorBody, ErrorDetail};
use qga_client::proto::message::ErrorBody as GuestError;
use serde_json::Value;

/// An error answered to the caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// A message for people; never holds secrets, file contents or exec output.
    pub message: String,
    /// The guest agent's error, for [`ErrorCode::GuestCommandFailed`].
    pub agent: Option<GuestError>,
    /// The command may have run in the guest though no answer says so.
    pub ambiguous: bool,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            agent: None,
            ambiguous: false,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 413.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PayloadTooLarge, message)
    }

    /// Marks the command as possibly run (no answer came after it reached the guest agent).
    #[must_use]
    pub fn ambiguous(mut self) -> Self {
        self.ambiguous = true;
        self
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The HTTP status: the contract's, the only mapping from errors to status codes.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The contract's error body.
    pub fn detail(&self) -> ErrorDetail {
        let mut detail = ErrorDetail::new(self.code, self.message.clone());
        if let Some(agent) = &self.agent {
            detail.class = Some(agent.class.as_str().to_owned());
            detail.desc = Some(agent.desc.clone());
        }
        detail.ambiguous = self.ambiguous;
        detail
    }

    /// The JSON body: `{"error": {"code", "status", "message", "class"?, "desc"?}}`.
    pub fn body(&self) -> Value {
        serde_json::to_value(ErrorBody {
            error: self.detail(),
        })
        .unwrap_or(Value::Null)
    }

    /// Maps a guest agent client error.
    pub fn from_guest(e: &qga_client::Error) -> Self {
        use qga_client::Error as E;
        let text = error_chain(e);
        match e {
            E::Connect { source, .. } => match source.kind() {
                ErrorKind::NotFound => Self::new(
                    ErrorCode::InstanceNotFound,
                    "the instance has no guest agent socket on this host",
                ),
                ErrorKind::TimedOut => Self::new(ErrorCode::GuestTimeout, text),
                _ => Self::new(ErrorCode::GuestUnavailable, text),
            },
            E::Timeout { .. } | E::ExecTimeout { .. } => Self::new(ErrorCode::GuestTimeout, text),
            E::DomainNotFound { .. } => Self::new(
                ErrorCode::InstanceNotFound,
                "no libvirt domain on this host has the instance's uuid",
            ),
            // Stopped or paused, or libvirt failed or refused: the guest cannot be reached now.
            E::DomainNotRunning { .. } | E::Libvirt { .. } => {
                Self::new(ErrorCode::GuestUnavailable, text)
            }
            E::Closed | E::Io(_) | E::NotConnected => Self::new(ErrorCode::GuestUnavailable, text),
            E::Agent { error, .. } => Self {
                code: ErrorCode::GuestCommandFailed,
                message: text,
                agent: Some(error.clone()),
                ambiguous: false,
            },
            E::Decode { .. } | E::Protocol(_) => Self::new(ErrorCode::GuestProtocolError, text),
            E::InvalidArgument(_) => Self::new(ErrorCode::BadRequest, text),
            E::VerifyFailed { .. } | E::ShortWrite { .. } => {
                Self::new(ErrorCode::VerifyFailed, text)
            }
            _ => Self::new(ErrorCode::Internal, text),
        }
    }
}

impl From<ContractError> for ApiError {
    fn from(e: ContractError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

pub use nova_guest_daemon::process::error_chain;

#[cfg(test)]
mod tests {
    use super::*;
    use qga_client::proto::message::ErrorClass;

    #[test]
    fn guest_errors_map_to_the_documented_statuses() {
        let connect = |kind| qga_client::Error::Connect {
            path: "/x".into(),
            source: std::io::Error::from(kind),
        };
        assert_eq!(
            ApiError::from_guest(&connect(ErrorKind::NotFound)).status(),
            404
        );
        assert_eq!(
            ApiError::from_guest(&connect(ErrorKind::ConnectionRefused)).status(),
            409
        );
        let timeout = qga_client::Error::Timeout {
            command: "guest-ping".into(),
            after: std::time::Duration::from_secs(1),
        };
        assert_eq!(ApiError::from_guest(&timeout).status(), 504);
        let agent = qga_client::Error::Agent {
            command: "guest-set-user-password".into(),
            error: GuestError {
                class: ErrorClass::CommandNotFound,
                desc: "Command guest-set-user-password has been disabled".into(),
            },
        };
        let e = ApiError::from_guest(&agent);
        assert_eq!(e.status(), 422);
        assert_eq!(e.body()["error"]["class"], "CommandNotFound");
        assert_eq!(e.body()["error"]["code"], "guest_command_failed");
        assert_eq!(
            e.body()["error"]["desc"],
            "Command guest-set-user-password has been disabled"
        );
    }
}
