//! The HTTP API: routing, the shared-secret check, bodies and responses.
//!
//! | Route | |
//! |---|---|
//! | `GET /healthz` | liveness, no secret needed |
//! | `GET /metrics` | Prometheus text |
//! | `GET /v1/instances` | the instances with a socket here, each pinged |
//! | `GET /v1/instances/{uuid}/guest` | agent version, commands, OS, hostname, interfaces |
//! | `POST /v1/instances/{uuid}/actions` | one action per body |
//!
//! Instance routes take `?name=<libvirt domain name>` when `socket_path_template` uses
//! `{name}`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tracing::Instrument;

use crate::action;
use crate::app::App;
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::ops::{self, Target};
use crate::template::{valid_name, valid_uuid};

/// The request id header (OpenStack's).
const REQUEST_ID: &str = "x-openstack-request-id";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Healthz,
    Metrics,
    List,
    Guest(String),
    Actions(String),
    /// Known path, other method; the allowed method.
    WrongMethod(&'static str, &'static str),
    NotFound,
}

impl Route {
    fn parse(method: &Method, path: &str) -> Self {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        let get = method == Method::GET || method == Method::HEAD;
        let route = match parts.as_slice() {
            ["healthz"] => (get, Self::Healthz, "GET"),
            ["metrics"] => (get, Self::Metrics, "GET"),
            ["v1", "instances"] => (get, Self::List, "GET"),
            ["v1", "instances", uuid, "guest"] => (get, Self::Guest((*uuid).to_owned()), "GET"),
            ["v1", "instances", uuid, "actions"] => (
                method == Method::POST,
                Self::Actions((*uuid).to_owned()),
                "POST",
            ),
            _ => return Self::NotFound,
        };
        match route {
            (true, r, _) => r,
            (false, r, allowed) => Self::WrongMethod(r.name(), allowed),
        }
    }

    /// The route template, for logs and metrics.
    fn name(&self) -> &'static str {
        match self {
            Self::Healthz => "/healthz",
            Self::Metrics => "/metrics",
            Self::List => "/v1/instances",
            Self::Guest(_) => "/v1/instances/{uuid}/guest",
            Self::Actions(_) => "/v1/instances/{uuid}/actions",
            Self::WrongMethod(name, _) => name,
            Self::NotFound => "other",
        }
    }
}

/// The response of a handler before headers are added.
enum Reply {
    Json(StatusCode, Value),
    Text(String),
}

/// A request id: the caller's `X-Openstack-Request-Id` when it looks like one, else new.
fn request_id(req: &Request<Incoming>) -> String {
    if let Some(id) = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.strip_prefix("req-").is_some_and(valid_uuid))
    {
        return id.to_owned();
    }
    let r = fastrand::u128(..);
    let h = format!("{r:032x}");
    format!(
        "req-{}-{}-4{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        (r as u8 & 0x3) | 0x8,
        &h[17..20],
        &h[20..32]
    )
}

fn authorized(config: &Config, req: &Request<Incoming>) -> bool {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return false;
    };
    let bytes = value.as_bytes();
    let Some(token) = bytes
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
        .map(|_| &bytes[7..])
    else {
        return false;
    };
    config.auth_token.matches(token.trim_ascii())
}

/// Handles one request. Never fails: errors become JSON error responses.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().clone();
    let route = Route::parse(&method, req.uri().path());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %method,
        route = route.name(),
        instance = tracing::field::Empty,
        action = tracing::field::Empty,
    );
    async move {
        let _in_flight = app.metrics.in_flight();
        tracing::debug!("request received");
        let (config, _) = app.snapshot();
        let reply = match dispatch(&app, &config, &route, req).await {
            Ok(reply) => reply,
            Err(e) => Reply::Json(e.status(), e.body()),
        };
        let (status, content_type, body, code) = match reply {
            Reply::Json(status, value) => {
                let code = value
                    .pointer("/error/code")
                    .and_then(Value::as_str)
                    .unwrap_or("ok")
                    .to_owned();
                let mut body = serde_json::to_vec(&value).unwrap_or_default();
                body.push(b'\n');
                (status, "application/json", body, code)
            }
            Reply::Text(text) => (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text.into_bytes(),
                "ok".to_owned(),
            ),
        };
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), code, elapsed_ms, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), code, elapsed_ms, "request done");
        }
        app.metrics
            .request(route.name(), method.as_str(), status.as_u16());
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(v) = HeaderValue::from_str(&id) {
            headers.insert(REQUEST_ID, v);
        }
        if let Route::WrongMethod(_, allowed) = route {
            headers.insert(http::header::ALLOW, HeaderValue::from_static(allowed));
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"nova-guest-agent\""),
            );
        }
        response
    }
    .instrument(span)
    .await
}

