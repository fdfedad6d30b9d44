//! apply-networking on one instance, shared by the REST routes, fleet applies and the
//! notification consumer: the instance looked up as the tenant's request would look it up
//! (Nova, or the static `[instances]` map with noauth), its network_data.json rendered from
//! its own compute ports, sent through its host's agent.

use std::collections::HashMap;

use nova_guest_contract::request::ApplyNetworking;
use nova_guest_contract::{ActionReply, ActionRequest};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::State;

/// An instance found where the caller may act.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its compute host.
    pub host: String,
    /// Its Nova tags (with `tags` asked for; empty otherwise and with noauth).
    pub tags: Vec<String>,
}

/// The compute host of an ACTIVE instance of `project`; `None` when it does not exist there
/// (another project's instance is not found, as in Nova). With `tags`, Nova is asked at the
/// microversion that shows the server's tags.
///
/// # Errors
///
/// 409 when it is not ACTIVE or has no host yet; 503 when Keystone or Nova is unavailable.
pub async fn instance(
    state: &State,
    id: Uuid,
    project: &str,
    request_id: &str,
    tags: bool,
) -> Result<Option<Found>, ApiError> {
    let Some(cloud) = &state.cloud else {
        return Ok(state
            .config
            .instances
            .get(&id)
            .filter(|i| i.project_id == project)
            .map(|i| Found {
                host: i.host.clone(),
                tags: Vec::new(),
            }));
    };
    let server = if tags {
        cloud.server_with_tags(id, request_id).await?
    } else {
        cloud.server(id, request_id).await?
    };
    let Some(server) = server else {
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
        Some(host) => Ok(Some(Found {
            host,
            tags: server.tags,
        })),
        None => Err(ApiError::Conflict(format!(
            "Instance {id} has no compute host yet."
        ))),
    }
}

/// Renders the instance's network_data.json and has its host's agent apply it.
///
/// # Errors
///
/// Neutron's (503) and the agent's errors.
pub async fn networking(
    state: &State,
    id: Uuid,
    project: &str,
    host: &str,
    request_id: &str,
) -> Result<ActionReply, ApiError> {
    let network_data = match &state.cloud {
        Some(cloud) => cloud.network_data(id, project, request_id).await?,
        None => static_network_data(state, id),
    };
    let request = ActionRequest::ApplyNetworking(ApplyNetworking { network_data });
    state.agent.action(host, id, &request, request_id).await
}

/// noauth mode has no Neutron: `[api] static_network_data_template` names a file per
/// instance, else the document is empty.
pub fn static_network_data(state: &State, id: Uuid) -> Value {
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

/// The agent's result of an apply as a JSON value (`{"success": true, "message": {...}}`).
pub fn reply_value(reply: &ActionReply) -> Value {
    let v = serde_json::to_value(reply).unwrap_or(Value::Null);
    v.get("apply-networking").cloned().unwrap_or(v)
}

/// Whether an error is worth retrying: the agent or a cloud service unreachable, the guest
/// agent not connected or busy, too many requests waiting, the guest silent. Anything else
/// (the guest's command failed, the action is disabled, the instance is gone) will not
/// change by waiting.
pub fn retryable(e: &ApiError) -> bool {
    match e {
        ApiError::Uncertain(inner) => retryable(inner),
        ApiError::Unavailable(_)
        | ApiError::Conflict(_)
        | ApiError::TooManyRequests(_)
        | ApiError::GatewayTimeout(_) => true,
        _ => false,
    }
}

/// Instances of the static `[instances]` map, by id (noauth).
pub fn mapped(state: &State) -> HashMap<Uuid, String> {
    state
        .config
        .instances
        .iter()
        .map(|(id, i)| (*id, i.project_id.clone()))
        .collect()
}
