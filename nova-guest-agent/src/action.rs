//! The actions of `POST /v1/instances/{uuid}/actions`, one per body, Nova style.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// An action name, as in the request body and in `[agent] enabled_actions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// `apply-networking`.
    ApplyNetworking,
    /// `set-password`.
    SetPassword,
    /// `inject-file`.
    InjectFile,
    /// `ping`.
    Ping,
    /// `exec` (disabled by default).
    Exec,
}

impl Action {
    /// Every action.
    pub const ALL: [Self; 5] = [
        Self::ApplyNetworking,
        Self::SetPassword,
        Self::InjectFile,
        Self::Ping,
        Self::Exec,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ApplyNetworking => "apply-networking",
            Self::SetPassword => "set-password",
            Self::InjectFile => "inject-file",
            Self::Ping => "ping",
            Self::Exec => "exec",
        }
    }

    /// The action with this wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Enabled unless the configuration says otherwise: everything but `exec`.
    pub fn default_enabled() -> BTreeSet<Self> {
        Self::ALL.into_iter().filter(|a| *a != Self::Exec).collect()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed action request.
pub enum ActionRequest {
    /// Apply network_data.json.
    ApplyNetworking {
        /// The network_data.json document.
        network_data: Value,
    },
    /// Set a user's password.
    SetPassword(SetPassword),
    /// Write a file.
    InjectFile(InjectFile),
    /// Ping the agent.
    Ping,
    /// Run a program.
    Exec(Exec),
}

impl ActionRequest {
    /// Which action this is.
    pub fn action(&self) -> Action {
        match self {
            Self::ApplyNetworking { .. } => Action::ApplyNetworking,
            Self::SetPassword(_) => Action::SetPassword,
            Self::InjectFile(_) => Action::InjectFile,
            Self::Ping => Action::Ping,
            Self::Exec(_) => Action::Exec,
        }
    }
}

impl fmt::Debug for ActionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies carry passwords, file contents and exec arguments: only the action is shown.
        write!(f, "ActionRequest({})", self.action())
    }
}

/// `{"set-password": {"username"?: .., "password": .., "crypted"?: false}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The user; default root on Linux, Administrator on Windows.
    #[serde(default)]
    pub username: Option<String>,
    /// The password (or a crypt(3) hash with `crypted`).
    pub password: String,
    /// The password is already hashed.
    #[serde(default)]
    pub crypted: bool,
}

/// `{"inject-file": {"path": .., "contents": "<base64>"}}`.
pub struct InjectFile {
    /// The guest path.
    pub path: String,
    /// The decoded contents.
    pub contents: Vec<u8>,
}

/// `{"exec": {"path": .., "args"?: [..], "env"?: [..], "input"?: "<base64>", "capture"?: true,
/// "timeout"?: seconds, "output"?: "text"|"base64"}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// The program (searched in the guest agent's PATH).
    pub path: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// `KEY=value` entries; when given they replace the whole environment.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Base64 bytes for stdin.
    #[serde(default)]
    pub input: Option<String>,
    /// Capture stdout and stderr (default true).
    #[serde(default = "yes")]
    pub capture: bool,
    /// Seconds to wait for the program; at most `command_timeout`.
    #[serde(default)]
    pub timeout: Option<f64>,
    /// How out-data and err-data are returned.
    #[serde(default)]
    pub output: OutputEncoding,
}

/// How captured output is returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputEncoding {
    /// UTF-8 text (invalid sequences replaced).
    #[default]
    Text,
    /// Base64 of the raw bytes.
    Base64,
}

/// serde's message without the offending value ("invalid type: string \"hunter2\", expected
/// a boolean" would echo a secret).
fn redact(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match (text.starts_with("invalid "), text.find(", expected ")) {
        (true, Some(at)) => format!(
            "a member has the wrong type or value; expected {}",
            &text[at + 11..]
        ),
        _ => text,
    }
}

fn yes() -> bool {
    true
}

