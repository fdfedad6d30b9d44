//! Neutron's notifications as they arrive, parsed without IO.
//!
//! oslo.messaging's `messagingv2` driver publishes `{"oslo.version": "2.0", "oslo.message":
//! "<JSON text>"}` (oslo_messaging/_drivers/common.py `serialize_msg`); the inner object is
//! the Notifier's `message_id`, `publisher_id`, `event_type`, `priority`, `payload`,
//! `timestamp` (oslo_messaging/notify/notifier.py `_notify`) plus the request context as
//! `_context_*` keys (never logged here). The older `messaging` driver sends the inner object
//! bare; it is accepted too, as oslo's own `deserialize_msg` does.
//!
//! Neutron's API controller (neutron/api/v2/base.py) notifies `<resource>.create.end` with
//! `{"port": {...}}` (a bulk create: `{"ports": [...]}`), `<resource>.update.end` with
//! `{"port": {...}}`, `{"subnet": {...}}` or `{"network": {...}}`: the resource as the API
//! shows it.

use serde_json::{Map, Value};
use uuid::Uuid;

/// The largest message body looked at; bigger ones are malformed.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// One port of a port event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRef {
    /// The port id.
    pub id: String,
    /// The instance it is bound to (only compute ports with a uuid device id are kept).
    pub instance: Uuid,
    /// The port's project (`project_id`, or the older `tenant_id`).
    pub project_id: String,
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `port.create.end` / `port.update.end`: these compute ports' instances (possibly none:
    /// a DHCP or router port).
    Ports(Vec<PortRef>),
    /// `subnet.update.end`: every compute port on this subnet.
    Subnet(String),
    /// `network.update.end` (its MTU, among others): every compute port on this network.
    Network(String),
}

/// A parsed notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An event this consumer acts on.
    Act {
        /// `message_id` of the notification.
        message_id: String,
        /// `event_type`.
        event_type: String,
        /// What it asks for.
        event: Event,
    },
    /// A well-formed Neutron notification of no interest here (`port.delete.end`,
    /// `router.update.end`, `*.start`, ...): acked quietly.
    Ignored {
        /// `event_type`.
        event_type: String,
    },
}

/// Why a message is malformed (it is acked and logged at warning).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Not a JSON object, or not oslo's envelope.
    #[error("bad envelope: {0}")]
    Envelope(String),
    /// `oslo.message` is not a JSON object.
    #[error("bad inner JSON: {0}")]
    Inner(String),
    /// A field is missing or has the wrong type.
    #[error("missing or malformed field {0}")]
    Field(&'static str),
    /// An event type nobody publishes on Neutron's exchange.
    #[error("unknown event type {0:?}")]
    UnknownEvent(String),
}

/// Resource names of Neutron's own notifications (the ones not acted on are ignored quietly).
const NEUTRON_RESOURCES: &[&str] = &[
    "port",
    "ports",
    "subnet",
    "subnets",
    "network",
    "networks",
    "router",
    "floatingip",
    "security_group",
    "security_group_rule",
    "subnetpool",
    "address_scope",
    "trunk",
    "segment",
    "qos_policy",
    "port_forwarding",
    "local_ip",
    "address_group",
    "network_segment_range",
    "rbac_policy",
    "tag",
];

/// An id that may go into a Neutron URL path.
fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn string<'a>(m: &'a Map<String, Value>, key: &'static str) -> Result<&'a str, Malformed> {
    m.get(key)
        .and_then(Value::as_str)
        .ok_or(Malformed::Field(key))
}

fn resource<'a>(
    payload: &'a Map<String, Value>,
    key: &'static str,
) -> Result<&'a Map<String, Value>, Malformed> {
    payload
        .get(key)
        .and_then(Value::as_object)
        .ok_or(Malformed::Field(key))
}

