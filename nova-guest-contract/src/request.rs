//! The request bodies of `POST /v1/instances/{uuid}/actions`: a JSON object with exactly one
//! member naming the action, Nova style (`{"ping": null}`).

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::action::Action;
use crate::error::ContractError;

/// One action request.
#[derive(Clone, PartialEq)]
pub enum ActionRequest {
    /// `{"apply-networking": {"network_data": {...}}}`.
    ApplyNetworking(ApplyNetworking),
    /// `{"set-password": {"username"?, "password", "crypted"?}}`.
    SetPassword(SetPassword),
    /// `{"inject-file": {"path", "contents"}}`.
    InjectFile(InjectFile),
    /// `{"ping": null}` (or `{}`).
    Ping,
    /// `{"exec": {"path", ...}}`.
    Exec(Exec),
}

impl ActionRequest {
    /// Which action this is.
    pub fn action(&self) -> Action {
        match self {
            Self::ApplyNetworking(_) => Action::ApplyNetworking,
            Self::SetPassword(_) => Action::SetPassword,
            Self::InjectFile(_) => Action::InjectFile,
            Self::Ping => Action::Ping,
            Self::Exec(_) => Action::Exec,
        }
    }

    /// Parses a request body.
    ///
    /// # Errors
    ///
    /// [`ContractError::Invalid`] for malformed JSON, zero or several members, an unknown
    /// action or wrong member types; the message never repeats values from the body.
    pub fn from_slice(body: &[u8]) -> Result<Self, ContractError> {
        let object: serde_json::Map<String, Value> = serde_json::from_slice(body)
            .map_err(|e| ContractError::invalid(format!("the body is not a JSON object: {e}")))?;
        if object.len() != 1 {
            return Err(ContractError::invalid(format!(
                "the body must have exactly one member naming the action (one of {}); it has {}",
                Action::names(),
                object.len()
            )));
        }
        let Some((name, value)) = object.into_iter().next() else {
            return Err(ContractError::invalid("empty body"));
        };
        let Some(action) = Action::from_name(&name) else {
            return Err(ContractError::invalid(format!(
                "unknown action {name:?} (known: {})",
                Action::names()
            )));
        };
        Self::from_value(action, value)
    }

    /// Reads the member of `action` (the value of `{"<action>": value}`).
    ///
    /// # Errors
    ///
    /// As for [`from_slice`](Self::from_slice).
    pub fn from_value(action: Action, value: Value) -> Result<Self, ContractError> {
        let name = action.name();
        let shape =
            |e: serde_json::Error| ContractError::invalid(format!("{name}: {}", redact(&e)));
        Ok(match action {
            Action::Ping => match value {
                Value::Null => Self::Ping,
                Value::Object(o) if o.is_empty() => Self::Ping,
                _ => return Err(ContractError::invalid("ping takes null or {}")),
            },
            Action::ApplyNetworking => {
                let body: ApplyNetworking = serde_json::from_value(value).map_err(shape)?;
                if !body.network_data.is_object() {
                    return Err(ContractError::invalid(
                        "apply-networking: network_data must be a network_data.json object",
                    ));
                }
                Self::ApplyNetworking(body)
            }
            Action::SetPassword => {
                let body: SetPassword = serde_json::from_value(value).map_err(shape)?;
                if body.password.is_empty() {
                    return Err(ContractError::invalid("set-password: password is empty"));
                }
                Self::SetPassword(body)
            }
            Action::InjectFile => {
                let body: InjectFile = serde_json::from_value(value).map_err(shape)?;
                if body.path.is_empty() || body.path.contains('\0') {
                    return Err(ContractError::invalid(
                        "inject-file: path must be a guest path",
                    ));
                }
                if body.mode.as_deref().is_some_and(|m| !valid_mode(m)) {
                    return Err(ContractError::invalid(
                        "inject-file: mode must be permission bits in octal, such as \"0644\"",
                    ));
                }
                Self::InjectFile(body)
            }
            Action::Exec => {
                let body: Exec = serde_json::from_value(value).map_err(shape)?;
                if body.path.is_empty() {
                    return Err(ContractError::invalid("exec: path is empty"));
                }
                body.timeout()?;
                Self::Exec(body)
            }
        })
    }
}

