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
use nova_guest_contract::{ActionReply, ActionRequest, ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::config::Secret;
use nova_guest_conf::agent_token;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::outbound::{Outbound, OutboundError};

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

/// What the agent's error body says, and the status its code stands for (the HTTP status when
/// the body is not the contract's or its code is unknown to this build).
fn agent_error(status: StatusCode, body: &[u8]) -> (StatusCode, Option<String>) {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => {
            let status = match error.code {
                ErrorCode::Unknown => status,
                code => StatusCode::from_u16(code.status()).unwrap_or(status),
            };
            (status, Some(error.detail()))
        }
        Err(_) => (status, None),
    }
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
        let reply = match reply {
            Ok(r) => r,
            Err(OutboundError::Timeout(t)) => {
                tracing::warn!(host, timeout = ?t, "nova-guest-agent did not answer in time");
                return Err(ApiError::GatewayTimeout(format!(
                    "nova-guest-agent on host {host} did not answer within {} s.",
                    t.as_secs_f64()
                )));
            }
            Err(e) => {
                tracing::error!(host, error = %e, "nova-guest-agent unreachable");
                return Err(ApiError::Unavailable(format!(
                    "nova-guest-agent on host {host} is unreachable."
                )));
            }
        };
        if reply.status == StatusCode::OK {
            return serde_json::from_slice(&reply.body).map_err(|e| {
                tracing::error!(host, error = %e, "nova-guest-agent sent a body outside the contract");
                ApiError::Unavailable(format!(
                    "nova-guest-agent on host {host} sent an unexpected answer."
                ))
            });
        }
        let (status, detail) = agent_error(reply.status, &reply.body);
        let suffix = || {
            detail
                .as_ref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        };
        match status {
            StatusCode::NOT_FOUND => Err(ApiError::Conflict(format!(
                "The guest agent of this instance is not connected (nova-guest-agent on host \
                 {host} has no channel to it){}",
                suffix()
            ))),
            StatusCode::CONFLICT => Err(ApiError::Conflict(format!(
                "The guest agent of this instance is not connected or busy{}",
                suffix()
            ))),
            StatusCode::UNPROCESSABLE_ENTITY => Err(ApiError::GuestFailed(format!(
                "The guest agent reported an error{}",
                suffix()
            ))),
            StatusCode::GATEWAY_TIMEOUT => Err(ApiError::GatewayTimeout(
                "The guest agent of this instance did not answer in time.".into(),
            )),
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::BadRequest(detail.unwrap_or_else(|| {
                    "nova-guest-agent refused the request".into()
                })))
            }
            StatusCode::FORBIDDEN if detail.is_some() => Err(ApiError::Forbidden(format!(
                "nova-guest-agent on host {host} refused: {}",
                detail.unwrap_or_default()
            ))),
            status => {
                tracing::error!(
                    host,
                    %status,
                    "nova-guest-agent refused the request (a 401 means the host does not hold the token `nova-guest-api --print-agent-token HOST` prints)"
                );
                Err(ApiError::Unavailable(format!(
                    "nova-guest-agent on host {host} is unavailable."
                )))
            }
        }
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

    #[test]
    fn contract_errors_by_code() {
        let e =
            |status: u16, s: &str| agent_error(StatusCode::from_u16(status).unwrap(), s.as_bytes());
        assert_eq!(
            e(
                422,
                r#"{"error": {"code": "guest_command_failed", "status": 422, "message": "m",
                    "class": "GenericError", "desc": "no user"}}"#
            ),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Some("GenericError: no user".into())
            )
        );
        assert_eq!(
            e(
                409,
                r#"{"error": {"code": "guest_busy", "status": 409, "message": "busy"}}"#
            ),
            (StatusCode::CONFLICT, Some("busy".into()))
        );
        // A code this build does not know keeps the HTTP status.
        assert_eq!(
            e(
                429,
                r#"{"error": {"code": "guest_queue_full", "status": 429, "message": "later"}}"#
            ),
            (StatusCode::TOO_MANY_REQUESTS, Some("later".into()))
        );
        assert_eq!(e(502, "not json"), (StatusCode::BAD_GATEWAY, None));
    }
}
