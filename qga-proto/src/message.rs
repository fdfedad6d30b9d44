//! Messages: what a client receives (replies, errors, QMP greeting and events) and what a peer
//! receives (requests).
//!
//! QGA and QMP share one grammar:
//!
//! ```text
//! request  {"execute": NAME, "arguments": {..}?, "id": ANY?}     (QMP also "exec-oob")
//! success  {"return": VALUE, "id": ANY?}
//! error    {"error": {"class": CLASS, "desc": TEXT}, "id": ANY?}
//! event    {"event": NAME, "data": {..}?, "timestamp": {"seconds": N, "microseconds": N}}   (QMP)
//! greeting {"QMP": {"version": {..}, "capabilities": [..]}}                             (QMP)
//! ```
//!
//! Member order is not stable on the wire and unknown members are ignored everywhere.

use std::fmt;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

open_enum! {
    /// Error `class` as sent by QEMU: the known classes plus any other string, kept verbatim
    /// in `Other` (an older or newer peer).
    pub enum ErrorClass {
        /// Everything that is not one of the others: argument errors, command failures, JSON
        /// errors.
        GenericError = "GenericError",
        /// Unknown command, or a command that is disabled (blocked, frozen, unsupported).
        CommandNotFound = "CommandNotFound",
        /// `DeviceNotActive`.
        DeviceNotActive = "DeviceNotActive",
        /// `DeviceNotFound`.
        DeviceNotFound = "DeviceNotFound",
        /// `KVMMissingCap`.
        KvmMissingCap = "KVMMissingCap",
    }
}

/// The `error` member of an error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error class. Branch on this, never on `desc`.
    pub class: ErrorClass,
    /// Human-readable text; it changes between QEMU versions.
    #[serde(default)]
    pub desc: String,
}

impl fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.desc)
    }
}

/// A reply, decoded with a typed `return` value.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<T> {
    /// `{"return": ..}`.
    Return {
        /// The decoded value.
        value: T,
        /// The echoed `id`, if any.
        id: Option<Value>,
    },
    /// `{"error": ..}`.
    Error {
        /// Class and description.
        error: ErrorBody,
        /// The echoed `id`; parse-level errors carry none.
        id: Option<Value>,
    },
}

/// Why bytes could not be read as the expected message.
///
/// Plain data, so `Clone` and `PartialEq` (serde_json's own error is neither: it is kept as
/// a [`JsonError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Not JSON, or a member of the wrong type.
    #[error("invalid message: {0}")]
    Json(#[source] JsonError),
    /// A valid JSON object that is none of the expected kinds.
    #[error("unexpected message: {0}")]
    Unexpected(&'static str),
}

impl From<serde_json::Error> for MessageError {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(JsonError::from(e))
    }
}

/// A JSON syntax or type error, as data: what serde_json said, where and of which kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    message: String,
    category: serde_json::error::Category,
    line: usize,
    column: usize,
}

impl JsonError {
    /// Syntax, data (a member of the wrong type), EOF or IO.
    pub fn classify(&self) -> serde_json::error::Category {
        self.category
    }

    /// The 1-based line of the error (0 when there is none).
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column of the error (0 when there is none).
    pub fn column(&self) -> usize {
        self.column
    }
}

impl From<serde_json::Error> for JsonError {
    fn from(e: serde_json::Error) -> Self {
        Self {
            message: e.to_string(),
            category: e.classify(),
            line: e.line(),
            column: e.column(),
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // serde_json's own text, position included.
        f.write_str(&self.message)
    }
}

impl std::error::Error for JsonError {}

pub(crate) fn first_non_space(bytes: &[u8]) -> Option<u8> {
    bytes
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// A member that is present is `Some`, even when its value is `null` (`{"return": null}`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Hostile peers may put invalid UTF-8 in members nobody looks at, which serde_json would
/// skip without checking: check the whole message first (fast for the ASCII qemu sends).
fn text(bytes: &[u8]) -> Result<&str, MessageError> {
    std::str::from_utf8(bytes).map_err(|_| MessageError::Unexpected("a message that is not UTF-8"))
}

/// All the members we look at, in one pass. Unknown members are skipped without allocating.
#[derive(Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
struct Envelope<T> {
    #[serde(
        rename = "return",
        default = "Option::default",
        deserialize_with = "present"
    )]
    ret: Option<T>,
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    event: Option<IgnoredAny>,
    #[serde(rename = "QMP", default)]
    greeting: Option<IgnoredAny>,
}

impl<T: DeserializeOwned> Reply<T> {
    /// Decodes a reply from one framed message.
    ///
    /// # Errors
    ///
    /// [`MessageError::Json`] when the bytes are not a reply or `return` does not match `T`;
    /// [`MessageError::Unexpected`] for an event, a greeting or an object that is neither.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, MessageError> {
        if first_non_space(bytes) != Some(b'{') {
            return Err(MessageError::Unexpected("a message that is not an object"));
        }
        let env: Envelope<T> = serde_json::from_str(text(bytes)?)?;
        match (env.ret, env.error) {
            (_, Some(error)) => Ok(Self::Error { error, id: env.id }),
            (Some(value), None) => Ok(Self::Return { value, id: env.id }),
            (None, None) if env.event.is_some() => Err(MessageError::Unexpected("an event")),
            (None, None) if env.greeting.is_some() => Err(MessageError::Unexpected("a greeting")),
            (None, None) => Err(MessageError::Unexpected(
                "an object with neither 'return' nor 'error'",
            )),
        }
    }
}

