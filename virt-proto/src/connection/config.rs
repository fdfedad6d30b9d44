//! [`Config`]: the limits and timers of a [`super::Connection`].

use super::KeepaliveConfig;
use crate::packet::{MAX_PACKET_LEN, MIN_PACKET_LEN};

/// Limits and timers of a [`super::Connection`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub(super) max_packet_len: u32,
    pub(super) max_calls_in_flight: usize,
    pub(super) max_queued_events: usize,
    pub(super) keepalive: Option<KeepaliveConfig>,
    pub(super) first_serial: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_packet_len: MAX_PACKET_LEN,
            max_calls_in_flight: 64,
            max_queued_events: 1024,
            keepalive: Some(KeepaliveConfig::default()),
            first_serial: 1,
        }
    }
}

impl Config {
    /// Largest packet sent or received, counting the length word; clamped to
    /// `28..=MAX_PACKET_LEN` (the default).
    #[must_use]
    pub fn with_max_packet_len(mut self, max: u32) -> Self {
        self.max_packet_len = max.clamp(MIN_PACKET_LEN, MAX_PACKET_LEN);
        self
    }

    /// Calls waiting for a reply at once (default 64, at least 1).
    #[must_use]
    pub fn with_max_calls_in_flight(mut self, max: usize) -> Self {
        self.max_calls_in_flight = max.max(1);
        self
    }

    /// Events (other than replies) kept until polled (default 1024).
    #[must_use]
    pub fn with_max_queued_events(mut self, max: usize) -> Self {
        self.max_queued_events = max;
        self
    }

    /// Keepalive settings, or `None` to never send pings (pings from the server are always
    /// answered). Default [`KeepaliveConfig::default`].
    #[must_use]
    pub fn with_keepalive(mut self, keepalive: Option<KeepaliveConfig>) -> Self {
        self.keepalive = keepalive;
        self
    }

    /// The serial of the first call (default 1, as `docs/kbase/internals/rpc.rst` describes;
    /// libvirt's own client starts at 0, as the captures show). The server only echoes it.
    #[must_use]
    pub fn with_first_serial(mut self, serial: u32) -> Self {
        self.first_serial = serial;
        self
    }

    /// The packet limit.
    #[must_use]
    pub fn max_packet_len(&self) -> u32 {
        self.max_packet_len
    }
}
