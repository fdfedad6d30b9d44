//! API errors: a stable code, and the one place that maps errors to HTTP status.

use std::fmt;
use std::io::ErrorKind;

use http::StatusCode;
use qga_client::proto::message::ErrorBody;
use serde_json::{Value, json};

/// The stable error codes of the agent's HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: malformed request.
    BadRequest,
    /// 401: missing or wrong shared secret.
    Unauthorized,
    /// 403: the action is not in `enabled_actions`.
    ActionDisabled,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists with another method.
    MethodNotAllowed,
    /// 404: the instance has no agent socket on this host.
    InstanceNotFound,
    /// 409: the socket exists but refuses connections or the connection broke.
    GuestUnavailable,
    /// 409: another operation on this guest held it past the deadline.
    GuestBusy,
    /// 413: the body is too large.
    PayloadTooLarge,
    /// 422: the guest agent answered with an error (its class and desc are included).
    GuestCommandFailed,
    /// 502: the guest agent sent something that is not a valid answer.
    GuestProtocolError,
    /// 502: a file read back differently from what was written.
    VerifyFailed,
    /// 503: every operation slot stayed taken past the deadline.
    Overloaded,
    /// 503: the daemon is shutting down.
    ShuttingDown,
    /// 504: the guest agent was silent past the deadline.
    GuestTimeout,
    /// 500: a bug or a local failure.
    Internal,
}

impl ErrorCode {
    /// The code as it appears in bodies and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::ActionDisabled => "action_disabled",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InstanceNotFound => "instance_not_found",
            Self::GuestUnavailable => "guest_unavailable",
            Self::GuestBusy => "guest_busy",
            Self::PayloadTooLarge => "payload_too_large",
            Self::GuestCommandFailed => "guest_command_failed",
            Self::GuestProtocolError => "guest_protocol_error",
            Self::VerifyFailed => "verify_failed",
            Self::Overloaded => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::GuestTimeout => "guest_timeout",
            Self::Internal => "internal_error",
        }
    }

    /// The HTTP status: the only mapping from errors to status codes.
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::ActionDisabled => StatusCode::FORBIDDEN,
            Self::NotFound | Self::InstanceNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::GuestUnavailable | Self::GuestBusy => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::GuestCommandFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::GuestProtocolError | Self::VerifyFailed => StatusCode::BAD_GATEWAY,
            Self::Overloaded | Self::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Self::GuestTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answered to the caller.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The stable code.
    pub code: ErrorCode,
    /// A message for people; never holds secrets, file contents or exec output.
    pub message: String,
    /// The guest agent's error, for [`ErrorCode::GuestCommandFailed`].
    pub agent: Option<ErrorBody>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            agent: None,
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

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The JSON body: `{"error": {"code", "status", "message", "class"?, "desc"?}}`.
    pub fn body(&self) -> Value {
        let mut error = json!({
            "code": self.code.as_str(),
            "status": self.status().as_u16(),
            "message": self.message,
        });
        if let (Some(agent), Some(obj)) = (&self.agent, error.as_object_mut()) {
            obj.insert("class".into(), json!(agent.class.as_str()));
            obj.insert("desc".into(), json!(agent.desc));
        }
        json!({ "error": error })
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
            E::Closed | E::Io(_) => Self::new(ErrorCode::GuestUnavailable, text),
            E::Agent { error, .. } => Self {
                code: ErrorCode::GuestCommandFailed,
                message: text,
                agent: Some(error.clone()),
            },
            E::Decode { .. } | E::Protocol(_) => Self::new(ErrorCode::GuestProtocolError, text),
            E::InvalidArgument(_) => Self::new(ErrorCode::BadRequest, text),
            E::VerifyFailed { .. } => Self::new(ErrorCode::VerifyFailed, text),
            _ => Self::new(ErrorCode::Internal, text),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

/// An error and its sources, joined with ": ".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

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
            error: ErrorBody {
                class: ErrorClass::CommandNotFound,
                desc: "Command guest-set-user-password has been disabled".into(),
            },
        };
        let e = ApiError::from_guest(&agent);
        assert_eq!(e.status(), 422);
        assert_eq!(e.body()["error"]["class"], "CommandNotFound");
        assert_eq!(e.body()["error"]["code"], "guest_command_failed");
    }
}