impl<T> Reply<T> {
    /// The echoed `id`.
    pub fn id(&self) -> Option<&Value> {
        match self {
            Self::Return { id, .. } | Self::Error { id, .. } => id.as_ref(),
        }
    }

    /// The value, or the error body.
    ///
    /// # Errors
    ///
    /// The [`ErrorBody`] of an error reply.
    pub fn into_result(self) -> Result<T, ErrorBody> {
        match self {
            Self::Return { value, .. } => Ok(value),
            Self::Error { error, .. } => Err(error),
        }
    }
}

/// QEMU's version triple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionTriple {
    /// Major version.
    pub major: u64,
    /// Minor version.
    pub minor: u64,
    /// Micro version.
    pub micro: u64,
}

impl fmt::Display for VersionTriple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// The QEMU version as reported by the greeting and `query-version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuVersion {
    /// The upstream version.
    pub qemu: VersionTriple,
    /// The distributor's package string.
    #[serde(default)]
    pub package: String,
}

/// The QMP greeting, the first message QEMU sends on a monitor connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Greeting {
    /// The `QMP` member.
    #[serde(rename = "QMP")]
    pub qmp: GreetingBody,
}

/// The body of the QMP greeting.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GreetingBody {
    /// The server's version.
    pub version: QemuVersion,
    /// Capabilities the server offers (`"oob"`).
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// When QEMU emitted an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timestamp {
    /// Seconds since the epoch (-1 if the host clock failed).
    pub seconds: i64,
    /// Microseconds within the second.
    pub microseconds: i64,
}

/// A QMP event, untyped. [`crate::qmp::KnownEvent::from_event`] types the common ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event name (`"SHUTDOWN"`).
    pub event: String,
    /// The payload, if the event has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// When it happened.
    pub timestamp: Timestamp,
}

/// Any message a QMP server sends, classified.
#[derive(Debug, Clone, PartialEq)]
pub enum QmpMessage {
    /// The greeting.
    Greeting(Greeting),
    /// An asynchronous event.
    Event(Event),
    /// A reply with its `return` value left as JSON.
    Reply(Reply<Value>),
}

impl QmpMessage {
    /// Classifies one framed message.
    ///
    /// # Errors
    ///
    /// [`MessageError`] when it is not valid JSON or none of the known kinds.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, MessageError> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(default)]
            event: Option<IgnoredAny>,
            #[serde(rename = "QMP", default)]
            greeting: Option<IgnoredAny>,
        }
        if first_non_space(bytes) != Some(b'{') {
            return Err(MessageError::Unexpected("a message that is not an object"));
        }
        let json = text(bytes)?;
        let probe: Probe = serde_json::from_str(json)?;
        if probe.event.is_some() {
            Ok(Self::Event(serde_json::from_str(json)?))
        } else if probe.greeting.is_some() {
            Ok(Self::Greeting(serde_json::from_str(json)?))
        } else {
            Ok(Self::Reply(Reply::from_slice(bytes)?))
        }
    }
}

/// A request as a server (or a test peer) sees it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingRequest {
    /// The command of an in-band request.
    #[serde(default)]
    pub execute: Option<String>,
    /// The command of an out-of-band request.
    #[serde(rename = "exec-oob", default)]
    pub exec_oob: Option<String>,
    /// Arguments.
    #[serde(default)]
    pub arguments: Option<Value>,
    /// The id to echo.
    #[serde(default)]
    pub id: Option<Value>,
}

