//! The body of `POST .../actions` as tenants send it: exactly one action, Nova style
//! (`{"ping": null}`), checked here so every mistake is a 400 with a message that says what to
//! fix. This is the public contract; what goes on to the agent is `nova_guest_contract`'s.

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::policy::Target;
use nova_guest_contract::Action;

/// One parsed action.
#[derive(Clone, PartialEq, Eq)]
pub enum TenantRequest {
    /// `{"apply-networking": null}`.
    ApplyNetworking,
    /// `{"set-password": {"username"?: ..., "password"?: ...}}`.
    SetPassword {
        /// The guest user (the agent's per-OS default when absent).
        username: Option<String>,
        /// The new password (generated when absent).
        password: Option<String>,
    },
    /// `{"inject-file": {"path": ..., "contents": base64}}`.
    InjectFile {
        /// Absolute path in the guest.
        path: String,
        /// Base64 of the contents, passed on as received.
        contents: String,
        /// Permission bits in octal, when given.
        mode: Option<String>,
    },
    /// `{"ping": null}`.
    Ping,
    /// `{"exec": {"path": ..., ...}}`, passed on to the agent as received.
    Exec(Map<String, Value>),
}

impl std::fmt::Debug for TenantRequest {
    /// Never shows passwords, file contents or exec arguments.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.action().name())
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::BadRequest(message.into())
}

const ACTIONS: &str = "apply-networking, set-password, inject-file, ping, exec";

fn no_arguments(name: &str, v: &Value) -> Result<(), ApiError> {
    match v {
        Value::Null => Ok(()),
        Value::Object(m) if m.is_empty() => Ok(()),
        _ => Err(bad(format!(
            "Invalid input for {name}: it takes no arguments (send {{\"{name}\": null}})"
        ))),
    }
}

fn object<'a>(
    name: &str,
    v: &'a Value,
    allowed: &[&str],
) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    let m = match v {
        Value::Null => return Ok(None),
        Value::Object(m) => m,
        other => {
            return Err(bad(format!(
                "Invalid input for {name}: expected an object, got {}",
                kind(other)
            )));
        }
    };
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "Invalid input for {name}: unknown field {k:?} (allowed: {})",
            allowed.join(", ")
        )));
    }
    Ok(Some(m))
}

