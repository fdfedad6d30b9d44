//! `GET /v1/instances/{uuid}/guest` (the guest summary) and `GET /v1/instances` (the
//! instances of a host).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::action::Action;
use crate::error::ErrorCode;

/// The body of `GET /v1/instances/{uuid}/guest`: `{"guest": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestReply {
    /// The summary.
    pub guest: GuestSummary,
}

/// What the agent knows of one guest. An agent that cannot be reached now is a summary with
/// `reachable: false` and the error (the request itself succeeds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestSummary {
    /// The instance uuid.
    pub instance: String,
    /// The compute host (`[DEFAULT] host` of its agent).
    pub host: String,
    /// The actions this host allows (`enabled_actions`).
    pub actions: Vec<Action>,
    /// Reachable or not, and what was learnt.
    #[serde(flatten)]
    pub state: GuestState,
}

/// Whether the guest agent answered, and what it said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GuestState {
    /// It answered.
    Reachable(ReachableGuest),
    /// It could not be reached.
    Unreachable(UnreachableGuest),
}

/// A guest whose agent answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReachableGuest {
    /// True.
    pub reachable: bool,
    /// The guest agent's version and enabled commands.
    pub agent: AgentInfo,
    /// `guest-get-osinfo` as the guest agent returned it (null when it lacks the command).
    pub os: Option<Value>,
    /// True for Windows guests.
    pub windows: bool,
    /// `guest-get-host-name` (null when the guest agent lacks it).
    pub hostname: Option<String>,
    /// `guest-network-get-interfaces` as the guest agent returned it (null when it lacks it).
    pub interfaces: Option<Value>,
}

/// A guest whose agent could not be reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnreachableGuest {
    /// False.
    pub reachable: bool,
    /// Why.
    pub error: ErrorSummary,
}

/// The guest agent itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// qemu-ga's version.
    pub version: String,
    /// Its enabled commands, sorted.
    pub commands: Vec<String>,
}

/// An error inside a successful body: `{"code", "message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSummary {
    /// The agent's error code.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
}

/// The body of `GET /v1/instances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceList {
    /// The compute host.
    pub host: String,
    /// Every instance with a guest agent channel here (with the libvirt transport: every
    /// running domain).
    pub instances: Vec<InstanceEntry>,
}

/// One instance of [`InstanceList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceEntry {
    /// Its uuid (unknown when the host finds sockets by domain name only).
    pub uuid: Option<String>,
    /// Its libvirt domain name, when known.
    pub name: Option<String>,
    /// Its guest agent socket (with the libvirt transport: libvirt's socket).
    pub socket: String,
    /// Its guest agent answered a ping.
    pub reachable: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorSummary>,
    /// How the agent reaches it: `socket` or `libvirt` (absent from agents older than the
    /// libvirt transport, which use sockets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<String>,
    /// With libvirt: the domain's state as `virsh domstate` names it (`running`, `paused`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// With libvirt: its guest agent as libvirt reports it (the agent lifecycle event, or the
    /// channel state in the live XML): `connected`, `disconnected` or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_states_round_trip_with_their_shapes() {
        let reachable = json!({"guest": {"reachable": true,
            "agent": {"version": "7.2.22", "commands": ["guest-ping"]},
            "os": {"id": "debian"}, "windows": false, "hostname": null, "interfaces": null,
            "instance": "u", "host": "cmp1", "actions": ["ping"]}});
        let r: GuestReply = serde_json::from_value(reachable.clone()).unwrap();
        assert!(matches!(r.guest.state, GuestState::Reachable(_)));
        assert_eq!(serde_json::to_value(&r).unwrap(), reachable);
        let unreachable = json!({"guest": {"reachable": false,
            "error": {"code": "guest_timeout", "message": "silent"},
            "instance": "u", "host": "cmp1", "actions": []}});
        let r: GuestReply = serde_json::from_value(unreachable.clone()).unwrap();
        assert!(matches!(r.guest.state, GuestState::Unreachable(_)));
        assert_eq!(serde_json::to_value(&r).unwrap(), unreachable);
    }

    #[test]
    fn instance_entries_old_and_new() {
        // As agents before the libvirt transport send it: the new members are absent.
        let old = json!({"uuid": "u", "name": null, "socket": "/run/x.sock", "reachable": true});
        let e: InstanceEntry = serde_json::from_value(old.clone()).unwrap();
        assert_eq!((e.transport.as_deref(), e.agent.as_deref()), (None, None));
        assert_eq!(serde_json::to_value(&e).unwrap(), old);
        let new = json!({"uuid": "u", "name": "instance-0001", "socket": "/run/libvirt/libvirt-sock",
            "reachable": false, "error": {"code": "guest_unavailable", "message": "down"},
            "transport": "libvirt", "state": "running", "agent": "disconnected"});
        let e: InstanceEntry = serde_json::from_value(new.clone()).unwrap();
        assert_eq!(e.agent.as_deref(), Some("disconnected"));
        assert_eq!(serde_json::to_value(&e).unwrap(), new);
    }
}