async fn dispatch(
    app: &Arc<App>,
    config: &Arc<Config>,
    route: &Route,
    req: Request<Incoming>,
) -> Result<Reply, ApiError> {
    if *route == Route::Healthz {
        return Ok(Reply::Json(StatusCode::OK, json!({"status": "ok"})));
    }
    if !authorized(config, &req) {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "a valid `Authorization: Bearer <secret>` header is required",
        ));
    }
    match route {
        Route::Healthz => Ok(Reply::Json(StatusCode::OK, json!({"status": "ok"}))),
        Route::Metrics => Ok(Reply::Text(app.metrics.render(app.guests.connections()))),
        Route::List => Ok(json_reply(&ops::list(app.clone(), config.clone()).await?)),
        Route::Guest(uuid) => {
            let target = target(config, uuid, req.uri().query())?;
            Ok(json_reply(&ops::guest_summary(app, config, &target).await?))
        }
        Route::Actions(uuid) => {
            let target = target(config, uuid, req.uri().query())?;
            let body = read_body(config, req).await?;
            let request = action::parse(&body, config.max_file_size)?;
            drop(body);
            let action = request.action();
            tracing::Span::current().record("action", action.name());
            if !config.enabled_actions.contains(&action) {
                app.metrics
                    .action(action.name(), ErrorCode::ActionDisabled.as_str());
                return Err(ApiError::new(
                    ErrorCode::ActionDisabled,
                    format!("the {action} action is not enabled on this host (enabled_actions)"),
                ));
            }
            Ok(json_reply(
                &ops::run_action(app, config, &target, request).await?,
            ))
        }
        Route::WrongMethod(_, allowed) => Err(ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("use {allowed} on this route"),
        )),
        Route::NotFound => Err(ApiError::new(ErrorCode::NotFound, "no such route")),
    }
}

/// A 200 with a contract type as its body (keys in the order serde_json sorts them).
fn json_reply(body: &impl serde::Serialize) -> Reply {
    Reply::Json(
        StatusCode::OK,
        serde_json::to_value(body).unwrap_or(Value::Null),
    )
}

/// The instance of an instance route: a validated uuid (and name), and its socket path.
fn target(config: &Config, uuid: &str, query: Option<&str>) -> Result<Target, ApiError> {
    if !valid_uuid(uuid) {
        return Err(ApiError::bad_request("the instance id must be a uuid"));
    }
    tracing::Span::current().record("instance", uuid);
    let mut name = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("name", v)) if valid_name(v) => name = Some(v.to_owned()),
            Some(("name", _)) => {
                return Err(ApiError::bad_request(
                    "name must be a libvirt domain name (letters, digits, '.', '_', '-')",
                ));
            }
            _ => {}
        }
    }
    if config.transport == crate::config::TransportKind::Libvirt {
        // libvirt finds the domain by the instance's uuid; no socket is involved.
        return Ok(Target {
            uuid: uuid.to_owned(),
            name,
            path: crate::libvirt::slot_key(uuid),
            qmp: None,
        });
    }
    let Some(path) = config.socket_path_template.path(uuid, name.as_deref()) else {
        return Err(ApiError::bad_request(
            "this host finds sockets by domain name: add ?name=<libvirt domain name>",
        ));
    };
    let qmp = config
        .qmp_socket_path_template
        .as_ref()
        .and_then(|t| t.path(uuid, name.as_deref()));
    Ok(Target {
        uuid: uuid.to_owned(),
        name,
        path,
        qmp,
    })
}

async fn read_body(config: &Config, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let max = config.max_body_size();
    let too_large = || {
        ApiError::too_large(format!(
            "the body exceeds {max} bytes (max_file_size {} as base64, plus 1 MiB)",
            config.max_file_size
        ))
    };
    if let Some(len) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > max as u64
    {
        return Err(too_large());
    }
    let collect = Limited::new(req.into_body(), max).collect();
    match tokio::time::timeout(config.command_timeout, collect).await {
        Ok(Ok(body)) => Ok(body.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Ok(Err(e)) => Err(ApiError::bad_request(format!("cannot read the body: {e}"))),
        Err(_) => Err(ApiError::bad_request("the body did not arrive in time")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let u = "b6b4177b-3ca1-4d0f-a3a4-ad46d82a6f62";
        assert_eq!(Route::parse(&Method::GET, "/healthz"), Route::Healthz);
        assert_eq!(Route::parse(&Method::GET, "/v1/instances/"), Route::List);
        assert_eq!(
            Route::parse(&Method::POST, &format!("/v1/instances/{u}/actions")),
            Route::Actions(u.into())
        );
        assert_eq!(
            Route::parse(&Method::GET, &format!("/v1/instances/{u}/actions")),
            Route::WrongMethod("/v1/instances/{uuid}/actions", "POST")
        );
        assert_eq!(Route::parse(&Method::GET, "/v2"), Route::NotFound);
    }
}
