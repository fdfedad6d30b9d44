//! Domain events: registration and the event messages this crate decodes.
//!
//! A client registers with [`ConnectDomainEventCallbackRegisterAny`] (optionally for one
//! domain) and gets a callback id back. The server then sends `VIR_NET_MESSAGE` packets
//! (serial 0) whose procedure number says which event it is and whose payload starts with that
//! callback id. [`DomainEvent::decode`] turns one into a typed event.

use bytes::Bytes;

use crate::call::call;
use crate::packet::{QEMU_PROGRAM, REMOTE_PROGRAM as PROG, REMOTE_PROTOCOL_VERSION as VERS};
use crate::remote::{proc, xdr_struct};
use crate::types::Domain;
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError, from_slice};

/// Event ids of `virDomainEventID` for [`ConnectDomainEventCallbackRegisterAny`].
pub mod event_id {
    /// `VIR_DOMAIN_EVENT_ID_LIFECYCLE`: started, stopped, shut down, ...
    pub const LIFECYCLE: i32 = 0;
    /// `VIR_DOMAIN_EVENT_ID_REBOOT`.
    pub const REBOOT: i32 = 1;
    /// `VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE`: the guest agent connected or disconnected.
    pub const AGENT_LIFECYCLE: i32 = 18;
}

/// `REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY` (316):
/// `struct remote_connect_domain_event_callback_register_any_args { int eventID;
/// remote_domain dom; }`; replies
/// `struct remote_connect_domain_event_callback_register_any_ret { int callbackID; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectDomainEventCallbackRegisterAny {
    /// `eventID`: see [`event_id`].
    pub event_id: i32,
    /// `dom`: only this domain's events, or `None` for all domains.
    pub dom: Option<Domain>,
}

impl XdrEncode for ConnectDomainEventCallbackRegisterAny {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.i32(self.event_id);
        e.optional(self.dom.as_ref(), |e, d| d.encode(e))
    }
}

impl XdrDecode for ConnectDomainEventCallbackRegisterAny {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            event_id: d.i32()?,
            dom: d.optional(Domain::decode)?,
        })
    }
}
call!(ConnectDomainEventCallbackRegisterAny => i32, PROG, VERS,
    proc::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
    "REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY");

/// `REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY` (317):
/// `struct remote_connect_domain_event_callback_deregister_any_args { int callbackID; }`; no
/// reply data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectDomainEventCallbackDeregisterAny {
    /// `callbackID`, as returned by the registration.
    pub callback_id: i32,
}
xdr_struct!(ConnectDomainEventCallbackDeregisterAny { callback_id });
call!(ConnectDomainEventCallbackDeregisterAny => (), PROG, VERS,
    proc::CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY,
    "REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY");

/// `state` of [`AgentLifecycleEvent`] (`virConnectDomainEventAgentLifecycleState`).
pub mod agent_state {
    /// `VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED`.
    pub const CONNECTED: i32 = 1;
    /// `VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_DISCONNECTED`.
    pub const DISCONNECTED: i32 = 2;
}

/// `reason` of [`AgentLifecycleEvent`] (`virConnectDomainEventAgentLifecycleReason`).
pub mod agent_reason {
    /// `VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_UNKNOWN`.
    pub const UNKNOWN: i32 = 0;
    /// `VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_DOMAIN_STARTED`.
    pub const DOMAIN_STARTED: i32 = 1;
    /// `VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_REASON_CHANNEL`: the channel changed state.
    pub const CHANNEL: i32 = 2;
}

/// `REMOTE_PROC_DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE` (348):
/// `struct remote_domain_event_callback_agent_lifecycle_msg { int callbackID;
/// remote_nonnull_domain dom; int state; int reason; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLifecycleEvent {
    /// `callbackID`.
    pub callback_id: i32,
    /// `dom`.
    pub dom: Domain,
    /// `state`: see [`agent_state`].
    pub state: i32,
    /// `reason`: see [`agent_reason`].
    pub reason: i32,
}
xdr_struct!(AgentLifecycleEvent {
    callback_id,
    dom,
    state,
    reason
});

impl AgentLifecycleEvent {
    /// The agent is now connected.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.state == agent_state::CONNECTED
    }
}

/// `event` of [`LifecycleEvent`] (`virDomainEventType`).
pub mod lifecycle {
    /// `VIR_DOMAIN_EVENT_DEFINED`.
    pub const DEFINED: i32 = 0;
    /// `VIR_DOMAIN_EVENT_UNDEFINED`.
    pub const UNDEFINED: i32 = 1;
    /// `VIR_DOMAIN_EVENT_STARTED`.
    pub const STARTED: i32 = 2;
    /// `VIR_DOMAIN_EVENT_SUSPENDED`.
    pub const SUSPENDED: i32 = 3;
    /// `VIR_DOMAIN_EVENT_RESUMED`.
    pub const RESUMED: i32 = 4;
    /// `VIR_DOMAIN_EVENT_STOPPED`.
    pub const STOPPED: i32 = 5;
    /// `VIR_DOMAIN_EVENT_SHUTDOWN`.
    pub const SHUTDOWN: i32 = 6;
    /// `VIR_DOMAIN_EVENT_PMSUSPENDED`.
    pub const PMSUSPENDED: i32 = 7;
    /// `VIR_DOMAIN_EVENT_CRASHED`.
    pub const CRASHED: i32 = 8;
}

