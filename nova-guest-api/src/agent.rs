//! The client of nova-guest-agent's internal API (on the instance's compute host, URL from
//! `agent_url_template`, shared secret as a bearer token): `POST /v1/instances/{uuid}/actions`
//! and `GET /v1/instances/{uuid}/guest`. Its errors (404 unknown instance, 409 agent not
//! connected or busy, 422 guest command failed, 504 guest silent) become ours here.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use uuid::Uuid;

use crate::config::Secret;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::outbound::{Outbound, OutboundError};

/// nova-guest-agent on every compute host.
#[derive(Debug)]
pub struct AgentClient {
    http: Outbound,
    template: String,
    secret: Secret,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

/// The agent's error message, whatever its exact shape (`{"error": {"message"}}`,
/// `{"<kind>": {"message"}}`, `{"message"}`, with `class` / `desc` for guest errors).
fn agent_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let inner = if v.get("message").is_some() || v.get("desc").is_some() {
        &v
    } else {
        v.as_object()?.values().find(|x| x.is_object())?
    };
    let text = |k: &str| inner.get(k).and_then(Value::as_str).map(str::to_owned);
    match (text("class"), text("desc"), text("message")) {
        (Some(c), Some(d), _) => Some(format!("{c}: {d}")),
        (_, Some(d), _) => Some(d),
        (_, _, Some(m)) => Some(m),
        _ => None,
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

    async fn call(
        &self,
        method: Method,
        host: &str,
        path: &str,
        body: Option<Bytes>,
        request_id: &str,
        what: &str,
    ) -> Result<Value, ApiError> {
        let mut request = Request::builder()
            .method(method)
            .uri(self.url(host, path))
            .header("authorization", format!("Bearer {}", self.secret.expose()))
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
        let detail = || agent_message(&reply.body);
        match reply.status {
            StatusCode::OK => serde_json::from_slice(&reply.body).map_err(|e| {
                tracing::error!(host, error = %e, "nova-guest-agent sent a body that is not JSON");
                ApiError::Unavailable(format!(
                    "nova-guest-agent on host {host} sent an unexpected answer."
                ))
            }),
            StatusCode::NOT_FOUND => Err(ApiError::Conflict(format!(
                "The guest agent of this instance is not connected (nova-guest-agent on host \
                 {host} has no channel to it){}",
                detail().map(|d| format!(": {d}")).unwrap_or_default()
            ))),
            StatusCode::CONFLICT => Err(ApiError::Conflict(format!(
                "The guest agent of this instance is not connected or busy{}",
                detail().map(|d| format!(": {d}")).unwrap_or_default()
            ))),
            StatusCode::UNPROCESSABLE_ENTITY => Err(ApiError::GuestFailed(format!(
                "The guest agent reported an error{}",
                detail().map(|d| format!(": {d}")).unwrap_or_default()
            ))),
            StatusCode::GATEWAY_TIMEOUT => Err(ApiError::GatewayTimeout(
                "The guest agent of this instance did not answer in time.".into(),
            )),
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::BadRequest(detail().unwrap_or_else(|| {
                    "nova-guest-agent refused the request".into()
                })))
            }
            StatusCode::FORBIDDEN if detail().is_some() => Err(ApiError::Forbidden(format!(
                "nova-guest-agent on host {host} refused: {}",
                detail().unwrap_or_default()
            ))),
            status => {
                tracing::error!(
                    host,
                    %status,
                    "nova-guest-agent refused the request (a 401 means the shared secret differs)"
                );
                Err(ApiError::Unavailable(format!(
                    "nova-guest-agent on host {host} is unavailable."
                )))
            }
        }
    }

    /// Runs one action (`body` in the agent's shape) on `instance` at `host`.
    ///
    /// # Errors
    ///
    /// The agent's errors mapped as described in the module docs.
    pub async fn action(
        &self,
        host: &str,
        instance: Uuid,
        body: &Value,
        request_id: &str,
        action: &str,
    ) -> Result<Value, ApiError> {
        let body = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        self.call(
            Method::POST,
            host,
            &format!("/v1/instances/{instance}/actions"),
            Some(body),
            request_id,
            action,
        )
        .await
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
    ) -> Result<Value, ApiError> {
        self.call(
            Method::GET,
            host,
            &format!("/v1/instances/{instance}/guest"),
            None,
            request_id,
            "guest",
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_any_shape() {
        let m = |s: &str| agent_message(s.as_bytes());
        assert_eq!(
            m(r#"{"error": {"code": "guest_failed", "class": "GenericError", "desc": "no user"}}"#),
            Some("GenericError: no user".into())
        );
        assert_eq!(m(r#"{"message": "busy"}"#), Some("busy".into()));
        assert_eq!(
            m(r#"{"conflict": {"code": 409, "message": "socket busy"}}"#),
            Some("socket busy".into())
        );
        assert_eq!(m("not json"), None);
    }
}
