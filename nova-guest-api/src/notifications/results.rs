//! Results posted back: every automatic or fleet apply publishes an oslo-format notification
//! (the `messagingv2` envelope, `{"oslo.version": "2.0", "oslo.message": "<JSON>"}`) on
//! `results_exchange` with routing key `<topic>.info` (`guest.apply_networking.end`) or
//! `<topic>.error` (`guest.apply_networking.error`). The payload names the instance, its
//! project, what triggered the apply and its outcome: the agent's result, or the error code
//! and the message a tenant would read (no host names, URLs or secrets).

use std::time::SystemTime;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::ApiError;

/// What started an apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A notification.
    Event {
        /// Its `event_type`.
        event_type: String,
        /// Its `message_id`.
        message_id: String,
    },
    /// `POST /v1/{project}/networking/actions`.
    Fleet,
}

impl Trigger {
    fn json(&self) -> Value {
        match self {
            Self::Event {
                event_type,
                message_id,
            } => json!({"event_type": event_type, "message_id": message_id}),
            Self::Fleet => json!("fleet"),
        }
    }
}

/// One finished (or given up) apply.
#[derive(Debug, Clone)]
pub struct ApplyResult {
    /// The instance.
    pub instance_id: Uuid,
    /// Its project.
    pub project_id: String,
    /// The first trigger.
    pub trigger: Trigger,
    /// Notifications merged into this apply (debounce), the first included; 0 for a fleet.
    pub merged_events: usize,
    /// Attempts made.
    pub attempts: u32,
    /// The agent's result (`{"success": true, "message": {...}}`) or the last error.
    pub outcome: Result<Value, ApiError>,
}

/// `guest.apply_networking.end` / `.error`.
pub const EVENT_END: &str = "guest.apply_networking.end";
/// See [`EVENT_END`].
pub const EVENT_ERROR: &str = "guest.apply_networking.error";

impl ApplyResult {
    /// The event type.
    pub fn event_type(&self) -> &'static str {
        if self.outcome.is_ok() {
            EVENT_END
        } else {
            EVENT_ERROR
        }
    }

    /// `INFO` or `ERROR`, oslo's priority.
    pub fn priority(&self) -> &'static str {
        if self.outcome.is_ok() {
            "INFO"
        } else {
            "ERROR"
        }
    }

    /// The payload.
    pub fn payload(&self) -> Value {
        let mut p = json!({
            "instance_id": self.instance_id.to_string(),
            "project_id": self.project_id,
            "trigger": self.trigger.json(),
            "attempts": self.attempts,
            "success": self.outcome.is_ok(),
        });
        if matches!(self.trigger, Trigger::Event { .. }) {
            p["merged_events"] = json!(self.merged_events);
        }
        match &self.outcome {
            Ok(reply) => {
                p["message"] = reply.get("message").cloned().unwrap_or(Value::Null);
            }
            Err(e) => {
                p["error"] = json!({"code": e.status().as_u16(), "kind": e.kind(),
                                    "message": e.message()});
            }
        }
        p
    }

    /// The message body as oslo.messaging's `messagingv2` driver would send it.
    pub fn envelope(&self, publisher_id: &str, now: SystemTime) -> Vec<u8> {
        let inner = json!({
            "message_id": Uuid::new_v4().to_string(),
            "publisher_id": publisher_id,
            "event_type": self.event_type(),
            "priority": self.priority(),
            "payload": self.payload(),
            "timestamp": crate::timefmt::format_oslo(now),
        });
        json!({"oslo.version": "2.0", "oslo.message": inner.to_string()})
            .to_string()
            .into_bytes()
    }
}

/// `nova-guest-api.<hostname>`, as oslo names publishers (`<service>.<host>`).
pub fn publisher_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("nova-guest-api.{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes() {
        let r = ApplyResult {
            instance_id: Uuid::nil(),
            project_id: "p".into(),
            trigger: Trigger::Event {
                event_type: "port.update.end".into(),
                message_id: "m".into(),
            },
            merged_events: 3,
            attempts: 2,
            outcome: Err(ApiError::Conflict(
                "The guest agent of this instance is not connected.".into(),
            )),
        };
        let body: Value =
            serde_json::from_slice(&r.envelope("nova-guest-api.h", SystemTime::now())).unwrap();
        assert_eq!(body["oslo.version"], "2.0");
        let inner: Value = serde_json::from_str(body["oslo.message"].as_str().unwrap()).unwrap();
        assert_eq!(inner["event_type"], EVENT_ERROR);
        assert_eq!(inner["priority"], "ERROR");
        assert_eq!(inner["payload"]["error"]["code"], 409);
        assert_eq!(inner["payload"]["merged_events"], 3);
        assert_eq!(inner["payload"]["trigger"]["message_id"], "m");
        let fleet = ApplyResult {
            trigger: Trigger::Fleet,
            outcome: Ok(json!({"success": true, "message": {"exitcode": 0}})),
            ..r
        };
        let p = fleet.payload();
        assert_eq!(p["trigger"], "fleet");
        assert_eq!(p["message"]["exitcode"], 0);
        assert!(p.get("merged_events").is_none());
    }
}
