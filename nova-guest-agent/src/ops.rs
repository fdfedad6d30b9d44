//! What each endpoint does with a guest: the actions, the guest summary and the listing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use nova_guest_contract::ActionReply;
use nova_guest_contract::guest::{
    AgentInfo, ErrorSummary, GuestReply, GuestState, GuestSummary, InstanceEntry, InstanceList,
    ReachableGuest, UnreachableGuest,
};
use nova_guest_contract::reply::{ExecResult, PingResult, SetPasswordResult};
use nova_guest_contract::request::Exec;
use qga_client::ExecRequest;
use serde_json::Value;
use tokio::time::Instant;

use crate::action::Job;
use crate::app::App;
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::guests::Guest;
use crate::networking;

/// An instance addressed by a request.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its uuid (validated).
    pub uuid: String,
    /// Its libvirt domain name, when given (validated).
    pub name: Option<String>,
    /// Its agent socket.
    pub path: PathBuf,
    /// Its QMP socket, for presence (`qmp_socket_path_template`).
    pub qmp: Option<PathBuf>,
}

fn guest_err(e: qga_client::Error) -> ApiError {
    ApiError::from_guest(&e)
}

/// Runs one action and returns its result.
///
/// # Errors
///
/// The guest's errors as [`ApiError`]s.
pub async fn run_action(
    app: &App,
    config: &Config,
    target: &Target,
    request: Job,
) -> Result<ActionReply, ApiError> {
    let action = request.action();
    let started = Instant::now();
    let (_, permits) = app.snapshot();
    let result = app
        .guests
        .with_guest(
            config,
            &permits,
            target,
            config.command_timeout,
            async |guest| match request {
                Job::Ping => {
                    guest.client.ping().await.map_err(guest_err)?;
                    Ok(ActionReply::Ping(PingResult { success: true }))
                }
                Job::SetPassword(body) => {
                    let username = match body.username {
                        Some(u) => u,
                        None if guest.os().await.map_err(guest_err)?.windows => {
                            "Administrator".to_owned()
                        }
                        None => "root".to_owned(),
                    };
                    guest
                        .client
                        .set_user_password(&username, body.password.as_bytes(), body.crypted)
                        .await
                        .map_err(|e| {
                            let error = guest_err(e);
                            // A timeout or a broken connection after the command went out:
                            // the password may have changed. (Counted as such whenever it
                            // may have gone out.)
                            if is_unreachable(&error) {
                                error.ambiguous()
                            } else {
                                error
                            }
                        })?;
                    Ok(ActionReply::SetPassword(SetPasswordResult {
                        success: true,
                        username,
                    }))
                }
                Job::InjectFile {
                    path,
                    contents,
                    mode,
                } => crate::inject::write(guest, &path, &contents, mode.as_deref())
                    .await
                    .map(ActionReply::InjectFile),
                Job::Exec(body) => exec(guest, config, body).await.map(ActionReply::Exec),
                Job::ApplyNetworking { network_data } => {
                    networking::apply(guest, config, &network_data)
                        .await
                        .map(ActionReply::ApplyNetworking)
                }
            },
        )
        .await;
    app.metrics.guest_latency(action.name(), started.elapsed());
    app.metrics.action(
        action.name(),
        match &result {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        },
    );
    result
}

async fn exec(guest: &mut Guest<'_>, config: &Config, body: Exec) -> Result<ExecResult, ApiError> {
    let timeout = body.timeout()?.unwrap_or(config.command_timeout);
    let mut request = ExecRequest::new(body.path)
        .args(body.args)
        .capture(body.capture)
        .timeout(timeout);
    if let Some(input) = body.input {
        let bytes = B64
            .decode(input.as_bytes())
            .map_err(|_| ApiError::bad_request("exec: input must be standard base64"))?;
        request = request.stdin(bytes);
    }
    for entry in body.env.unwrap_or_default() {
        let Some((key, value)) = entry.split_once('=') else {
            return Err(ApiError::bad_request("exec: env entries are KEY=value"));
        };
        request = request.env(key, value);
    }
    let out = guest.client.exec(request).await.map_err(guest_err)?;
    Ok(crate::exec::result(&out, body.output))
}

/// Errors that mean "the agent cannot be reached now" rather than "the request is wrong".
fn is_unreachable(e: &ApiError) -> bool {
    matches!(
        e.code,
        ErrorCode::GuestTimeout
            | ErrorCode::GuestUnavailable
            | ErrorCode::GuestBusy
            | ErrorCode::GuestProtocolError
            | ErrorCode::Overloaded
    )
}

