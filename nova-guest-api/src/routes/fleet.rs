//! Fleet apply: `POST /v1/{project}/networking/actions` with `{"apply-networking":
//! {"instance_ids": [...]}}` or `{"apply-networking": {"network_id": "..."}}` (every ACTIVE
//! instance of the project with a compute port on that network, found through Neutron with
//! the project's own ports only). At most `[api] fleet_concurrency` instances at once, each
//! within `[api] fleet_instance_timeout`; 200 with every instance's result, in the order
//! given (Neutron's order for a network), each posted back as a result notification when the
//! consumer runs.

use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::instance::{admit, read_body};
use super::{Ctx, json_response};
use crate::apply;
use crate::cloud::PortsOn;
use crate::error::ApiError;
use crate::notifications::results::{ApplyResult, Trigger};
use crate::policy::Target;
use crate::state::{App, State};

/// The most instance ids one request may name.
pub(super) const MAX_INSTANCES: usize = 1000;

/// What a fleet apply is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fleet {
    /// These instances (as given: not necessarily uuids; duplicates dropped).
    Instances(Vec<String>),
    /// The project's instances with a port on this network.
    Network(String),
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::BadRequest(m.into())
}

fn parse(body: &[u8]) -> Result<Fleet, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("Malformed request body: {e}")))?;
    let Value::Object(mut outer) = value else {
        return Err(bad(
            "The request body must be {\"apply-networking\": {\"instance_ids\": [...]}} or \
             {\"apply-networking\": {\"network_id\": \"...\"}}",
        ));
    };
    let args = match outer.remove("apply-networking") {
        Some(Value::Object(m)) if outer.is_empty() => m,
        Some(_) if outer.is_empty() => {
            return Err(bad(
                "Invalid input for apply-networking: expected an object with instance_ids or \
                 network_id",
            ));
        }
        _ => {
            return Err(bad(
                "The request body must hold exactly one action: apply-networking",
            ));
        }
    };
    let one = |m: &Map<String, Value>| -> Result<Fleet, ApiError> {
        match (m.get("instance_ids"), m.get("network_id"), m.len()) {
            (Some(Value::Array(ids)), None, 1) => {
                if ids.is_empty() || ids.len() > MAX_INSTANCES {
                    return Err(bad(format!(
                        "Invalid input for apply-networking: instance_ids must hold 1 to \
                         {MAX_INSTANCES} ids"
                    )));
                }
                let mut out: Vec<String> = Vec::with_capacity(ids.len());
                for id in ids {
                    let Some(id) = id.as_str().filter(|s| !s.is_empty()) else {
                        return Err(bad(
                            "Invalid input for apply-networking: instance_ids must be \
                             non-empty strings",
                        ));
                    };
                    if !out.iter().any(|o| o == id) {
                        out.push(id.to_owned());
                    }
                }
                Ok(Fleet::Instances(out))
            }
            (None, Some(Value::String(n)), 1) if crate::cloud::safe_id(n) && n.len() <= 255 => {
                Ok(Fleet::Network(n.clone()))
            }
            (None, Some(_), 1) => Err(bad(
                "Invalid input for apply-networking: network_id must be a Neutron network id",
            )),
            _ => Err(bad(
                "Invalid input for apply-networking: give exactly one of instance_ids (a list) \
                 and network_id (a string)",
            )),
        }
    };
    one(&args)
}

/// One instance's result entry (`None`: skipped, for a network's instance that is not
/// ACTIVE).
async fn one(
    state: &State,
    instance: &str,
    project: &str,
    request_id: &str,
    skip_inactive: bool,
) -> Option<Result<Value, ApiError>> {
    let not_found = || ApiError::NotFound(format!("Instance {instance} could not be found."));
    let Ok(id) = Uuid::parse_str(instance) else {
        return Some(Err(not_found()));
    };
    let found = match apply::instance(state, id, project, request_id, false).await {
        Ok(Some(f)) => f,
        Ok(None) => return Some(Err(not_found())),
        Err(ApiError::Conflict(_)) if skip_inactive => return None,
        Err(e) => return Some(Err(e)),
    };
    Some(
        apply::networking(state, id, project, &found.host, request_id)
            .await
            .map(|r| apply::reply_value(&r)),
    )
}

