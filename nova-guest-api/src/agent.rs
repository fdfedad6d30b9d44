//! The client of nova-guest-agent's internal API (on the instance's compute host, URL from
//! `agent_url_template`, shared secret as a bearer token): `POST /v1/instances/{uuid}/actions`
//! and `GET /v1/instances/{uuid}/guest`, with the bodies of [`nova_guest_contract`] both ways.
//! Its errors (404 unknown instance, 409 agent not connected or busy, 422 guest command failed,
//! 504 guest silent) become ours here.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use nova_guest_contract::guest::{GuestReply, GuestSummary};
use nova_guest_contract::{ActionReply, ActionRequest, ErrorBody, ErrorCode, ErrorDetail};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::config::Secret;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::outbound::{Outbound, OutboundError};
use nova_guest_conf::agent_token;

/// nova-guest-agent on every compute host, each called with its own token (derived from the
/// master secret and the host name, [`nova_guest_conf::agent_token`]).
#[derive(Debug)]
pub struct AgentClient {
    http: Outbound,
    template: String,
    secret: Secret,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

/// The tenant's error for an agent's error (`None`: the agent is misconfigured or broken, a
/// 503 for the tenant). Only the guest's own words (a guest agent error's class and
/// description) and the contract's messages about the request itself are passed on.
fn tenant_error(status: StatusCode, error: Option<ErrorDetail>) -> Option<ApiError> {
    let code = error.as_ref().map_or(ErrorCode::Unknown, |e| e.code);
    let status = match code {
        ErrorCode::Unknown => status,
        code => StatusCode::from_u16(code.status()).unwrap_or(status),
    };
    let ambiguous = error.as_ref().is_some_and(|e| e.ambiguous);
    let e = match (code, status) {
        (ErrorCode::GuestBusy, _) => ApiError::Conflict(
            "The guest agent of this instance is busy with another request; retry later.".into(),
        ),
        (_, StatusCode::NOT_FOUND | StatusCode::CONFLICT) => {
            ApiError::Conflict("The guest agent of this instance is not connected.".into())
        }
        (_, StatusCode::TOO_MANY_REQUESTS) => ApiError::TooManyRequests(
            "Too many requests wait for this instance's guest agent; retry later.".into(),
        ),
        (_, StatusCode::UNPROCESSABLE_ENTITY) => {
            let guest = error
                .as_ref()
                .filter(|e| e.class.is_some() || e.desc.is_some())
                .map(|e| format!(": {}", e.detail()))
                .unwrap_or_default();
            ApiError::GuestFailed(format!("The guest agent reported an error{guest}"))
        }
        (_, StatusCode::GATEWAY_TIMEOUT) => ApiError::GatewayTimeout(
            "The guest agent of this instance did not answer in time.".into(),
        ),
        (_, StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE) => ApiError::BadRequest(
            error
                .map(|e| e.message)
                .unwrap_or_else(|| "The request was refused.".into()),
        ),
        (ErrorCode::ActionDisabled, _) => ApiError::Forbidden(
            "This action is not enabled on the compute host of this instance.".into(),
        ),
        (_, StatusCode::BAD_GATEWAY) => ApiError::Unavailable(
            "The guest agent of this instance sent something that is not an answer.".into(),
        ),
        _ => return None,
    };
    Some(if ambiguous {
        ApiError::Uncertain(Box::new(e))
    } else {
        e
    })
}

impl AgentClient {
    /// The client for `template` (`https://{host}:4225`).
    pub fn new(
        http: Outbound,
        template: String,
        secret: Secret,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            http,
            template,
            secret,
            timeout,
            metrics,
        }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("{}{path}", self.template.replace("{host}", host))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        host: &str,
        path: &str,
        body: Option<Bytes>,
        request_id: &str,
        what: &str,
    ) -> Result<T, ApiError> {
        let mut request = Request::builder()
            .method(method)
            .uri(self.url(host, path))
            .header(
                "authorization",
                format!("Bearer {}", agent_token(&self.secret, host).expose()),
            )
            .header("accept", "application/json")
            .header("user-agent", crate::USER_AGENT)
            .header("x-openstack-request-id", request_id);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| ApiError::Internal(format!("agent URL for host {host:?}: {e}")))?;
        let reply = self.http.send(request, self.timeout).await;
        let result = match &reply {
            Ok(r) => r.status.as_str().to_owned(),
            Err(OutboundError::Timeout(_)) => "timeout".into(),
            Err(_) => "error".into(),
        };
        self.metrics.inc(
            "nova_guest_api_upstream_requests_total",
            format!("service=\"agent\",call=\"{what}\",result=\"{result}\""),
        );
        // What tenants read names the instance and the reason only: host names, agent URLs
        // and socket paths go to the log, with the request id.
        let reply = match reply {
            Ok(r) => r,
            Err(OutboundError::Timeout(t)) => {
                tracing::warn!(request_id, host, timeout = ?t, "nova-guest-agent did not answer in time");
                return Err(ApiError::GatewayTimeout(
                    "The guest agent service of this instance's host did not answer in time."
                        .into(),
                ));
            }
            Err(e) => {
                tracing::error!(request_id, host, error = %e, "nova-guest-agent unreachable");
                return Err(ApiError::Unavailable(
                    "The guest agent service of this instance's host is unavailable.".into(),
                ));
            }
        };
        let unexpected = || {
            ApiError::Unavailable(
                "The guest agent service of this instance's host sent an unexpected answer.".into(),
            )
        };
        if reply.status == StatusCode::OK {
            return serde_json::from_slice(&reply.body).map_err(|e| {
                tracing::error!(request_id, host, error = %e, "nova-guest-agent sent a body outside the contract");
                unexpected()
            });
        }
        let error = serde_json::from_slice::<ErrorBody>(&reply.body)
            .ok()
            .map(|b| b.error);
        tracing::info!(
            request_id,
            host,
            status = reply.status.as_u16(),
            code = error.as_ref().map_or("-", |e| e.code.as_str()),
            message = error.as_ref().map_or("-", |e| e.message.as_str()),
            "nova-guest-agent refused or failed the request"
        );
        Err(tenant_error(reply.status, error).unwrap_or_else(|| {
            tracing::error!(
                request_id,
                host,
                status = reply.status.as_u16(),
                "nova-guest-agent refused the request (a 401 means the host does not hold the \
                 token `nova-guest-api --print-agent-token HOST` prints)"
            );
            ApiError::Unavailable(
                "The guest agent service of this instance's host is unavailable.".into(),
            )
        }))
    }

    /// Runs one action on `instance` at `host`.
    ///
    /// # Errors
    ///
    /// The agent's errors mapped as described in the module docs; an answer that is not the
    /// contract's reply to this action is a 503.
    pub async fn action(
        &self,
        host: &str,
        instance: Uuid,
        request: &ActionRequest,
        request_id: &str,
    ) -> Result<ActionReply, ApiError> {
        let action = request.action();
        let body = Bytes::from(serde_json::to_vec(request).unwrap_or_default());
        let reply: ActionReply = self
            .call(
                Method::POST,
                host,
                &format!("/v1/instances/{instance}/actions"),
                Some(body),
                request_id,
                action.name(),
            )
            .await?;
        if reply.action() != action {
            tracing::error!(host, %action, answered = %reply.action(), "nova-guest-agent answered another action");
            return Err(ApiError::Unavailable(format!(
                "nova-guest-agent on host {host} sent an unexpected answer."
            )));
        }
        Ok(reply)
    }

    /// `GET /v1/instances/{uuid}/guest`.
    ///
    /// # Errors
    ///
    /// As [`Self::action`].
    pub async fn guest(
        &self,
        host: &str,
        instance: Uuid,
        request_id: &str,
    ) -> Result<GuestSummary, ApiError> {
        let reply: GuestReply = self
            .call(
                Method::GET,
                host,
                &format!("/v1/instances/{instance}/guest"),
                None,
                request_id,
                "guest",
            )
            .await?;
        Ok(reply.guest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(code: ErrorCode, message: &str) -> Option<ErrorDetail> {
        Some(ErrorDetail::new(code, message))
    }

    #[test]
    fn tenants_read_the_reason_not_the_infrastructure() {
        let leaky = "cannot inspect /run/nova-guest/qga/x.sock on compute-7";
        for code in [
            ErrorCode::InstanceNotFound,
            ErrorCode::GuestUnavailable,
            ErrorCode::GuestBusy,
            ErrorCode::GuestTimeout,
            ErrorCode::ActionDisabled,
            ErrorCode::GuestProtocolError,
            ErrorCode::GuestQueueFull,
        ] {
            let e = tenant_error(StatusCode::IM_A_TEAPOT, detail(code, leaky)).unwrap();
            assert!(!e.message().contains("compute-7"), "{code}: {e}");
            assert!(!e.message().contains("/run/"), "{code}: {e}");
        }
        let mut guest = ErrorDetail::new(ErrorCode::GuestCommandFailed, "m");
        guest.class = Some("GenericError".into());
        guest.desc = Some("no user".into());
        assert_eq!(
            tenant_error(StatusCode::UNPROCESSABLE_ENTITY, Some(guest)),
            Some(ApiError::GuestFailed(
                "The guest agent reported an error: GenericError: no user".into()
            ))
        );
        assert_eq!(
            tenant_error(
                StatusCode::TOO_MANY_REQUESTS,
                detail(ErrorCode::Unknown, "x")
            )
            .unwrap()
            .status(),
            429,
            "a code this build does not know keeps the HTTP status"
        );
        assert_eq!(tenant_error(StatusCode::UNAUTHORIZED, None), None);
        assert_eq!(
            tenant_error(
                StatusCode::BAD_REQUEST,
                detail(ErrorCode::BadRequest, "exec: path is empty")
            ),
            Some(ApiError::BadRequest("exec: path is empty".into()))
        );
    }
}