/// `GET /v1/instances/{uuid}/guest`: reachable or not, agent version and enabled commands,
/// OS, hostname, interfaces and the actions this host allows. An agent that cannot be
/// reached gives `reachable: false` with the error (status 200); a missing socket is 404.
///
/// # Errors
///
/// 404 when the instance has no socket here.
pub async fn guest_summary(
    app: &App,
    config: &Config,
    target: &Target,
) -> Result<GuestReply, ApiError> {
    let started = Instant::now();
    let (_, permits) = app.snapshot();
    let result = app
        .guests
        .with_guest(
            config,
            &permits,
            target,
            config.command_timeout,
            async |guest| {
                let info = guest.client.info().await.map_err(guest_err)?;
                let os = guest.os().await.map_err(guest_err)?;
                let optional = |r: Result<Value, qga_client::Error>| match r {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.agent_error().is_some() => Ok(None),
                    Err(e) => Err(guest_err(e)),
                };
                let hostname = optional(guest.client.hostname().await.map(Value::String))?
                    .and_then(|v| v.as_str().map(str::to_owned));
                let interfaces = optional(
                    guest
                        .client
                        .network_interfaces()
                        .await
                        .map(|i| serde_json::to_value(i).unwrap_or(Value::Null)),
                )?;
                let mut commands: Vec<String> = info
                    .supported_commands
                    .iter()
                    .filter(|c| c.enabled)
                    .map(|c| c.name.clone())
                    .collect();
                commands.sort_unstable();
                Ok(GuestState::Reachable(ReachableGuest {
                    reachable: true,
                    agent: AgentInfo {
                        version: info.version,
                        commands,
                    },
                    os: os
                        .info
                        .map(|i| serde_json::to_value(i).unwrap_or(Value::Null)),
                    windows: os.windows,
                    hostname,
                    interfaces,
                }))
            },
        )
        .await;
    app.metrics.guest_latency("guest", started.elapsed());
    let state = match result {
        Ok(state) => state,
        Err(e) if is_unreachable(&e) => GuestState::Unreachable(UnreachableGuest {
            reachable: false,
            error: ErrorSummary {
                code: e.code,
                message: e.message,
            },
        }),
        Err(e) => return Err(e),
    };
    Ok(GuestReply {
        guest: GuestSummary {
            instance: target.uuid.clone(),
            host: config.host.clone(),
            actions: config.enabled_actions.iter().copied().collect(),
            state,
        },
    })
}

/// `GET /v1/instances`: every socket that fits the template (with `transport = libvirt`,
/// every running domain), each pinged (bounded by `list_timeout`) in parallel.
///
/// # Errors
///
/// With libvirt, when libvirt cannot be reached or does not list its domains in time.
pub async fn list(app: Arc<App>, config: Arc<Config>) -> Result<InstanceList, ApiError> {
    if config.transport == crate::config::TransportKind::Libvirt {
        return list_libvirt(app, config).await;
    }
    let found = tokio::task::spawn_blocking({
        let config = config.clone();
        move || config.socket_path_template.discover()
    })
    .await
    .unwrap_or_default();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, f) in found.into_iter().enumerate() {
        let app = app.clone();
        let config = config.clone();
        tasks.spawn(async move {
            let (_, permits) = app.snapshot();
            let result = app
                .guests
                .with_guest(
                    &config,
                    &permits,
                    &Target {
                        uuid: f.uuid.clone().unwrap_or_default(),
                        name: f.name.clone(),
                        qmp: config.qmp_socket_path_template.as_ref().and_then(|t| {
                            f.uuid.as_deref().and_then(|u| t.path(u, f.name.as_deref()))
                        }),
                        path: f.path.clone(),
                    },
                    config.list_timeout,
                    async |guest| guest.client.ping().await.map_err(guest_err),
                )
                .await;
            let entry = InstanceEntry {
                uuid: f.uuid,
                name: f.name,
                socket: f.path.display().to_string(),
                reachable: result.is_ok(),
                error: result.err().map(|e| ErrorSummary {
                    code: e.code,
                    message: e.message,
                }),
                transport: Some("socket".into()),
                state: None,
                agent: None,
            };
            (index, entry)
        });
    }
    Ok(listing(tasks, &config).await)
}

/// The entries the probes in `tasks` made, in the order they were started (a probe that
/// panicked is left out).
async fn listing(
    mut tasks: tokio::task::JoinSet<(usize, InstanceEntry)>,
    config: &Config,
) -> InstanceList {
    let mut entries = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(e) = done {
            entries.push(e);
        }
    }
    entries.sort_by_key(|(i, _)| *i);
    InstanceList {
        host: config.host.clone(),
        instances: entries.into_iter().map(|(_, e)| e).collect(),
    }
}

/// The listing through libvirt: its running domains with libvirt's word on their agents; the
/// agents that may be up are pinged (a ping over libvirt does not taint the domain), those
/// known to be down are not.
async fn list_libvirt(app: Arc<App>, config: Arc<Config>) -> Result<InstanceList, ApiError> {
    let (socket, domains) =
        crate::libvirt::running(&app.guests.libvirt, &config, config.list_timeout).await?;
    let socket = socket.display().to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, d) in domains.into_iter().enumerate() {
        let app = app.clone();
        let config = config.clone();
        let socket = socket.clone();
        tasks.spawn(async move {
            let result = if d.agent == qga_client::libvirt::AgentState::Disconnected {
                Err(ApiError::new(
                    ErrorCode::GuestUnavailable,
                    "the guest agent is not connected (libvirt)",
                ))
            } else {
                let target = Target {
                    path: crate::libvirt::slot_key(&d.uuid),
                    uuid: d.uuid.clone(),
                    name: Some(d.name.clone()),
                    qmp: None,
                };
                let (_, permits) = app.snapshot();
                app.guests
                    .with_guest(&config, &permits, &target, config.list_timeout, async |g| {
                        g.client.ping().await.map_err(guest_err)
                    })
                    .await
            };
            let entry = InstanceEntry {
                uuid: Some(d.uuid),
                name: Some(d.name),
                socket,
                reachable: result.is_ok(),
                error: result.err().map(|e| ErrorSummary {
                    code: e.code,
                    message: e.message,
                }),
                transport: Some("libvirt".into()),
                state: Some(d.state),
                agent: Some(d.agent.as_str().to_owned()),
            };
            (index, entry)
        });
    }
    Ok(listing(tasks, &config).await)
}

/// Waits `period` between sweeps of idle guest connections, until cancelled.
pub async fn sweep_idle(
    app: Arc<App>,
    period: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let (config, _) = app.snapshot();
        let dropped = app.guests.sweep(config.idle_connection_timeout);
        if dropped > 0 {
            tracing::debug!(dropped, "closed idle guest connections");
        }
    }
}
