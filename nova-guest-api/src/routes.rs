//! Routing and the request flow. For the instance routes the checks run in this order, all
//! before anything reaches the agent: body size announced (413), token (401), project (403),
//! body read and parsed (413/400), policy (403), then the instance in Nova (404 when unknown
//! or in another project, 409 when not ACTIVE).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::action::ActionRequest;
use crate::error::ApiError;
use crate::keystone::TokenInfo;
use crate::password;
use crate::policy::Action;
use crate::state::{App, State};

/// The OpenAPI document, served at `/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi.json");
const REQUEST_ID: &str = "x-openstack-request-id";
/// How long a request waits for a slot when `max_concurrent_requests` are in flight.
const QUEUE_WAIT: Duration = Duration::from_secs(2);
const UPDATED: &str = "2025-01-01T00:00:00Z";

/// Per-request facts for the response and the log.
struct Ctx {
    request_id: String,
    route: &'static str,
    audit_id: Option<String>,
    /// The request body was read to its end (else the connection is not reused).
    body_consumed: bool,
}

fn new_request_id() -> String {
    format!("req-{}", Uuid::new_v4())
}

fn valid_request_id(v: &str) -> bool {
    v.strip_prefix("req-")
        .is_some_and(|u| u.len() == 36 && Uuid::parse_str(u).is_ok())
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
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

enum Target {
    Action { networking_route: bool },
    Guest,
}

async fn route<B>(
    app: &Arc<App>,
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
                Ok(versions(req.headers()))
            } else {
                Err(ApiError::MethodNotAllowed)
            };
        }
        ["v1"] => {
            ctx.route = "version";
            return if get {
                Ok(version(req.headers()))
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
                Ok(json_response(StatusCode::OK, &json!({"status": "ok"})))
            } else {
                Err(ApiError::MethodNotAllowed)
            };
        }
        ["metrics"] => {
            ctx.route = "metrics";
            if !get {
                return Err(ApiError::MethodNotAllowed);
            }
            let mut r = Response::new(Full::new(Bytes::from(app.metrics.render())));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            return Ok(r);
        }
        ["v1", project, "servers", instance, "actions"] => {
            ctx.route = "server_action";
            if !post {
                return Err(ApiError::MethodNotAllowed);
            }
            (
                Target::Action {
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
                Target::Action {
                    networking_route: true,
                },
                project,
                instance,
            )
        }
        ["v1", project, "servers", instance, "guest"] => {
            ctx.route = "guest";
            if !get {
                return Err(ApiError::MethodNotAllowed);
            }
            (Target::Guest, project, instance)
        }
        _ => return Err(ApiError::NotFound("Unknown resource.".into())),
    };
    let (project, instance) = (project.to_owned(), instance.to_owned());

    // Announced body size first: nothing is read, no token checked, for a body we would refuse.
    let limit = state.config.max_request_body_bytes;
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit));
    }

    let _permit = match state.limiter.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => tokio::time::timeout(QUEUE_WAIT, state.limiter.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                ApiError::Unavailable("Too many requests in flight; retry later.".into())
            })?,
    };

    let token = authenticate(state, req.headers(), &project).await?;
    ctx.audit_id = Some(token.audit_id.clone());
    if (token.has_role("service") || token.has_role("admin"))
        && let Some(incoming) = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok())
        && valid_request_id(incoming)
    {
        ctx.request_id = incoming.to_owned();
    }

    let is_admin = token.has_role(crate::policy::ADMIN_ROLE);
    if token.project_id.as_deref() != Some(project.as_str()) && !is_admin {
        return Err(ApiError::Forbidden(format!(
            "The token is not scoped to project {project}."
        )));
    }

    let action = match target {
        Target::Guest => None,
        Target::Action { networking_route } => {
            let body = Limited::new(req.into_body(), limit as usize)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        ApiError::TooLarge(limit)
                    } else {
                        ApiError::BadRequest(format!("Cannot read the request body: {e}"))
                    }
                })?
                .to_bytes();
            ctx.body_consumed = true;
            let action = ActionRequest::parse(&body)?;
            if networking_route && action != ActionRequest::ApplyNetworking {
                return Err(ApiError::BadRequest(
                    "This route only takes {\"apply-networking\": null}; other actions are at \
                     /v1/{project_id}/servers/{instance_id}/actions"
                        .into(),
                ));
            }
            Some(action)
        }
    };
    let policy_target = action.as_ref().map_or(Action::Guest, ActionRequest::action);
    if !state.config.policy.allows(policy_target, &token.roles) {
        return Err(ApiError::Forbidden(format!(
            "Policy doesn't allow {} to be performed.",
            policy_target.name()
        )));
    }

    let not_found = || ApiError::NotFound(format!("Instance {instance} could not be found."));
    let id = Uuid::parse_str(&instance).map_err(|_| not_found())?;
    let host = instance_host(state, id, &project, &ctx.request_id)
        .await?
        .ok_or_else(not_found)?;

    let rid = ctx.request_id.clone();
    let Some(action) = action else {
        let guest = state.agent.guest(&host, id, &rid).await?;
        let body = if guest.get("guest").is_some() {
            guest
        } else {
            json!({"guest": guest})
        };
        return Ok(json_response(StatusCode::OK, &body));
    };
    let body = match action {
        ActionRequest::ApplyNetworking => {
            let network_data = match &state.cloud {
                Some(cloud) => cloud.network_data(id, &rid).await?,
                None => static_network_data(state, id),
            };
            let body = json!({"apply-networking": {"network_data": network_data}});
            state
                .agent
                .action(&host, id, &body, &rid, "apply-networking")
                .await?
        }
        ActionRequest::Ping => {
            state
                .agent
                .action(&host, id, &json!({"ping": null}), &rid, "ping")
                .await?;
            json!({"ping": {"success": true}})
        }
        ActionRequest::SetPassword { username, password } => {
            let generated = password.is_none();
            let password = password.unwrap_or_else(password::generate);
            let mut args = json!({"password": password});
            if let Some(u) = &username {
                args["username"] = json!(u);
            }
            let reply = state
                .agent
                .action(
                    &host,
                    id,
                    &json!({"set-password": args}),
                    &rid,
                    "set-password",
                )
                .await?;
            let mut out = json!({"success": true});
            let used = reply
                .pointer("/set-password/username")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or(username);
            if let Some(u) = used {
                out["username"] = json!(u);
            }
            if generated {
                out["password"] = json!(password);
            }
            json!({"set-password": out})
        }
        ActionRequest::InjectFile { path, contents } => {
            let body = json!({"inject-file": {"path": path, "contents": contents}});
            drop(contents);
            state
                .agent
                .action(&host, id, &body, &rid, "inject-file")
                .await?
        }
        ActionRequest::Exec(args) => {
            state
                .agent
                .action(&host, id, &json!({"exec": args}), &rid, "exec")
                .await?
        }
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// The caller's token (or, with noauth, a stand-in trusting the URL's project).
async fn authenticate(
    state: &State,
    headers: &HeaderMap,
    project: &str,
) -> Result<Arc<TokenInfo>, ApiError> {
    let Some(keystone) = &state.keystone else {
        return Ok(Arc::new(TokenInfo {
            user_id: "noauth".into(),
            user_name: "noauth".into(),
            project_id: Some(project.to_owned()),
            system: false,
            roles: vec!["member".into(), "reader".into()],
            expires_at: std::time::SystemTime::now() + Duration::from_secs(3600),
            audit_id: "noauth".into(),
        }));
    };
    let token = headers
        .get("x-auth-token")
        .or_else(|| headers.get("x-storage-token"))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    keystone.validate(token).await
}

/// The compute host of an ACTIVE instance of `project`; `None` when it does not exist there.
async fn instance_host(
    state: &State,
    id: Uuid,
    project: &str,
    request_id: &str,
) -> Result<Option<String>, ApiError> {
    let Some(cloud) = &state.cloud else {
        return Ok(state
            .config
            .instances
            .get(&id)
            .filter(|i| i.project_id == project)
            .map(|i| i.host.clone()));
    };
    let Some(server) = cloud.server(id, request_id).await? else {
        return Ok(None);
    };
    if server.project_id != project {
        return Ok(None);
    }
    if server.status != "ACTIVE" {
        return Err(ApiError::Conflict(format!(
            "Cannot act on instance {id} while it is in status {}; it must be ACTIVE.",
            server.status
        )));
    }
    match server.host {
        Some(h) => Ok(Some(h)),
        None => Err(ApiError::Conflict(format!(
            "Instance {id} has no compute host yet."
        ))),
    }
}

/// noauth mode has no Neutron: `[api] static_network_data_template` names a file per
/// instance, else the document is empty.
fn static_network_data(state: &State, id: Uuid) -> Value {
    let empty = json!({"links": [], "networks": [], "services": []});
    let Some(template) = &state.config.static_network_data_template else {
        return empty;
    };
    let path = template.replace("{uuid}", &id.to_string());
    match std::fs::read(&path).map(|b| serde_json::from_slice::<Value>(&b)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::warn!(path, error = %e, "static network data is not JSON; sending none");
            empty
        }
        Err(_) => empty,
    }
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost:4224");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

fn version_object(base: &str) -> Value {
    json!({
        "id": "v1.0",
        "status": "CURRENT",
        "updated": UPDATED,
        "links": [
            {"rel": "self", "href": format!("{base}/v1/")},
            {"rel": "describedby", "type": "application/vnd.oai.openapi+json;version=3.0",
             "href": format!("{base}/v1/openapi.json")}
        ],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.guest-agent+json;version=1"}]
    })
}

fn versions(headers: &HeaderMap) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        &json!({"versions": [version_object(&base_url(headers))]}),
    )
}

fn version(headers: &HeaderMap) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        &json!({"version": version_object(&base_url(headers))}),
    )
}
