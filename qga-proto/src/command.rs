//! The [`Command`] trait, the raw escape hatch and request encoding.

use std::io::Write as _;

use bytes::{BufMut, BytesMut};
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// One QGA or QMP command: its wire name, its arguments (the implementing type itself) and the
/// type of its `return` value.
///
/// A command with no arguments is a unit struct with [`HAS_ARGUMENTS`](Self::HAS_ARGUMENTS)
/// `false`; its request carries no `arguments` member.
pub trait Command: Serialize {
    /// The name on the wire (`"guest-exec-status"`).
    const NAME: &'static str;
    /// Whether the request carries an `arguments` object.
    const HAS_ARGUMENTS: bool = true;
    /// False for the commands that send no reply when they succeed (guest-shutdown and the
    /// guest-suspend family): they only ever reply with an error.
    const SUCCESS_RESPONSE: bool = true;
    /// True for commands that may legitimately take long (fsfreeze, fstrim): a driver should
    /// give them a longer default deadline.
    const LONG_RUNNING: bool = false;
    /// The decoded `return` value.
    type Response: DeserializeOwned;
}

/// The `return` value of commands that return an empty object. Any members a newer peer adds
/// are ignored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Empty;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Empty, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Empty {})
            }
        }
        deserializer.deserialize_map(V)
    }
}

/// Any command by name with any JSON arguments: the escape hatch for commands this crate does
/// not model. Its reply is an arbitrary JSON value.
#[derive(Clone, PartialEq)]
pub struct RawCommand {
    /// The wire name.
    pub name: String,
    /// The `arguments` member, if any.
    pub arguments: Option<serde_json::Value>,
}

impl std::fmt::Debug for RawCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Arguments may hold passwords or file data.
        f.debug_struct("RawCommand")
            .field("name", &self.name)
            .field("arguments", &self.arguments.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl RawCommand {
    /// A command without arguments.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            arguments: None,
        }
    }

    /// Sets the arguments.
    #[must_use]
    pub fn with_arguments(mut self, arguments: serde_json::Value) -> Self {
        self.arguments = Some(arguments);
        self
    }

    /// Parses a whole request object such as `{"execute": "guest-ping", "arguments": {...}}`.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong when the text is not such an object.
    pub fn from_request_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let serde_json::Value::Object(mut map) = value else {
            return Err("a request must be a JSON object".into());
        };
        let name = match map.remove("execute") {
            Some(serde_json::Value::String(name)) => name,
            Some(_) => return Err("'execute' must be a string".into()),
            None => return Err("the request lacks 'execute'".into()),
        };
        let arguments = map.remove("arguments");
        if let Some(arguments) = &arguments
            && !arguments.is_object()
        {
            return Err("'arguments' must be an object".into());
        }
        if let Some(key) = map.keys().find(|k| k.as_str() != "id") {
            return Err(format!("unexpected member '{key}'"));
        }
        Ok(Self { name, arguments })
    }
}

/// Closes a request: the optional numeric `id`, the brace and the line feed.
fn write_tail(id: Option<u64>, out: &mut BytesMut) {
    if let Some(id) = id {
        out.extend_from_slice(b",\"id\":");
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    }
    out.extend_from_slice(b"}\n");
}

/// Appends `{"execute":NAME,"arguments":{..},"id":ID}\n` for a typed command to `out`.
///
/// # Errors
///
/// Only if the arguments fail to serialise, which the types in this crate never do.
pub fn encode_request<C: Command>(
    command: &C,
    id: Option<u64>,
    out: &mut BytesMut,
) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"{\"execute\":\"");
    // Wire names are plain ASCII identifiers: no escaping needed.
    out.extend_from_slice(C::NAME.as_bytes());
    out.extend_from_slice(b"\"");
    if C::HAS_ARGUMENTS {
        out.extend_from_slice(b",\"arguments\":");
        serde_json::to_writer(out.writer(), command)?;
    }
    write_tail(id, out);
    Ok(())
}

/// Appends the request for a [`RawCommand`] to `out`.
///
/// # Errors
///
/// Only if the arguments fail to serialise.
pub fn encode_raw_request(
    command: &RawCommand,
    id: Option<u64>,
    out: &mut BytesMut,
) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b"{\"execute\":");
    serde_json::to_writer(out.writer(), &command.name)?;
    if let Some(arguments) = &command.arguments {
        out.extend_from_slice(b",\"arguments\":");
        serde_json::to_writer(out.writer(), arguments)?;
    }
    write_tail(id, out);
    Ok(())
}

/// Writes a request with an `exec-oob` member (QMP only, needs the `oob` capability).
///
/// # Errors
///
/// Only if the arguments fail to serialise.
pub fn encode_oob_request<C: Command>(
    command: &C,
    id: u64,
    out: &mut BytesMut,
) -> Result<(), serde_json::Error> {
    let mut w = out.writer();
    write!(w, "{{\"exec-oob\":\"{}\"", C::NAME).map_err(serde_json::Error::io)?;
    let out = w.into_inner();
    if C::HAS_ARGUMENTS {
        out.extend_from_slice(b",\"arguments\":");
        serde_json::to_writer(out.writer(), command)?;
    }
    write_tail(Some(id), out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qga::{GuestFileWrite, GuestPing};

    #[test]
    fn encodes_without_arguments_and_with_id() {
        let mut out = BytesMut::new();
        encode_request(&GuestPing, Some(0), &mut out).unwrap();
        encode_request(&GuestPing, None, &mut out).unwrap();
        encode_request(&GuestPing, Some(u64::MAX), &mut out).unwrap();
        assert_eq!(
            &out[..],
            &b"{\"execute\":\"guest-ping\",\"id\":0}\n{\"execute\":\"guest-ping\"}\n\
               {\"execute\":\"guest-ping\",\"id\":18446744073709551615}\n"[..]
        );
    }

    #[test]
    fn encodes_borrowed_base64_arguments() {
        let mut out = BytesMut::new();
        let cmd = GuestFileWrite::new(1000, b"hello\x00\xffworld\n");
        encode_request(&cmd, None, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["arguments"]["buf-b64"], "aGVsbG8A/3dvcmxkCg==");
        assert_eq!(v["arguments"]["handle"], 1000);
        assert!(v["arguments"].get("count").is_none());
    }

    #[test]
    fn raw_requests_round_trip() {
        let raw = RawCommand::from_request_json(
            r#"{"execute":"guest-exec","arguments":{"path":"/bin/true"},"id":3}"#,
        )
        .unwrap();
        assert_eq!(raw.name, "guest-exec");
        let mut out = BytesMut::new();
        encode_raw_request(&raw, Some(9), &mut out).unwrap();
        assert_eq!(
            &out[..],
            &b"{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/true\"},\"id\":9}\n"[..]
        );
        assert!(RawCommand::from_request_json("[]").is_err());
        assert!(RawCommand::from_request_json(r#"{"execute":1}"#).is_err());
        assert!(RawCommand::from_request_json(r#"{"execute":"x","arguments":[]}"#).is_err());
        assert!(RawCommand::from_request_json(r#"{"execute":"x","bogus":1}"#).is_err());
        assert!(format!("{raw:?}").contains("redacted"));
    }

    #[test]
    fn empty_accepts_any_object() {
        let e: Empty = serde_json::from_str(r#"{"new-member": [1, 2]}"#).unwrap();
        assert_eq!(e, Empty {});
        assert!(serde_json::from_str::<Empty>("[]").is_err());
    }
}
