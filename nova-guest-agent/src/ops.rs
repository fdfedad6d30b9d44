//! What each endpoint does with a guest: the actions, the guest summary and the listing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use qga_client::{ExecOutput, ExecRequest, ExitStatus, FileOptions};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::action::{ActionRequest, Exec, OutputEncoding};
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
}

/// `{name: value}`.
pub fn one(name: &str, value: Value) -> Value {
    let mut map = serde_json::Map::new();
    map.insert(name.to_owned(), value);
    Value::Object(map)
}

fn guest_err(e: qga_client::Error) -> ApiError {
    ApiError::from_guest(&e)
}

/// Runs one action and returns its result body (`{"<action>": ...}`).
///
/// # Errors
///
/// The guest's errors as [`ApiError`]s.
pub async fn run_action(
    app: &App,
    config: &Config,
    target: &Target,
    request: ActionRequest,
) -> Result<Value, ApiError> {
    let action = request.action();
    let started = Instant::now();
    let (_, permits) = app.snapshot();
    let result = app
        .guests
        .with_guest(
            config,
            &permits,
            &target.path,
            config.command_timeout,
            async |guest| match request {
                ActionRequest::Ping => {
                    guest.client.ping().await.map_err(guest_err)?;
                    Ok(json!({"success": true}))
                }
                ActionRequest::SetPassword(body) => {
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
                        .map_err(guest_err)?;
                    Ok(json!({"success": true, "username": username}))
                }
                ActionRequest::InjectFile(file) => {
                    let options = FileOptions::default().call_timeout(guest.remaining());
                    let summary = guest
                        .client
                        .write_file_with(&file.path, &file.contents, &options, &mut |_, _| {})
                        .await
                        .map_err(guest_err)?;
                    Ok(json!({"size": summary.size, "sha256": summary.sha256_hex()}))
                }
                ActionRequest::Exec(body) => exec(guest, config, body).await,
                ActionRequest::ApplyNetworking { network_data } => {
                    networking::apply(guest, config, &network_data).await
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
    result.map(|v| one(action.name(), v))
}

async fn exec(guest: &mut Guest<'_>, config: &Config, body: Exec) -> Result<Value, ApiError> {
    let timeout = body
        .timeout()?
        .unwrap_or(config.command_timeout)
        .min(guest.remaining());
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
    Ok(exec_message(&out, body.output))
}

/// The result of a guest program in the original nova-guest's shape: `exited`, `exitcode`,
/// `signal` (0 when not killed), the truncation flags and `out-data`/`err-data` as text.
/// A program killed by a signal has `exitcode: null`.
pub fn exec_message(out: &ExecOutput, encoding: OutputEncoding) -> Value {
    let (exitcode, signal) = match out.status {
        ExitStatus::Code(c) => (json!(c), json!(0)),
        ExitStatus::Signal(s) => (Value::Null, json!(s)),
        ExitStatus::Unknown => (Value::Null, Value::Null),
    };
    let data = |bytes: &[u8]| match encoding {
        OutputEncoding::Text => String::from_utf8_lossy(bytes).into_owned(),
        OutputEncoding::Base64 => B64.encode(bytes),
    };
    json!({
        "exited": true,
        "exitcode": exitcode,
        "signal": signal,
        "out-truncated": out.stdout_truncated,
        "err-truncated": out.stderr_truncated,
        "out-data": data(&out.stdout),
        "err-data": data(&out.stderr),
    })
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
pub async fn guest_summary(app: &App, config: &Config, target: &Target) -> Result<Value, ApiError> {
    let started = Instant::now();
    let (_, permits) = app.snapshot();
    let result = app
        .guests
        .with_guest(
            config,
            &permits,
            &target.path,
            config.command_timeout,
            async |guest| {
                let info = guest.client.info().await.map_err(guest_err)?;
                let os = guest.os().await.map_err(guest_err)?;
                let optional = |r: Result<Value, qga_client::Error>| match r {
                    Ok(v) => Ok(v),
                    Err(e) if e.agent_error().is_some() => Ok(Value::Null),
                    Err(e) => Err(guest_err(e)),
                };
                let hostname = optional(guest.client.hostname().await.map(Value::String))?;
                let interfaces = optional(
                    guest
                        .client
                        .network_interfaces()
                        .await
                        .map(|i| serde_json::to_value(i).unwrap_or(Value::Null)),
                )?;
                let mut commands: Vec<&str> = info
                    .supported_commands
                    .iter()
                    .filter(|c| c.enabled)
                    .map(|c| c.name.as_str())
                    .collect();
                commands.sort_unstable();
                Ok(json!({
                    "reachable": true,
                    "agent": {"version": info.version, "commands": commands},
                    "os": os.info.map(|i| serde_json::to_value(i).unwrap_or(Value::Null)),
                    "windows": os.windows,
                    "hostname": hostname,
                    "interfaces": interfaces,
                }))
            },
        )
        .await;
    app.metrics.guest_latency("guest", started.elapsed());
    let mut guest = match result {
        Ok(v) => v,
        Err(e) if is_unreachable(&e) => json!({
            "reachable": false,
            "error": {"code": e.code.as_str(), "message": e.message},
        }),
        Err(e) => return Err(e),
    };
    if let Some(obj) = guest.as_object_mut() {
        obj.insert("instance".into(), json!(target.uuid));
        obj.insert("host".into(), json!(config.host));
        let actions: Vec<&str> = config.enabled_actions.iter().map(|a| a.name()).collect();
        obj.insert("actions".into(), json!(actions));
    }
    Ok(one("guest", guest))
}

/// `GET /v1/instances`: every socket that fits the template, each pinged (bounded by
/// `list_timeout`) in parallel.
pub async fn list(app: Arc<App>, config: Arc<Config>) -> Value {
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
                    &f.path,
                    config.list_timeout,
                    async |guest| guest.client.ping().await.map_err(guest_err),
                )
                .await;
            let mut entry = json!({
                "uuid": f.uuid,
                "name": f.name,
                "socket": f.path,
                "reachable": result.is_ok(),
            });
            if let (Err(e), Some(obj)) = (result, entry.as_object_mut()) {
                obj.insert(
                    "error".into(),
                    json!({"code": e.code.as_str(), "message": e.message}),
                );
            }
            (index, entry)
        });
    }
    let mut entries = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Ok(e) = done {
            entries.push(e);
        }
    }
    entries.sort_by_key(|(i, _)| *i);
    json!({
        "host": config.host,
        "instances": entries.into_iter().map(|(_, e)| e).collect::<Vec<_>>(),
    })
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
