//! The `qmp` commands: raw requests, run state and events.

use std::cell::Cell;
use std::path::PathBuf;
use std::time::Duration;

use qga_client::QmpClient;
use qga_proto::RawCommand;
use qga_proto::qmp::{KnownEvent, QueryStatus, TimedEvent};
use serde_json::{Value, json};

use crate::DEFAULT_TIMEOUT;
use crate::cli::{QmpAction, exit};
use crate::error::CliError;
use crate::output::{self, encode_failed};

/// `QmpClient` has no deadline handle: a backstop bounds connect plus call, and fires this
/// much after the deadline so that the client's own timeout errors win when both are due.
const BACKSTOP_SLACK: Duration = Duration::from_millis(50);

/// Runs a `qmp` command; returns the exit code.
pub(crate) async fn run(
    action: QmpAction,
    socket: PathBuf,
    timeout: Option<Duration>,
    json: bool,
) -> Result<u8, CliError> {
    let connect_timeout = timeout.unwrap_or(DEFAULT_TIMEOUT);
    let qmp_error = |error| CliError::Qmp {
        socket: socket.clone(),
        error,
    };
    match action {
        QmpAction::Raw { request: text } => {
            let request = RawCommand::from_request_json(&text)
                .map_err(|e| CliError::Usage(format!("bad request: {e}")))?;
            let value = bounded(&socket, &request.name, connect_timeout, async {
                let client = QmpClient::connect(&socket, connect_timeout)
                    .await
                    .map_err(qmp_error)?;
                client.call_raw(&request).await.map_err(qmp_error)
            })
            .await?;
            crate::agent::print_value(json, &value)?;
        }
        QmpAction::Status => {
            let status = bounded(&socket, "query-status", connect_timeout, async {
                let client = QmpClient::connect(&socket, connect_timeout)
                    .await
                    .map_err(qmp_error)?;
                client.call(&QueryStatus).await.map_err(qmp_error)
            })
            .await?;
            if json {
                output::json(&serde_json::to_value(&status).map_err(encode_failed)?)?;
            } else {
                output::line(status.status.as_str())?;
            }
        }
        QmpAction::Events { count } => {
            let connected = Cell::new(false);
            let seen = Cell::new(0u64);
            let work = async {
                let client = QmpClient::connect(&socket, connect_timeout)
                    .await
                    .map_err(qmp_error)?;
                // Subscribed right after negotiation, with no await in between: no event
                // delivered after qmp_capabilities can be missed.
                let mut events = client.subscribe();
                connected.set(true);
                tracing::info!(socket = %socket.display(), "listening for QMP events");
                while count.is_none_or(|n| seen.get() < n) {
                    let Some(event) = events.next().await else {
                        if count.is_some() {
                            return Err(qmp_error(qga_client::Error::Closed));
                        }
                        break;
                    };
                    output::json(&event_json(&event))?;
                    seen.set(seen.get() + 1);
                }
                Ok(())
            };
            // Without --timeout only connecting is bounded: events may take any time.
            let Some(t) = timeout else {
                work.await?;
                return Ok(0);
            };
            match tokio::time::timeout(t + BACKSTOP_SLACK, work).await {
                Ok(result) => result?,
                Err(_) if connected.get() => {
                    let wanted = count.map_or_else(String::new, |n| format!(" of {n}"));
                    return Err(CliError::Other {
                        code: exit::TIMEOUT,
                        message: format!(
                            "timed out after {t:?} waiting for QMP events ({}{wanted} came)",
                            seen.get()
                        ),
                    });
                }
                Err(_) => {
                    return Err(CliError::qmp_timeout(socket, "the QMP handshake", t));
                }
            }
        }
    }
    Ok(0)
}

/// Runs `work` under the whole deadline.
async fn bounded<T>(
    socket: &std::path::Path,
    command: &str,
    timeout: Duration,
    work: impl Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    match tokio::time::timeout(timeout + BACKSTOP_SLACK, work).await {
        Ok(result) => result,
        Err(_) => Err(CliError::qmp_timeout(socket.to_owned(), command, timeout)),
    }
}

/// The event as QEMU sent it: `{"event", "data"?, "timestamp"}`.
///
/// `TimedEvent` keeps the raw payload only for events it does not type, so the payloads of
/// the typed ones are rebuilt from their fields.
fn event_json(event: &TimedEvent) -> Value {
    let data = match &event.event {
        KnownEvent::Shutdown(info) | KnownEvent::Reset(info) => {
            Some(json!({ "guest": info.guest, "reason": info.reason.as_str() }))
        }
        KnownEvent::VserportChange(change) => Some(json!({ "id": change.id, "open": change.open })),
        KnownEvent::Other(raw) => raw.data.clone(),
        _ => None,
    };
    let mut out = json!({
        "event": event.name,
        "timestamp": {
            "seconds": event.timestamp.seconds,
            "microseconds": event.timestamp.microseconds,
        },
    });
    if let (Some(data), Some(map)) = (data, out.as_object_mut()) {
        map.insert("data".into(), data);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_keep_their_payload() {
        let raw: qga_proto::message::Event = serde_json::from_str(
            r#"{"event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"},
                "timestamp": {"seconds": 1, "microseconds": 2}}"#,
        )
        .unwrap();
        let v = event_json(&TimedEvent::from(raw));
        assert_eq!(v["event"], "SHUTDOWN");
        assert_eq!(v["data"]["reason"], "host-qmp-quit");
        assert_eq!(v["timestamp"]["microseconds"], 2);
        let stop: qga_proto::message::Event = serde_json::from_str(
            r#"{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}"#,
        )
        .unwrap();
        let v = event_json(&TimedEvent::from(stop));
        assert_eq!(v["event"], "STOP");
        assert!(v.get("data").is_none());
    }
}