/// The port as a [`PortRef`] when it is a compute port bound to an instance.
fn port(p: &Map<String, Value>) -> Result<Option<PortRef>, Malformed> {
    let id = string(p, "id")?;
    let owner = p.get("device_owner").and_then(Value::as_str).unwrap_or("");
    if !owner.starts_with("compute:") {
        return Ok(None);
    }
    let device = p.get("device_id").and_then(Value::as_str).unwrap_or("");
    let Ok(instance) = Uuid::parse_str(device) else {
        return Ok(None);
    };
    let project_id = p
        .get("project_id")
        .or_else(|| p.get("tenant_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or(Malformed::Field("port.project_id"))?;
    Ok(Some(PortRef {
        id: id.to_owned(),
        instance,
        project_id: project_id.to_owned(),
    }))
}

/// Parses one message body.
///
/// # Errors
///
/// See [`Malformed`].
pub fn parse(body: &[u8]) -> Result<Parsed, Malformed> {
    if body.len() > MAX_MESSAGE {
        return Err(Malformed::Envelope(format!(
            "{} bytes, over {MAX_MESSAGE}",
            body.len()
        )));
    }
    let outer: Value =
        serde_json::from_slice(body).map_err(|e| Malformed::Envelope(format!("not JSON: {e}")))?;
    let Value::Object(outer) = outer else {
        return Err(Malformed::Envelope("not a JSON object".into()));
    };
    let inner = match (outer.get("oslo.version"), outer.get("oslo.message")) {
        (Some(Value::String(v)), Some(Value::String(m))) if v == "2.0" => {
            let inner: Value =
                serde_json::from_str(m).map_err(|e| Malformed::Inner(e.to_string()))?;
            match inner {
                Value::Object(o) => o,
                _ => return Err(Malformed::Inner("not a JSON object".into())),
            }
        }
        (Some(Value::String(v)), Some(Value::String(_))) => {
            return Err(Malformed::Envelope(format!("oslo.version {v:?}, not 2.0")));
        }
        (None, None) if outer.contains_key("event_type") => outer,
        _ => {
            return Err(Malformed::Envelope(
                "expected oslo.version \"2.0\" and oslo.message (a JSON string)".into(),
            ));
        }
    };
    let event_type = string(&inner, "event_type")?.to_owned();
    let message_id = string(&inner, "message_id")?.to_owned();
    let payload = || {
        inner
            .get("payload")
            .and_then(Value::as_object)
            .ok_or(Malformed::Field("payload"))
    };
    let event = match event_type.as_str() {
        "port.create.end" | "port.update.end" => {
            let payload = payload()?;
            let ports: Vec<&Map<String, Value>> = match (payload.get("port"), payload.get("ports"))
            {
                (Some(Value::Object(p)), _) => vec![p],
                (None, Some(Value::Array(list))) => list
                    .iter()
                    .map(|p| p.as_object().ok_or(Malformed::Field("ports[]")))
                    .collect::<Result<_, _>>()?,
                _ => return Err(Malformed::Field("payload.port")),
            };
            let mut refs = Vec::new();
            for p in ports {
                if let Some(r) = port(p)? {
                    refs.push(r);
                }
            }
            Event::Ports(refs)
        }
        "subnet.update.end" => {
            let id = string(resource(payload()?, "subnet")?, "id")?;
            if !safe_id(id) {
                return Err(Malformed::Field("subnet.id"));
            }
            Event::Subnet(id.to_owned())
        }
        "network.update.end" => {
            let id = string(resource(payload()?, "network")?, "id")?;
            if !safe_id(id) {
                return Err(Malformed::Field("network.id"));
            }
            Event::Network(id.to_owned())
        }
        other => {
            let known = other
                .split('.')
                .next()
                .is_some_and(|r| NEUTRON_RESOURCES.contains(&r));
            return if known {
                Ok(Parsed::Ignored { event_type })
            } else {
                Err(Malformed::UnknownEvent(other.chars().take(100).collect()))
            };
        }
    };
    Ok(Parsed::Act {
        message_id,
        event_type,
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(inner: &Value) -> Vec<u8> {
        json!({"oslo.version": "2.0", "oslo.message": inner.to_string()})
            .to_string()
            .into_bytes()
    }

    const VM: &str = "aaaaaaaa-0000-4000-8000-000000000001";

    fn port_event(event: &str, port: Value) -> Value {
        json!({"message_id": "m-1", "publisher_id": "network.ctl-1", "event_type": event,
               "priority": "INFO", "timestamp": "2026-05-01 10:00:00.000001",
               "_context_user_id": "u", "payload": {"port": port}})
    }

    #[test]
    fn neutron_shapes() {
        let p = json!({"id": "p1", "device_owner": "compute:nova", "device_id": VM,
                       "project_id": "alpha", "tenant_id": "alpha", "fixed_ips": []});
        let parsed = parse(&envelope(&port_event("port.update.end", p))).unwrap();
        assert_eq!(
            parsed,
            Parsed::Act {
                message_id: "m-1".into(),
                event_type: "port.update.end".into(),
                event: Event::Ports(vec![PortRef {
                    id: "p1".into(),
                    instance: Uuid::parse_str(VM).unwrap(),
                    project_id: "alpha".into()
                }])
            }
        );
        // Older Neutron: tenant_id only; bulk create; a DHCP port is nobody's instance.
        let bulk = json!({"message_id": "m-2", "event_type": "port.create.end", "payload":
            {"ports": [{"id": "p2", "device_owner": "compute:az1", "device_id": VM, "tenant_id": "t"},
                       {"id": "p3", "device_owner": "network:dhcp", "device_id": "dhcp-x"}]}});
        let Parsed::Act {
            event: Event::Ports(refs),
            ..
        } = parse(&envelope(&bulk)).unwrap()
        else {
            panic!()
        };
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].project_id, "t");
        let subnet = json!({"message_id": "m-3", "event_type": "subnet.update.end",
                            "payload": {"subnet": {"id": "sub-4", "dns_nameservers": []}}});
        assert!(matches!(parse(&envelope(&subnet)).unwrap(),
            Parsed::Act { event: Event::Subnet(s), .. } if s == "sub-4"));
        let net = json!({"message_id": "m-4", "event_type": "network.update.end",
                         "payload": {"network": {"id": "net-1", "mtu": 1400}}});
        assert!(matches!(parse(&envelope(&net)).unwrap(),
            Parsed::Act { event: Event::Network(n), .. } if n == "net-1"));
        // The v1 driver's bare message.
        let bare = serde_json::to_vec(&net).unwrap();
        assert!(matches!(parse(&bare), Ok(Parsed::Act { .. })));
        let del = json!({"message_id": "m-5", "event_type": "port.delete.end",
                         "payload": {"port_id": "p1"}});
        assert!(matches!(parse(&envelope(&del)), Ok(Parsed::Ignored { .. })));
    }

    #[test]
    fn malformed_shapes() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"not json".to_vec(), "bad envelope"),
            (b"[1]".to_vec(), "bad envelope"),
            (
                br#"{"oslo.version": "1.0", "oslo.message": "{}"}"#.to_vec(),
                "bad envelope",
            ),
            (
                br#"{"oslo.version": "2.0", "oslo.message": 5}"#.to_vec(),
                "bad envelope",
            ),
            (
                br#"{"oslo.version": "2.0", "oslo.message": "{nope"}"#.to_vec(),
                "bad inner",
            ),
            (
                br#"{"oslo.version": "2.0", "oslo.message": "[]"}"#.to_vec(),
                "bad inner",
            ),
            (
                envelope(&json!({"message_id": "m", "payload": {}})),
                "event_type",
            ),
            (
                envelope(&json!({"event_type": "port.update.end", "payload": {}})),
                "message_id",
            ),
            (
                envelope(&json!({"message_id": "m", "event_type": "port.update.end"})),
                "payload",
            ),
            (
                envelope(
                    &json!({"message_id": "m", "event_type": "port.update.end", "payload": {"port": 1}}),
                ),
                "payload.port",
            ),
            (
                envelope(&port_event(
                    "port.update.end",
                    json!({"device_owner": "compute:nova"}),
                )),
                "id",
            ),
            (
                envelope(&port_event(
                    "port.update.end",
                    json!({"id": "p", "device_owner": "compute:nova", "device_id": VM}),
                )),
                "project_id",
            ),
            (
                envelope(
                    &json!({"message_id": "m", "event_type": "subnet.update.end", "payload": {"subnet": {"id": "../x"}}}),
                ),
                "subnet.id",
            ),
            (
                envelope(
                    &json!({"message_id": "m", "event_type": "network.update.end", "payload": {}}),
                ),
                "network",
            ),
            (
                envelope(
                    &json!({"message_id": "m", "event_type": "compute.instance.reboot", "payload": {}}),
                ),
                "unknown event",
            ),
        ];
        for (body, want) in cases {
            let e = parse(&body).unwrap_err().to_string();
            assert!(
                e.contains(want),
                "{want:?} in {e:?} for {}",
                String::from_utf8_lossy(&body)
            );
        }
        assert!(parse(&vec![b' '; MAX_MESSAGE + 1]).is_err());
    }
}
