//! QMP events, typed.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::message::{Event, Timestamp};

open_enum! {
    /// Why QEMU shut down or reset.
    pub enum ShutdownCause {
        /// No reason.
        None = "none",
        /// An error on the host.
        HostError = "host-error",
        /// `quit` over QMP.
        HostQmpQuit = "host-qmp-quit",
        /// `system_reset` over QMP.
        HostQmpSystemReset = "host-qmp-system-reset",
        /// A signal to QEMU.
        HostSignal = "host-signal",
        /// The UI.
        HostUi = "host-ui",
        /// The guest shut down.
        GuestShutdown = "guest-shutdown",
        /// The guest reset.
        GuestReset = "guest-reset",
        /// The guest panicked.
        GuestPanic = "guest-panic",
        /// Subsystem reset.
        SubsystemReset = "subsystem-reset",
        /// Snapshot load.
        SnapshotLoad = "snapshot-load",
    }
}

/// `SHUTDOWN` and `RESET` payload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ShutdownInfo {
    /// True if the guest asked for it.
    pub guest: bool,
    /// Why.
    pub reason: ShutdownCause,
}

/// `VSERPORT_CHANGE` payload: a virtio-serial port was opened or closed by the guest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VserportChange {
    /// The port's device id (`id=` of `-device virtserialport`).
    pub id: String,
    /// True when the guest side opened it (the agent started).
    pub open: bool,
}

/// The events this crate types. Others are kept as [`KnownEvent::Other`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum KnownEvent {
    /// `SHUTDOWN`.
    Shutdown(ShutdownInfo),
    /// `RESET`.
    Reset(ShutdownInfo),
    /// `STOP`.
    Stop,
    /// `RESUME`.
    Resume,
    /// `SUSPEND`.
    Suspend,
    /// `VSERPORT_CHANGE`.
    VserportChange(VserportChange),
    /// Anything else, or a known event whose payload did not decode.
    Other(Event),
}

impl KnownEvent {
    /// Types an event. Never fails: what it cannot type stays [`KnownEvent::Other`].
    pub fn from_event(event: Event) -> Self {
        fn data<T: DeserializeOwned>(e: &Event) -> Option<T> {
            e.data.clone().and_then(|d| serde_json::from_value(d).ok())
        }
        let typed = match event.event.as_str() {
            "SHUTDOWN" => data(&event).map(Self::Shutdown),
            "RESET" => data(&event).map(Self::Reset),
            "STOP" => Some(Self::Stop),
            "RESUME" => Some(Self::Resume),
            "SUSPEND" => Some(Self::Suspend),
            "VSERPORT_CHANGE" => data(&event).map(Self::VserportChange),
            _ => None,
        };
        typed.unwrap_or(Self::Other(event))
    }
}

/// An event with its time, as delivered to subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedEvent {
    /// The event name.
    pub name: String,
    /// The typed event.
    pub event: KnownEvent,
    /// When QEMU emitted it.
    pub timestamp: Timestamp,
    /// The payload exactly as QEMU sent it (members newer than this crate included).
    pub data: Option<serde_json::Value>,
}

impl From<Event> for TimedEvent {
    fn from(event: Event) -> Self {
        let name = event.event.clone();
        let timestamp = event.timestamp;
        let data = event.data.clone();
        Self {
            name,
            event: KnownEvent::from_event(event),
            timestamp,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(json: &str) -> KnownEvent {
        KnownEvent::from_event(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn types_events() {
        assert_eq!(
            ev(
                r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#
            ),
            KnownEvent::Shutdown(ShutdownInfo {
                guest: true,
                reason: ShutdownCause::GuestShutdown
            })
        );
        assert_eq!(
            ev(
                r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "VSERPORT_CHANGE", "data": {"id": "channel0", "open": false}}"#
            ),
            KnownEvent::VserportChange(VserportChange {
                id: "channel0".into(),
                open: false
            })
        );
        assert_eq!(
            ev(r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#),
            KnownEvent::Stop
        );
        let KnownEvent::Shutdown(info) = ev(
            r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "brand-new"}}"#,
        ) else {
            panic!()
        };
        assert_eq!(info.reason, ShutdownCause::Other("brand-new".into()));
        assert!(matches!(
            ev(
                r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "SHUTDOWN", "data": 3}"#
            ),
            KnownEvent::Other(_)
        ));
        assert!(matches!(
            ev(r#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "BLOCK_JOB_READY"}"#),
            KnownEvent::Other(_)
        ));
    }
}
