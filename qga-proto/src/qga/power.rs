//! Shutdown and suspend. None of these reply on success: a driver must treat "no reply within a
//! grace period" as "accepted" and confirm through QMP events.

use serde::Serialize;

use crate::Empty;

open_enum! {
    /// How [`GuestShutdown`] stops the guest.
    pub enum ShutdownMode {
        /// Power off (the agent's default).
        Powerdown = "powerdown",
        /// Halt.
        Halt = "halt",
        /// Reboot.
        Reboot = "reboot",
    }
}

/// `guest-shutdown`. No reply on success.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct GuestShutdown {
    /// Defaults to power-off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ShutdownMode>,
}
command!(
    GuestShutdown,
    "guest-shutdown",
    Empty,
    SUCCESS_RESPONSE = false
);

/// `guest-suspend-disk` (hibernate). No reply on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestSuspendDisk;
command!(
    GuestSuspendDisk,
    "guest-suspend-disk",
    Empty,
    HAS_ARGUMENTS = false,
    SUCCESS_RESPONSE = false
);

/// `guest-suspend-ram`. No reply on success. Check QMP `query-current-machine`
/// `wakeup-suspend-support` first, or the guest may never wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestSuspendRam;
command!(
    GuestSuspendRam,
    "guest-suspend-ram",
    Empty,
    HAS_ARGUMENTS = false,
    SUCCESS_RESPONSE = false
);

/// `guest-suspend-hybrid`. No reply on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestSuspendHybrid;
command!(
    GuestSuspendHybrid,
    "guest-suspend-hybrid",
    Empty,
    HAS_ARGUMENTS = false,
    SUCCESS_RESPONSE = false
);