/// `REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE` (318):
/// `struct remote_domain_event_callback_lifecycle_msg { int callbackID;
/// remote_domain_event_lifecycle_msg msg; }` with
/// `struct remote_domain_event_lifecycle_msg { remote_nonnull_domain dom; int event;
/// int detail; }` flattened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    /// `callbackID`.
    pub callback_id: i32,
    /// `msg.dom`.
    pub dom: Domain,
    /// `msg.event`: see [`lifecycle`].
    pub event: i32,
    /// `msg.detail`: a `virDomainEvent<Event>DetailType` value.
    pub detail: i32,
}
xdr_struct!(LifecycleEvent {
    callback_id,
    dom,
    event,
    detail
});

impl LifecycleEvent {
    /// The domain stopped or is shutting down: its agent is going away.
    #[must_use]
    pub fn is_stop(&self) -> bool {
        matches!(
            self.event,
            lifecycle::STOPPED | lifecycle::SHUTDOWN | lifecycle::CRASHED
        )
    }
}

/// An asynchronous message from the server's `remote` or `qemu` program.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum DomainEvent {
    /// The guest agent connected or disconnected.
    AgentLifecycle(AgentLifecycleEvent),
    /// The domain started, stopped, shut down, ...
    Lifecycle(LifecycleEvent),
    /// Any other event, undecoded.
    Other {
        /// The program.
        program: u32,
        /// The procedure (event) number.
        procedure: i32,
        /// The payload.
        payload: Bytes,
    },
}

impl std::fmt::Debug for DomainEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AgentLifecycle(e) => f.debug_tuple("AgentLifecycle").field(e).finish(),
            Self::Lifecycle(e) => f.debug_tuple("Lifecycle").field(e).finish(),
            Self::Other {
                program,
                procedure,
                payload,
            } => f
                .debug_struct("Other")
                .field("program", program)
                .field("procedure", procedure)
                .field("payload_len", &payload.len())
                .finish(),
        }
    }
}

impl DomainEvent {
    /// Decodes the payload of a `VIR_NET_MESSAGE` packet of `program`/`procedure`.
    ///
    /// # Errors
    ///
    /// An [`XdrError`] if a known event's payload does not match its definition. Unknown
    /// events are not decoded and never fail.
    pub fn decode(program: u32, procedure: i32, payload: Bytes) -> Result<Self, XdrError> {
        Ok(match (program, procedure) {
            (PROG, proc::DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE) => {
                Self::AgentLifecycle(from_slice(&payload)?)
            }
            (PROG, proc::DOMAIN_EVENT_CALLBACK_LIFECYCLE) => Self::Lifecycle(from_slice(&payload)?),
            _ => Self::Other {
                program,
                procedure,
                payload,
            },
        })
    }

    /// Whether `program` sends events this type knows how to carry.
    #[must_use]
    pub fn is_event_program(program: u32) -> bool {
        program == PROG || program == QEMU_PROGRAM
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Call;
    use crate::types::Uuid;
    use crate::xdr::to_vec;

    fn dom() -> Domain {
        Domain {
            name: "a".into(),
            uuid: Uuid([2; 16]),
            id: 5,
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(ConnectDomainEventCallbackRegisterAny::PROCEDURE, 316);
        assert_eq!(ConnectDomainEventCallbackDeregisterAny::PROCEDURE, 317);
        assert_eq!(proc::DOMAIN_EVENT_CALLBACK_LIFECYCLE, 318);
        assert_eq!(proc::DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE, 348);
    }

    #[test]
    fn register_args() {
        let all = ConnectDomainEventCallbackRegisterAny {
            event_id: event_id::AGENT_LIFECYCLE,
            dom: None,
        };
        assert_eq!(to_vec(&all).unwrap(), [0, 0, 0, 18, 0, 0, 0, 0]);
        let one = ConnectDomainEventCallbackRegisterAny {
            event_id: 0,
            dom: Some(dom()),
        };
        assert_eq!(to_vec(&one).unwrap().len(), 8 + 28);
        assert_eq!(
            ConnectDomainEventCallbackRegisterAny::decode_reply(&[0, 0, 0, 7]).unwrap(),
            7
        );
    }

    #[test]
    fn agent_lifecycle_layout() {
        #[rustfmt::skip]
        let payload = [
            0, 0, 0, 3,            // callbackID
            0, 0, 0, 1, b'a', 0, 0, 0, // dom.name
            2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, // dom.uuid
            0, 0, 0, 5,            // dom.id
            0, 0, 0, 1,            // state CONNECTED
            0, 0, 0, 2,            // reason CHANNEL
        ];
        let e = DomainEvent::decode(PROG, 348, Bytes::copy_from_slice(&payload)).unwrap();
        let DomainEvent::AgentLifecycle(a) = e else {
            panic!("{e:?}")
        };
        assert_eq!(a.callback_id, 3);
        assert_eq!(a.dom, dom());
        assert!(a.is_connected());
        assert_eq!(a.reason, agent_reason::CHANNEL);
        assert_eq!(to_vec(&a).unwrap(), payload);
        assert!(DomainEvent::decode(PROG, 348, Bytes::copy_from_slice(&payload[..30])).is_err());
    }

    #[test]
    fn lifecycle_and_other() {
        let l = LifecycleEvent {
            callback_id: 1,
            dom: dom(),
            event: lifecycle::STOPPED,
            detail: 0,
        };
        let e = DomainEvent::decode(PROG, 318, Bytes::from(to_vec(&l).unwrap())).unwrap();
        assert!(matches!(&e, DomainEvent::Lifecycle(x) if x.is_stop()));
        let o = DomainEvent::decode(QEMU_PROGRAM, 6, Bytes::from_static(b"zz")).unwrap();
        assert!(matches!(o, DomainEvent::Other { procedure: 6, .. }));
        assert!(format!("{o:?}").contains("payload_len"));
        assert!(DomainEvent::is_event_program(QEMU_PROGRAM));
    }
}