impl fmt::Debug for ActionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Bodies carry passwords, file contents and exec arguments: only the action is shown.
        write!(f, "ActionRequest({})", self.action())
    }
}

impl Serialize for ActionRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        let name = self.action().name();
        match self {
            Self::ApplyNetworking(b) => map.serialize_entry(name, b)?,
            Self::SetPassword(b) => map.serialize_entry(name, b)?,
            Self::InjectFile(b) => map.serialize_entry(name, b)?,
            Self::Ping => map.serialize_entry(name, &())?,
            Self::Exec(b) => map.serialize_entry(name, b)?,
        }
        map.end()
    }
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

/// `apply-networking`: the instance's network_data.json (OpenStack's metadata format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyNetworking {
    /// The network_data.json document.
    pub network_data: Value,
}

/// `set-password`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// The user; default root on Linux, Administrator on Windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The password (or a crypt(3) hash with `crypted`).
    pub password: String,
    /// The password is already hashed.
    #[serde(default, skip_serializing_if = "is_false")]
    pub crypted: bool,
}

impl fmt::Debug for SetPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetPassword")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("crypted", &self.crypted)
            .finish()
    }
}

/// `inject-file`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectFile {
    /// The guest path.
    pub path: String,
    /// Base64 of the contents.
    pub contents: String,
    /// Permission bits in octal (`"0644"`). Default: a new file gets 0600 and an existing
    /// one keeps its mode and owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// Whether `mode` is permission bits in octal: 3 or 4 digits 0-7 (`644`, `0644`, `1777`).
pub fn valid_mode(mode: &str) -> bool {
    (3..=4).contains(&mode.len()) && mode.bytes().all(|b| (b'0'..=b'7').contains(&b))
}

impl InjectFile {
    /// The decoded contents, at most `max` bytes.
    ///
    /// # Errors
    ///
    /// [`ContractError::TooLarge`] past `max` (judged from the base64 length before decoding),
    /// [`ContractError::Invalid`] when the contents are not standard base64.
    pub fn decode(&self, max: usize) -> Result<Vec<u8>, ContractError> {
        let too_large = || {
            ContractError::TooLarge(format!(
                "inject-file: contents exceed max_file_size ({max} bytes)"
            ))
        };
        if self.contents.len() / 4 * 3 > max + 3 {
            return Err(too_large());
        }
        let contents = B64
            .decode(self.contents.as_bytes())
            .map_err(|_| ContractError::invalid("inject-file: contents must be standard base64"))?;
        if contents.len() > max {
            return Err(too_large());
        }
        Ok(contents)
    }
}

impl fmt::Debug for InjectFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InjectFile")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field(
                "contents",
                &format_args!("{} base64 bytes", self.contents.len()),
            )
            .finish()
    }
}

/// `exec`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// The program (searched in the guest agent's PATH).
    pub path: String,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// `KEY=value` entries; when given they replace the whole environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// Base64 bytes for stdin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// Capture stdout and stderr (default true).
    #[serde(default = "yes")]
    pub capture: bool,
    /// Seconds to wait for the program; at most the agent's `command_timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// How out-data and err-data are returned.
    #[serde(default)]
    pub output: OutputEncoding,
}

impl Exec {
    /// The timeout asked for, if valid.
    ///
    /// # Errors
    ///
    /// [`ContractError::Invalid`] unless it is a positive, finite number of seconds.
    pub fn timeout(&self) -> Result<Option<Duration>, ContractError> {
        match self.timeout {
            None => Ok(None),
            Some(t) if t.is_finite() && t > 0.0 => Ok(Duration::try_from_secs_f64(t).ok()),
            Some(_) => Err(ContractError::invalid(
                "exec: timeout must be a positive number",
            )),
        }
    }
}

impl fmt::Debug for Exec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Arguments, environment and input may carry secrets.
        f.debug_struct("Exec")
            .field("path", &self.path)
            .field("args", &self.args.len())
            .field("env", &self.env.as_ref().map(Vec::len))
            .field("input", &self.input.as_ref().map(String::len))
            .field("capture", &self.capture)
            .field("timeout", &self.timeout)
            .field("output", &self.output)
            .finish()
    }
}

