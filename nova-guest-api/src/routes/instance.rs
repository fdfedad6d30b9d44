//! The instance routes: `POST /v1/{project}/servers/{id}/actions`, the original
//! `POST /v1/{project}/networking/{id}/actions`, and `GET /v1/{project}/servers/{id}/guest`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body;
use nova_guest_contract::request::{InjectFile, SetPassword};
use nova_guest_contract::{Action, ActionReply, ActionRequest};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Ctx, REQUEST_ID, Resource, json_response, valid_request_id};
use crate::action::TenantRequest;
use crate::error::ApiError;
use crate::keystone::TokenInfo;
use crate::password;
use crate::policy::{Scope, Target, may_act_on};
use crate::state::State;

/// How long a request waits for a slot when `max_concurrent_requests` are in flight.
const QUEUE_WAIT: Duration = Duration::from_secs(2);

/// The checks in the order of the module docs of [`super`], then the agent.
pub(super) async fn handle<B>(
    state: &Arc<State>,
    req: Request<B>,
    ctx: &mut Ctx,
    target: Resource,
    project: &str,
    instance: &str,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    // Announced body size first: nothing is read, no token checked, for a body we would refuse.
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let most = state.config.max_request_body_bytes;
    if announced.is_some_and(|n| n > most) {
        return Err(ApiError::TooLarge(most));
    }

    let (token, _permit) = admit(state, req.headers(), project, ctx).await?;

    let policy = &state.config.policy;
    let forbidden = |t: Target| {
        ApiError::Forbidden(format!(
            "Policy doesn't allow {} to be performed.",
            t.name()
        ))
    };
    let action = match target {
        Resource::Guest => None,
        Resource::Action { networking_route } => {
            // Decide what the path and the caller's roles allow before reading a byte: the
            // networking route carries apply-networking only; only a caller who may inject
            // files may send a body past max_body_without_inject.
            let apply = Target::Action(Action::ApplyNetworking);
            if networking_route && !policy.allows(apply, &token.roles) {
                return Err(forbidden(apply));
            }
            if !networking_route
                && !Target::all()
                    .any(|t| matches!(t, Target::Action(_)) && policy.allows(t, &token.roles))
            {
                return Err(forbidden(Target::Action(Action::Ping)));
            }
            let inject = Target::Action(Action::InjectFile);
            let limit = if !networking_route && policy.allows(inject, &token.roles) {
                most
            } else {
                state.config.max_body_without_inject.min(most)
            };
            if announced.is_some_and(|n| n > limit) {
                return Err(ApiError::TooLarge(limit));
            }
            let body = read_body(state, req.into_body(), limit).await?;
            ctx.body_consumed = true;
            let action = TenantRequest::parse(&body)?;
            if networking_route && action != TenantRequest::ApplyNetworking {
                return Err(ApiError::BadRequest(
                    "This route only takes {\"apply-networking\": null}; other actions are at \
                     /v1/{project_id}/servers/{instance_id}/actions"
                        .into(),
                ));
            }
            Some(action)
        }
    };
    let policy_target = action.as_ref().map_or(Target::Guest, TenantRequest::target);
    if !policy.allows(policy_target, &token.roles) {
        return Err(forbidden(policy_target));
    }

    let not_found = || ApiError::NotFound(format!("Instance {instance} could not be found."));
    let id = Uuid::parse_str(instance).map_err(|_| not_found())?;
    let host = crate::apply::instance(state, id, project, &ctx.request_id, false)
        .await?
        .ok_or_else(not_found)?
        .host;

    let rid = ctx.request_id.clone();
    let Some(action) = action else {
        let guest = state.agent.guest(&host, id, &rid).await?;
        // The compute host's name is the operator's, not the tenant's.
        let mut guest = serde_json::to_value(guest).unwrap_or(Value::Null);
        if let Some(fields) = guest.as_object_mut() {
            fields.remove("host");
        }
        return Ok(json_response(StatusCode::OK, &json!({ "guest": guest })));
    };
    let body = match action {
        TenantRequest::ApplyNetworking => {
            reply_body(&crate::apply::networking(state, id, project, &host, &rid).await?)
        }
        TenantRequest::Ping => {
            state
                .agent
                .action(&host, id, &ActionRequest::Ping, &rid)
                .await?;
            json!({"ping": {"success": true}})
        }
        TenantRequest::SetPassword { username, password } => {
            let generated = password.is_none();
            let password = password.unwrap_or_else(password::generate);
            let request = ActionRequest::SetPassword(SetPassword {
                username: username.clone(),
                password: password.clone(),
                crypted: false,
            });
            let reply = match state.agent.action(&host, id, &request, &rid).await {
                Ok(r) => r,
                Err(ApiError::Uncertain(e)) if generated => {
                    // The guest agent received the command: the password may now be in effect,
                    // and this answer is the only place it can be read.
                    let message = format!(
                        "{} The new password may or may not be in effect: it is returned here \
                         in case it is; try it, or set another.",
                        e.message()
                    );
                    let body = json!({ e.kind(): {
                        "code": e.status().as_u16(),
                        "message": message,
                        "password": password,
                    }});
                    return Ok(json_response(e.status(), &body));
                }
                Err(e) => return Err(e),
            };
            let mut out = json!({"success": true});
            let used = match reply {
                ActionReply::SetPassword(r) => Some(r.username),
                _ => username,
            };
            if let Some(u) = used {
                out["username"] = json!(u);
            }
            if generated {
                out["password"] = json!(password);
            }
            json!({"set-password": out})
        }
        TenantRequest::InjectFile {
            path,
            contents,
            mode,
        } => {
            let request = ActionRequest::InjectFile(InjectFile {
                path,
                contents,
                mode,
            });
            reply_body(&state.agent.action(&host, id, &request, &rid).await?)
        }
        TenantRequest::Exec(args) => {
            // The tenant's body goes on as the contract's exec request, checked here with the
            // contract's own rules (its messages are the ones the agent would give).
            let request = ActionRequest::from_value(Action::Exec, Value::Object(args))
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            reply_body(&state.agent.action(&host, id, &request, &rid).await?)
        }
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// The token (401/503), the caller's request id when trusted, the project (403), then a
/// request slot (503 after a short wait): the checks every tenant route starts with. A
/// rejected token takes no slot.
pub(super) async fn admit(
    state: &State,
    headers: &HeaderMap,
    project: &str,
    ctx: &mut Ctx,
) -> Result<(Arc<TokenInfo>, tokio::sync::OwnedSemaphorePermit), ApiError> {
    let token = authenticate(state, headers, project).await?;
    ctx.audit_id = Some(token.audit_id.clone());
    if (token.has_role("service") || token.has_role("admin"))
        && let Some(incoming) = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok())
        && valid_request_id(incoming)
    {
        ctx.request_id = incoming.to_owned();
    }
    let scope = Scope {
        project_id: token.project_id.as_deref(),
        system: token.system,
        admin: token.has_role(crate::policy::ADMIN_ROLE),
    };
    if !may_act_on(scope, project, &state.config.admin_project_ids) {
        return Err(ApiError::Forbidden(format!(
            "The token is not scoped to project {project}."
        )));
    }
    let permit = match state.limiter.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => tokio::time::timeout(QUEUE_WAIT, state.limiter.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                ApiError::Unavailable("Too many requests in flight; retry later.".into())
            })?,
    };
    Ok((token, permit))
}

/// Reads a request body of at most `limit` bytes within `body_timeout` (413, 408, 400).
pub(super) async fn read_body<B>(state: &State, body: B, limit: u64) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let read = Limited::new(body, limit as usize).collect();
    Ok(tokio::time::timeout(state.config.body_timeout, read)
        .await
        .map_err(|_| ApiError::RequestTimeout)?
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::TooLarge(limit)
            } else {
                ApiError::BadRequest(format!("Cannot read the request body: {e}"))
            }
        })?
        .to_bytes())
}

/// An agent's reply as the tenant's body (the same shape: `{"<action>": result}`).
fn reply_body(reply: &ActionReply) -> Value {
    serde_json::to_value(reply).unwrap_or(Value::Null)
}

/// The caller's token (or, with noauth, a stand-in trusting the URL's project).
pub(super) async fn authenticate(
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