fn string_field(
    name: &str,
    m: Option<&Map<String, Value>>,
    field: &str,
    required: bool,
) -> Result<Option<String>, ApiError> {
    match m.and_then(|m| m.get(field)) {
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(bad(format!(
            "Invalid input for {name}: {field:?} is required"
        ))),
        Some(Value::String(s)) if s.is_empty() => Err(bad(format!(
            "Invalid input for {name}: {field:?} must not be empty"
        ))),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(format!(
            "Invalid input for {name}: {field:?} must be a string, got {}",
            kind(other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl TenantRequest {
    /// The agent's action.
    pub fn action(&self) -> Action {
        match self {
            Self::ApplyNetworking => Action::ApplyNetworking,
            Self::SetPassword { .. } => Action::SetPassword,
            Self::InjectFile { .. } => Action::InjectFile,
            Self::Ping => Action::Ping,
            Self::Exec(_) => Action::Exec,
        }
    }

    /// The policy target.
    pub fn target(&self) -> Target {
        Target::Action(self.action())
    }

    /// Parses and checks a request body.
    ///
    /// # Errors
    ///
    /// 400 with a message naming the problem.
    pub fn parse(body: &[u8]) -> Result<Self, ApiError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| bad(format!("Malformed request body: {e}")))?;
        let Value::Object(map) = value else {
            return Err(bad(format!(
                "The request body must be a JSON object holding one action ({ACTIONS}), got {}",
                kind(&value)
            )));
        };
        let mut entries = map.into_iter();
        let Some((name, args)) = entries.next() else {
            return Err(bad(format!(
                "The request body holds no action (one of {ACTIONS})"
            )));
        };
        if let Some((second, _)) = entries.next() {
            return Err(bad(format!(
                "Only one action per request; the body holds {name:?} and {second:?}"
            )));
        }
        match name.as_str() {
            "apply-networking" => no_arguments(&name, &args).map(|()| Self::ApplyNetworking),
            "ping" => no_arguments(&name, &args).map(|()| Self::Ping),
            "set-password" => {
                let m = object(&name, &args, &["username", "password"])?;
                Ok(Self::SetPassword {
                    username: string_field(&name, m, "username", false)?,
                    password: string_field(&name, m, "password", false)?,
                })
            }
            "inject-file" => {
                let m = object(&name, &args, &["path", "contents", "mode"])?;
                if m.is_none() {
                    return Err(bad("Invalid input for inject-file: \"path\" is required"));
                }
                let path = string_field(&name, m, "path", true)?.unwrap_or_default();
                let contents = match m.and_then(|m| m.get("contents")) {
                    Some(Value::String(s)) => s.clone(),
                    None | Some(Value::Null) => {
                        return Err(bad(
                            "Invalid input for inject-file: \"contents\" is required",
                        ));
                    }
                    Some(other) => {
                        return Err(bad(format!(
                            "Invalid input for inject-file: \"contents\" must be a base64 \
                             string, got {}",
                            kind(other)
                        )));
                    }
                };
                if let Err(e) = base64::engine::general_purpose::STANDARD.decode(&contents) {
                    return Err(bad(format!(
                        "Invalid input for inject-file: \"contents\" is not valid base64 ({e})"
                    )));
                }
                let mode = string_field(&name, m, "mode", false)?;
                if mode
                    .as_deref()
                    .is_some_and(|v| !nova_guest_contract::request::valid_mode(v))
                {
                    return Err(bad(
                        "Invalid input for inject-file: \"mode\" must be permission bits in octal, \
                         such as \"0644\"",
                    ));
                }
                Ok(Self::InjectFile {
                    path,
                    contents,
                    mode,
                })
            }
            "exec" => match args {
                Value::Object(m) => match m.get("path") {
                    Some(Value::String(p)) if !p.is_empty() => Ok(Self::Exec(m)),
                    _ => Err(bad(
                        "Invalid input for exec: \"path\" (a non-empty string) is required",
                    )),
                },
                other => Err(bad(format!(
                    "Invalid input for exec: expected an object, got {}",
                    kind(&other)
                ))),
            },
            other => Err(bad(format!("Unknown action {other:?} (one of {ACTIONS})"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> String {
        match TenantRequest::parse(body.as_bytes()) {
            Err(ApiError::BadRequest(m)) => m,
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn accepted_bodies() {
        use TenantRequest as A;
        assert_eq!(
            A::parse(br#"{"apply-networking": null}"#).unwrap(),
            A::ApplyNetworking
        );
        assert_eq!(A::parse(br#"{"ping": {}}"#).unwrap(), A::Ping);
        assert_eq!(
            A::parse(br#"{"set-password": {"username": "ubuntu"}}"#).unwrap(),
            A::SetPassword {
                username: Some("ubuntu".into()),
                password: None
            }
        );
        assert_eq!(
            A::parse(br#"{"set-password": null}"#).unwrap(),
            A::SetPassword {
                username: None,
                password: None
            }
        );
        assert_eq!(
            A::parse(br#"{"inject-file": {"path": "/etc/motd", "contents": "aGk="}}"#).unwrap(),
            A::InjectFile {
                path: "/etc/motd".into(),
                contents: "aGk=".into(),
                mode: None,
            }
        );
        assert!(matches!(
            A::parse(br#"{"exec": {"path": "/bin/true"}}"#),
            Ok(A::Exec(_))
        ));
    }

    #[test]
    fn useful_messages() {
        assert!(err("{").starts_with("Malformed request body"));
        assert!(err("[]").contains("must be a JSON object"));
        assert!(err("{}").contains("no action"));
        assert!(err(r#"{"reboot": null}"#).contains("Unknown action \"reboot\""));
        assert!(err(r#"{"ping": null, "apply-networking": null}"#).contains("Only one action"));
        assert!(err(r#"{"ping": 1}"#).contains("takes no arguments"));
        assert!(
            err(r#"{"set-password": {"password": 5}}"#).contains("must be a string, got a number")
        );
        assert!(err(r#"{"set-password": {"user": "x"}}"#).contains("unknown field \"user\""));
        assert!(err(r#"{"set-password": "x"}"#).contains("expected an object"));
        assert!(err(r#"{"inject-file": {"path": "/x"}}"#).contains("\"contents\" is required"));
        assert!(
            err(r#"{"inject-file": {"path": "/x", "contents": "", "mode": "999"}}"#)
                .contains("octal")
        );
        assert!(
            err(r#"{"inject-file": {"path": "/x", "contents": "!!"}}"#)
                .contains("not valid base64")
        );
        assert!(err(r#"{"inject-file": {"contents": ""}}"#).contains("\"path\" is required"));
        assert!(err(r#"{"exec": {"args": []}}"#).contains("\"path\""));
    }

    #[test]
    fn debug_hides_secrets() {
        let a = TenantRequest::SetPassword {
            username: None,
            password: Some("hunter2".into()),
        };
        assert_eq!(format!("{a:?}"), "set-password");
    }
}