pub(super) async fn handle<B>(
    app: &App,
    state: &Arc<State>,
    req: Request<B>,
    ctx: &mut Ctx,
    project: &str,
) -> Result<Response<Full<Bytes>>, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = state
        .config
        .max_body_without_inject
        .min(state.config.max_request_body_bytes);
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    let (token, _permit) = admit(state, req.headers(), project, ctx).await?;
    let target = Target::FleetApplyNetworking;
    if !state.config.policy.allows(target, &token.roles) {
        return Err(ApiError::Forbidden(format!(
            "Policy doesn't allow {} to be performed.",
            target.name()
        )));
    }
    let body = read_body(state, req.into_body(), limit).await?;
    ctx.body_consumed = true;
    let fleet = parse(&body)?;
    let rid = ctx.request_id.clone();
    let (instances, by_network) = match fleet {
        Fleet::Instances(ids) => (ids, false),
        Fleet::Network(network) => {
            let Some(cloud) = &state.cloud else {
                return Err(bad(
                    "network_id needs Neutron (auth_strategy = keystone); name the instances \
                     with instance_ids",
                ));
            };
            let ports = cloud
                .compute_ports(PortsOn::Network(&network), Some(project), &rid)
                .await?;
            let ids = ports.into_iter().map(|(id, _)| id.to_string()).collect();
            (ids, true)
        }
    };
    let permits = Arc::new(Semaphore::new(state.config.fleet_concurrency));
    let deadline = state.config.fleet_instance_timeout;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, instance) in instances.iter().enumerate() {
        let (state, permits, instance) = (state.clone(), permits.clone(), instance.clone());
        let (project, rid) = (project.to_owned(), rid.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let r =
                tokio::time::timeout(deadline, one(&state, &instance, &project, &rid, by_network))
                    .await
                    .unwrap_or_else(|_| {
                        Some(Err(ApiError::GatewayTimeout(format!(
                            "Instance {instance}: no result within {} s.",
                            deadline.as_secs_f64()
                        ))))
                    });
            (i, r)
        });
    }
    let mut outcomes: Vec<Option<Result<Value, ApiError>>> = vec![None; instances.len()];
    while let Some(done) = tasks.join_next().await {
        if let Ok((i, r)) = done {
            outcomes[i] = r;
        }
    }
    let (mut succeeded, mut failed) = (0usize, 0usize);
    let mut results = Vec::new();
    for (instance, outcome) in instances.iter().zip(outcomes) {
        let Some(outcome) = outcome else {
            continue;
        };
        if let (Some(handle), Ok(id)) = (app.notifications.get(), Uuid::parse_str(instance)) {
            let result = ApplyResult {
                instance_id: id,
                project_id: project.to_owned(),
                trigger: Trigger::Fleet,
                merged_events: 0,
                attempts: 1,
                outcome: outcome.clone(),
            };
            let handle = handle.clone();
            tokio::spawn(async move { handle.publish(&result).await });
        }
        results.push(match outcome {
            Ok(reply) => {
                succeeded += 1;
                json!({"instance_id": instance, "success": true,
                       "message": reply.get("message").cloned().unwrap_or(Value::Null)})
            }
            Err(e) => {
                failed += 1;
                tracing::info!(request_id = %rid, instance, error = %e, "fleet apply-networking failed");
                json!({"instance_id": instance, "success": false,
                       "error": {"code": e.status().as_u16(), "message": e.message()}})
            }
        });
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"apply-networking": {"succeeded": succeeded, "failed": failed, "results": results}}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match parse(body.as_bytes()) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn bodies() {
        assert_eq!(
            parse(br#"{"apply-networking": {"instance_ids": ["a", "b", "a"]}}"#).unwrap(),
            Fleet::Instances(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            parse(br#"{"apply-networking": {"network_id": "net-1"}}"#).unwrap(),
            Fleet::Network("net-1".into())
        );
        assert!(err("{").starts_with("Malformed"));
        assert!(err("[]").contains("must be"));
        assert!(err(r#"{"ping": null}"#).contains("exactly one action"));
        assert!(err(r#"{"apply-networking": null}"#).contains("expected an object"));
        assert!(err(r#"{"apply-networking": {}}"#).contains("exactly one of"));
        assert!(
            err(r#"{"apply-networking": {"instance_ids": [], "network_id": "n"}}"#)
                .contains("exactly one of")
        );
        assert!(err(r#"{"apply-networking": {"instance_ids": []}}"#).contains("1 to 1000"));
        assert!(err(r#"{"apply-networking": {"instance_ids": [5]}}"#).contains("strings"));
        assert!(err(r#"{"apply-networking": {"network_id": "../x"}}"#).contains("network id"));
    }
}
