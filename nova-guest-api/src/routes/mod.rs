//! Routing and the request flow. For the instance routes the checks run in this order, all
//! before anything reaches the agent: body size announced (413), token (401), project (403),
//! body read and parsed (413/400), policy (403), then the instance in Nova (404 when unknown
//! or in another project, 409 when not ACTIVE).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::{App, State};

mod fleet;
mod instance;
mod versions;

pub use versions::OPENAPI;

const REQUEST_ID: &str = "x-openstack-request-id";

/// Per-request facts for the response and the log.
pub(crate) struct Ctx {
    pub(crate) request_id: String,
    pub(crate) route: &'static str,
    pub(crate) audit_id: Option<String>,
    /// The request body was read to its end (else the connection is not reused).
    pub(crate) body_consumed: bool,
}

fn new_request_id() -> String {
    format!("req-{}", Uuid::new_v4())
}

pub(crate) fn valid_request_id(v: &str) -> bool {
    v.strip_prefix("req-")
        .is_some_and(|u| u.len() == 36 && Uuid::parse_str(u).is_ok())
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: &ApiError, state: &State) -> Response<Full<Bytes>> {
    let mut r = json_response(e.status(), &e.body());
    if *e == ApiError::Unauthorized
        && let Some(ks) = &state.keystone
        && let Ok(v) = HeaderValue::from_str(&ks.www_authenticate())
    {
        r.headers_mut().insert("www-authenticate", v);
    }
    if *e == ApiError::MethodNotAllowed {
        r.headers_mut()
            .insert("allow", HeaderValue::from_static("GET, POST"));
    }
    if matches!(e, ApiError::TooManyRequests(_)) {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    r
}

/// Handles one request; never fails (errors become Nova-style bodies).
pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> Response<Full<Bytes>>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let started = Instant::now();
    let state = app.state();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let mut ctx = Ctx {
        request_id: new_request_id(),
        route: "unknown",
        audit_id: None,
        body_consumed: false,
    };
    let has_body = req.headers().contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    app.metrics.in_flight(1);
    let result = route(&app, &state, req, &mut ctx).await;
    app.metrics.in_flight(-1);
    let mut response = match result {
        Ok(r) => r,
        Err(e) => {
            if matches!(e, ApiError::Internal(_)) {
                tracing::error!(request_id = %ctx.request_id, error = %e, "internal error");
            }
            error_response(&e, &state)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    if has_body && !ctx.body_consumed {
        // Refused before the body was read (413, 401, ...): close rather than drain it.
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    app.metrics.request(ctx.route, status, elapsed);
    if ctx.route != "healthz" && ctx.route != "metrics" {
        tracing::info!(
            request_id = %ctx.request_id,
            %method,
            path = %path,
            status,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            token = ctx.audit_id.as_deref().unwrap_or("-"),
            "request"
        );
    }
    response
}

/// The metrics listener (`[api] metrics_address`): `GET /metrics` in Prometheus' text format,
/// nothing else. It never shares the public port: tenants are not to read the operator's
/// numbers.
pub async fn metrics<B>(app: Arc<App>, req: Request<B>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/metrics" {
        return json_response(
            StatusCode::NOT_FOUND,
            &ApiError::NotFound("Unknown resource.".into()).body(),
        );
    }
    if req.method() != Method::GET {
        return json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &ApiError::MethodNotAllowed.body(),
        );
    }
    let mut r = Response::new(Full::new(Bytes::from(app.metrics.render())));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// The instance resource a request is for.
pub(crate) enum Resource {
    /// `POST .../actions`; `networking_route` for the original `/networking/` path, which only
    /// takes apply-networking.
    Action { networking_route: bool },
    /// `GET .../guest`.
    Guest,
}

async fn route<B>(
    app: &App,
    state: &Arc<State>,
    req: Request<B>,
    ctx: &mut Ctx,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method() == Method::GET;
    let post = req.method() == Method::POST;
    let (target, project, instance) = match segments[..] {
        [] => {
            ctx.route = "versions";
            return if get {
                Ok(versions::versions(req.headers(), &state.config))
            } else {
                Err(ApiError::MethodNotAllowed)
            };
        }
        ["v1"] => {
            ctx.route = "version";
            return if get {
                Ok(versions::version(req.headers(), &state.config))
            } else {
                Err(ApiError::MethodNotAllowed)
            };
        }
        ["v1", "openapi.json"] => {
            ctx.route = "openapi";
            if !get {
                return Err(ApiError::MethodNotAllowed);
            }
            let mut r = Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            return Ok(r);
        }
        ["healthz"] => {
            ctx.route = "healthz";
            return if get {
                let mut body = json!({"status": "ok"});
                if let Some(n) = app.notifications.get() {
                    body["notifications"] = n.health_json();
                }
                Ok(json_response(StatusCode::OK, &body))
            } else {
                Err(ApiError::MethodNotAllowed)
            };
        }
        ["v1", project, "servers", instance, "actions"] => {
            ctx.route = "server_action";
            if !post {
                return Err(ApiError::MethodNotAllowed);
            }
            (
                Resource::Action {
                    networking_route: false,
                },
                project,
                instance,
            )
        }
        ["v1", project, "networking", instance, "actions"] => {
            ctx.route = "networking_action";
            if !post {
                return Err(ApiError::MethodNotAllowed);
            }
            (
                Resource::Action {
                    networking_route: true,
                },
                project,
                instance,
            )
        }
        ["v1", project, "networking", "actions"] => {
            ctx.route = "fleet_action";
            if !post {
                return Err(ApiError::MethodNotAllowed);
            }
            return fleet::handle(app, state, req, ctx, project).await;
        }
        ["v1", project, "servers", instance, "guest"] => {
            ctx.route = "guest";
            if !get {
                return Err(ApiError::MethodNotAllowed);
            }
            (Resource::Guest, project, instance)
        }
        _ => return Err(ApiError::NotFound("Unknown resource.".into())),
    };
    instance::handle(state, req, ctx, target, project, instance).await
}