impl IncomingRequest {
    /// The command name, whichever member carries it.
    pub fn command(&self) -> Option<&str> {
        self.execute.as_deref().or(self.exec_oob.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Empty;

    #[test]
    fn reply_kinds_and_unknown_members() {
        let r: Reply<Empty> = Reply::from_slice(br#"{"return": {}, "id": 7, "new": [1]}"#).unwrap();
        assert_eq!(r.id(), Some(&Value::from(7)));
        let r: Reply<Empty> = Reply::from_slice(
            br#"{"id": {"k": [1, 2]}, "error": {"class": "CommandNotFound", "desc": "The command guest-nosuch has not been found"}}"#,
        )
        .unwrap();
        let err = r.into_result().unwrap_err();
        assert_eq!(err.class, ErrorClass::CommandNotFound);
        let r: Reply<Empty> =
            Reply::from_slice(br#"{"error": {"class": "QgaCommandFailed", "desc": "x"}}"#).unwrap();
        let err = r.into_result().unwrap_err();
        assert_eq!(err.class, ErrorClass::Other("QgaCommandFailed".into()));
        assert_eq!(err.to_string(), "QgaCommandFailed: x");
    }

    #[test]
    fn return_null_is_a_value_and_invalid_utf8_is_refused() {
        let r: Reply<Value> = Reply::from_slice(br#"{"return": null}"#).unwrap();
        assert_eq!(r.into_result().unwrap(), Value::Null);
        assert!(matches!(
            Reply::<Value>::from_slice(b"{\"return\": 1, \"x\": \"\xff\xfe\"}"),
            Err(MessageError::Unexpected(_))
        ));
        assert!(QmpMessage::from_slice(b"{\"return\": 1, \"x\": \"\xc3\"}").is_err());
    }

    #[test]
    fn rejects_non_replies() {
        assert!(matches!(
            Reply::<Value>::from_slice(
                br#"{"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 2}}"#
            ),
            Err(MessageError::Unexpected(_))
        ));
        assert!(matches!(
            Reply::<Value>::from_slice(br#"{"QMP": {}}"#),
            Err(MessageError::Unexpected(_))
        ));
        assert!(matches!(
            Reply::<Value>::from_slice(br#"{"x": 1}"#),
            Err(MessageError::Unexpected(_))
        ));
        assert!(matches!(
            Reply::<Value>::from_slice(br#"[1]"#),
            Err(MessageError::Unexpected(_))
        ));
        assert!(matches!(
            Reply::<u64>::from_slice(br#"{"return": "x"}"#),
            Err(MessageError::Json(_))
        ));
    }

    #[test]
    fn classifies_qmp_traffic() {
        let g = QmpMessage::from_slice(br#"{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18+b3"}, "capabilities": ["oob"]}}"#).unwrap();
        let QmpMessage::Greeting(g) = g else {
            panic!("{g:?}")
        };
        assert_eq!(g.qmp.version.qemu.to_string(), "7.2.22");
        assert_eq!(g.qmp.capabilities, vec!["oob".to_string()]);
        let e = QmpMessage::from_slice(br#"{"timestamp": {"seconds": 1795348828, "microseconds": 339949}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}"#).unwrap();
        let QmpMessage::Event(e) = e else {
            panic!("{e:?}")
        };
        assert_eq!(e.event, "SHUTDOWN");
        assert_eq!(e.timestamp.microseconds, 339949);
        let r = QmpMessage::from_slice(br#"{"return": {}, "id": "bye"}"#).unwrap();
        assert!(matches!(r, QmpMessage::Reply(Reply::Return { .. })));
    }

    #[test]
    fn errors_are_plain_data() {
        let a = Reply::<u64>::from_slice(br#"{"return": "x"}"#).unwrap_err();
        let b = a.clone();
        assert_eq!(a, b);
        let MessageError::Json(json) = &a else {
            panic!("{a:?}")
        };
        assert_eq!(json.classify(), serde_json::error::Category::Data);
        assert_eq!((json.line(), json.column()), (1, 14));
        // The text and the source chain are serde_json's, as before.
        let direct = serde_json::from_str::<u64>(r#""x""#)
            .unwrap_err()
            .to_string();
        assert!(
            json.to_string()
                .starts_with(&direct[..direct.find(" at ").unwrap()])
        );
        assert_eq!(a.to_string(), format!("invalid message: {json}"));
        assert_eq!(
            std::error::Error::source(&a).map(ToString::to_string),
            Some(json.to_string())
        );
        assert_ne!(
            a,
            Reply::<u64>::from_slice(br#"{"return": "xy"}"#).unwrap_err()
        );
        assert_eq!(
            Reply::<Value>::from_slice(br#"[1]"#).unwrap_err(),
            MessageError::Unexpected("a message that is not an object")
        );
    }

    #[test]
    fn error_classes_keep_their_wire_names() {
        for (class, wire) in [
            (ErrorClass::GenericError, "GenericError"),
            (ErrorClass::CommandNotFound, "CommandNotFound"),
            (ErrorClass::DeviceNotActive, "DeviceNotActive"),
            (ErrorClass::DeviceNotFound, "DeviceNotFound"),
            (ErrorClass::KvmMissingCap, "KVMMissingCap"),
            (ErrorClass::Other("QgaNew".into()), "QgaNew"),
        ] {
            assert_eq!(class.as_str(), wire);
            assert_eq!(class.to_string(), wire);
            assert_eq!(ErrorClass::from(wire), class);
            assert_eq!(serde_json::to_value(&class).unwrap(), Value::from(wire));
            let back: ErrorClass = serde_json::from_value(Value::from(wire)).unwrap();
            assert_eq!(back, class);
        }
    }

    #[test]
    fn incoming_requests() {
        let r: IncomingRequest =
            serde_json::from_str(r#"{"exec-oob":"query-status","id":7}"#).unwrap();
        assert_eq!(r.command(), Some("query-status"));
        assert!(serde_json::from_str::<IncomingRequest>(r#"{"execute":"x","bogus":1}"#).is_err());
    }
}