impl Exec {
    /// The timeout asked for, if valid.
    pub fn timeout(&self) -> Result<Option<Duration>, ApiError> {
        match self.timeout {
            None => Ok(None),
            Some(t) if t.is_finite() && t > 0.0 => Ok(Duration::try_from_secs_f64(t).ok()),
            Some(_) => Err(ApiError::bad_request(
                "exec: timeout must be a positive number",
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectFileBody {
    path: String,
    contents: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyNetworkingBody {
    network_data: Value,
}

/// Parses a request body: a JSON object with exactly one member naming the action.
///
/// # Errors
///
/// 400 with a message for malformed JSON, zero or several members, an unknown action or
/// wrong member types; the message never repeats values from the body.
pub fn parse(body: &[u8], max_file_size: usize) -> Result<ActionRequest, ApiError> {
    let object: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a JSON object: {e}")))?;
    if object.len() != 1 {
        return Err(ApiError::bad_request(format!(
            "the body must have exactly one member naming the action (one of {}); it has {}",
            Action::ALL.map(Action::name).join(", "),
            object.len()
        )));
    }
    let Some((name, value)) = object.into_iter().next() else {
        return Err(ApiError::bad_request("empty body"));
    };
    let Some(action) = Action::from_name(&name) else {
        return Err(ApiError::bad_request(format!(
            "unknown action {name:?} (known: {})",
            Action::ALL.map(Action::name).join(", ")
        )));
    };
    let shape = |e: serde_json::Error| ApiError::bad_request(format!("{name}: {}", redact(&e)));
    Ok(match action {
        Action::Ping => match value {
            Value::Null => ActionRequest::Ping,
            Value::Object(o) if o.is_empty() => ActionRequest::Ping,
            _ => return Err(ApiError::bad_request("ping takes null or {}")),
        },
        Action::ApplyNetworking => {
            let body: ApplyNetworkingBody = serde_json::from_value(value).map_err(shape)?;
            if !body.network_data.is_object() {
                return Err(ApiError::bad_request(
                    "apply-networking: network_data must be a network_data.json object",
                ));
            }
            ActionRequest::ApplyNetworking {
                network_data: body.network_data,
            }
        }
        Action::SetPassword => {
            let body: SetPassword = serde_json::from_value(value).map_err(shape)?;
            if body.password.is_empty() {
                return Err(ApiError::bad_request("set-password: password is empty"));
            }
            ActionRequest::SetPassword(body)
        }
        Action::InjectFile => {
            let body: InjectFileBody = serde_json::from_value(value).map_err(shape)?;
            if body.path.is_empty() || body.path.contains('\0') {
                return Err(ApiError::bad_request(
                    "inject-file: path must be a guest path",
                ));
            }
            if body.contents.len() / 4 * 3 > max_file_size + 3 {
                return Err(ApiError::too_large(format!(
                    "inject-file: contents exceed max_file_size ({max_file_size} bytes)"
                )));
            }
            let contents = B64.decode(body.contents.as_bytes()).map_err(|_| {
                ApiError::bad_request("inject-file: contents must be standard base64")
            })?;
            if contents.len() > max_file_size {
                return Err(ApiError::too_large(format!(
                    "inject-file: contents exceed max_file_size ({max_file_size} bytes)"
                )));
            }
            ActionRequest::InjectFile(InjectFile {
                path: body.path,
                contents,
            })
        }
        Action::Exec => {
            let body: Exec = serde_json::from_value(value).map_err(shape)?;
            if body.path.is_empty() {
                return Err(ApiError::bad_request("exec: path is empty"));
            }
            body.timeout()?;
            ActionRequest::Exec(body)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_action() {
        assert!(matches!(
            parse(br#"{"ping": null}"#, 10),
            Ok(ActionRequest::Ping)
        ));
        let r = parse(
            br#"{"inject-file": {"path": "/x", "contents": "aGk="}}"#,
            10,
        )
        .unwrap();
        let ActionRequest::InjectFile(f) = r else {
            panic!()
        };
        assert_eq!(f.contents, b"hi");
        let r = parse(br#"{"set-password": {"password": "pw"}}"#, 10).unwrap();
        assert_eq!(format!("{r:?}"), "ActionRequest(set-password)");
        let r = parse(
            br#"{"exec": {"path": "/bin/echo", "args": ["a"], "output": "base64"}}"#,
            10,
        )
        .unwrap();
        assert_eq!(r.action(), Action::Exec);
        let r = parse(
            br#"{"apply-networking": {"network_data": {"links": []}}}"#,
            10,
        )
        .unwrap();
        assert_eq!(r.action(), Action::ApplyNetworking);
    }

    #[test]
    fn rejects_bad_bodies_without_echoing_values() {
        for body in [
            &br#"[]"#[..],
            br#"{}"#,
            br#"{"ping": null, "exec": {}}"#,
            br#"{"reboot": null}"#,
            br#"{"set-password": {"password": 5}}"#,
            br#"{"set-password": {"password": "hunter2", "extra": 1}}"#,
            br#"{"set-password": {"password": "hunter2", "crypted": "hunter2"}}"#,
            br#"{"inject-file": {"path": "/x", "contents": "***"}}"#,
            br#"{"apply-networking": null}"#,
            br#"{"exec": {"path": "/bin/true", "timeout": -1}}"#,
        ] {
            let e = parse(body, 10).unwrap_err();
            assert_eq!(
                e.status().as_u16(),
                400,
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(!e.to_string().contains("hunter2"));
        }
        let e = parse(
            br#"{"inject-file": {"path": "/x", "contents": "aGVsbG8gd29ybGQ="}}"#,
            4,
        )
        .unwrap_err();
        assert_eq!(e.status().as_u16(), 413);
    }
}