/// How captured output is returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputEncoding {
    /// UTF-8 text (invalid sequences replaced).
    #[default]
    Text,
    /// Base64 of the raw bytes.
    Base64,
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> Result<ActionRequest, ContractError> {
        ActionRequest::from_slice(body)
    }

    #[test]
    fn parses_each_action() {
        assert_eq!(parse(br#"{"ping": null}"#).unwrap(), ActionRequest::Ping);
        assert_eq!(parse(br#"{"ping": {}}"#).unwrap(), ActionRequest::Ping);
        let ActionRequest::InjectFile(f) =
            parse(br#"{"inject-file": {"path": "/x", "contents": "aGk="}}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(f.decode(10).unwrap(), b"hi");
        let r = parse(br#"{"set-password": {"password": "pw"}}"#).unwrap();
        assert_eq!(format!("{r:?}"), "ActionRequest(set-password)");
        let r = parse(br#"{"exec": {"path": "/bin/echo", "args": ["a"], "output": "base64"}}"#)
            .unwrap();
        assert_eq!(r.action(), Action::Exec);
        let r = parse(br#"{"apply-networking": {"network_data": {"links": []}}}"#).unwrap();
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
            br#"{"apply-networking": null}"#,
            br#"{"exec": {"path": "/bin/true", "timeout": -1}}"#,
            br#"{"inject-file": {"path": "/x", "contents": "", "mode": "0999"}}"#,
            br#"{"inject-file": {"path": "/x", "contents": "", "mode": "u+rwx"}}"#,
        ] {
            let e = parse(body).unwrap_err();
            assert!(
                matches!(e, ContractError::Invalid(_)),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(!e.to_string().contains("hunter2"));
        }
        let ActionRequest::InjectFile(f) =
            parse(br#"{"inject-file": {"path": "/x", "contents": "***"}}"#).unwrap()
        else {
            panic!()
        };
        assert!(matches!(f.decode(10), Err(ContractError::Invalid(_))));
        let ActionRequest::InjectFile(f) =
            parse(br#"{"inject-file": {"path": "/x", "contents": "aGVsbG8gd29ybGQ="}}"#).unwrap()
        else {
            panic!()
        };
        assert!(matches!(f.decode(4), Err(ContractError::TooLarge(_))));
    }

    #[test]
    fn exec_timeout_is_the_contracts_error() {
        let e = parse(br#"{"exec": {"path": "/bin/true", "timeout": 0}}"#).unwrap_err();
        assert_eq!(
            e,
            ContractError::Invalid("exec: timeout must be a positive number".into())
        );
        assert_eq!(e.code(), crate::ErrorCode::BadRequest);
    }

    #[test]
    fn what_is_sent_is_what_is_parsed() {
        let requests = [
            ActionRequest::Ping,
            ActionRequest::ApplyNetworking(ApplyNetworking {
                network_data: serde_json::json!({"links": [], "networks": []}),
            }),
            ActionRequest::SetPassword(SetPassword {
                username: Some("ubuntu".into()),
                password: "pw".into(),
                crypted: false,
            }),
            ActionRequest::InjectFile(InjectFile {
                path: "/etc/motd".into(),
                contents: "aGk=".into(),
                mode: Some("0644".into()),
            }),
            ActionRequest::Exec(Exec {
                path: "/bin/echo".into(),
                args: vec!["a".into()],
                env: None,
                input: None,
                capture: true,
                timeout: Some(1.5),
                output: OutputEncoding::Base64,
            }),
        ];
        for r in requests {
            let bytes = serde_json::to_vec(&r).unwrap();
            assert!(
                parse(&bytes).unwrap() == r,
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
        let bytes = serde_json::to_vec(&ActionRequest::SetPassword(SetPassword {
            username: None,
            password: "pw".into(),
            crypted: false,
        }))
        .unwrap();
        assert_eq!(bytes, br#"{"set-password":{"password":"pw"}}"#);
    }

    #[test]
    fn debug_hides_secrets() {
        let p = SetPassword {
            username: None,
            password: "hunter2".into(),
            crypted: false,
        };
        assert!(!format!("{p:?}").contains("hunter2"));
        let f = InjectFile {
            path: "/x".into(),
            contents: "c2VjcmV0".into(),
            mode: None,
        };
        assert!(!format!("{f:?}").contains("c2VjcmV0"));
    }
}
