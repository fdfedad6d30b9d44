//! Every error a request can end in, and the one place they become HTTP responses (Nova's
//! error body style: `{"badRequest": {"code": 400, "message": "..."}}`).

use http::StatusCode;
use serde_json::json;

/// What went wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401: no token, or one Keystone does not accept.
    #[error("unauthorized")]
    Unauthorized,
    /// 403: the token may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404: no such resource (or not the caller's).
    #[error("not found: {0}")]
    NotFound(String),
    /// 405: the route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the instance or its guest agent is not in a state to do this.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 408: the request body did not arrive within `body_timeout`.
    #[error("request body too slow")]
    RequestTimeout,
    /// 413: the body is larger than the caller may send.
    #[error("request body over {0} bytes")]
    TooLarge(u64),
    /// 429: too many requests wait for the instance's guest agent.
    #[error("too many requests: {0}")]
    TooManyRequests(String),
    /// 422: the guest agent ran the command and it failed.
    #[error("guest command failed: {0}")]
    GuestFailed(String),
    /// 500: a bug or a deployment error on our side.
    #[error("internal error: {0}")]
    Internal(String),
    /// 503: a service we need (Keystone, Nova, Neutron, nova-guest-agent) is unavailable.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// 504: the guest agent did not answer in time.
    #[error("gateway timeout: {0}")]
    GatewayTimeout(String),
    /// The error inside, after the guest agent received the command: it may have run.
    #[error("{0} (the command may have run)")]
    Uncertain(Box<Self>),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Uncertain(inner) => inner.status(),
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::GuestFailed(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::GatewayTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The key of the Nova-style body.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Uncertain(inner) => inner.kind(),
            Self::BadRequest(_) => "badRequest",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "itemNotFound",
            Self::MethodNotAllowed => "methodNotAllowed",
            Self::Conflict(_) => "conflict",
            Self::RequestTimeout => "requestTimeout",
            Self::TooLarge(_) => "requestEntityTooLarge",
            Self::TooManyRequests(_) => "overLimit",
            Self::GuestFailed(_) => "unprocessableEntity",
            Self::Internal(_) => "computeFault",
            Self::Unavailable(_) => "serviceUnavailable",
            Self::GatewayTimeout(_) => "gatewayTimeout",
        }
    }

    /// The message shown to the caller.
    pub fn message(&self) -> String {
        match self {
            Self::Uncertain(inner) => inner.message(),
            Self::BadRequest(m)
            | Self::Forbidden(m)
            | Self::NotFound(m)
            | Self::Conflict(m)
            | Self::GuestFailed(m)
            | Self::TooManyRequests(m)
            | Self::Unavailable(m)
            | Self::GatewayTimeout(m) => m.clone(),
            Self::Unauthorized => "The request you have made requires authentication.".into(),
            Self::MethodNotAllowed => "The method is not allowed for this resource.".into(),
            Self::TooLarge(n) => format!("Request body is larger than the limit of {n} bytes."),
            Self::RequestTimeout => "The request body did not arrive in time.".into(),
            // Details are logged, not shown.
            Self::Internal(_) => "An unexpected error prevented the server from fulfilling \
                                  your request."
                .into(),
        }
    }

    /// The Nova-style JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({ self.kind(): { "code": self.status().as_u16(), "message": self.message() } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_bodies() {
        let e = ApiError::BadRequest("Unknown action \"x\"".into());
        assert_eq!(
            e.body(),
            json!({"badRequest": {"code": 400, "message": "Unknown action \"x\""}})
        );
        assert_eq!(ApiError::NotFound(String::new()).kind(), "itemNotFound");
        assert_eq!(ApiError::TooLarge(10).status(), 413);
        assert!(
            !ApiError::Internal("secret detail".into())
                .message()
                .contains("secret")
        );
    }
}
