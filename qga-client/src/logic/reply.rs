//! What a reply means: the typed decode, the id check, the agent's errors, and the events a
//! hostile guest may put in place of replies.

use qga_proto::Command;
use qga_proto::message::Reply;
use serde::de::DeserializeOwned;

use crate::error::{Error, ProtocolError, Result};

/// Whether a message that is not a reply is an event (`{"event": ...}` without `return` or
/// `error`).
pub(crate) fn is_event(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Shape {
        event: Option<serde::de::IgnoredAny>,
        #[serde(rename = "return")]
        ret: Option<serde::de::IgnoredAny>,
        error: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Shape>(bytes)
        .is_ok_and(|s| s.event.is_some() && s.ret.is_none() && s.error.is_none())
}

/// Decodes a reply and checks the echoed id. A missing id is accepted (replies are
/// correlated by order after a sync; old agents do not echo); a different one is not.
pub(crate) fn decode_reply<T: DeserializeOwned>(
    command: &str,
    bytes: &[u8],
    id: Option<u64>,
) -> Result<T> {
    let reply = Reply::<T>::from_slice(bytes).map_err(|source| Error::Decode {
        command: command.to_owned(),
        source,
    })?;
    if let (Some(expected), Some(got)) = (id, reply.id())
        && got.as_u64() != Some(expected)
    {
        return Err(Error::Protocol(ProtocolError::IdMismatch {
            expected,
            got: got.clone(),
        }));
    }
    reply.into_result().map_err(|error| Error::Agent {
        command: command.to_owned(),
        error,
    })
}

/// The value of a command that did not reply (its response type is `Empty`).
pub(crate) fn no_reply_value<T: DeserializeOwned>(command: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(serde_json::Map::new())).map_err(|e| {
        Error::Decode {
            command: command.to_owned(),
            source: e.into(),
        }
    })
}

/// The result of a typed call: its reply decoded, or (`reply` `None`: a command that sends no
/// reply on success went quiet) the empty value.
pub(crate) fn typed<C: Command>(reply: Option<&[u8]>, id: Option<u64>) -> Result<C::Response> {
    match reply {
        Some(bytes) => decode_reply::<C::Response>(C::NAME, bytes, id),
        None => no_reply_value::<C::Response>(C::NAME),
    }
}

/// The result of a raw call named `command`: its `return` value as JSON.
pub(crate) fn raw(
    command: &str,
) -> impl Fn(Option<&[u8]>, Option<u64>) -> Result<serde_json::Value> + '_ {
    move |reply, id| match reply {
        Some(bytes) => decode_reply::<serde_json::Value>(command, bytes, id),
        None => Ok(serde_json::Value::Null),
    }
}
