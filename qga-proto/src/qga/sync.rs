//! Sync, ping and agent information.

use serde::{Deserialize, Serialize};

use crate::Empty;

/// `guest-sync`: echo `id`. A barrier, but only safe for line-splitting clients; prefer
/// [`GuestSyncDelimited`] (see [`crate::sync`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestSync {
    /// The value to echo (an int64 on the agent side).
    pub id: i64,
}
command!(GuestSync, "guest-sync", i64);

/// `guest-sync-delimited`: like [`GuestSync`], with a `0xFF` before the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestSyncDelimited {
    /// The value to echo.
    pub id: i64,
}
command!(GuestSyncDelimited, "guest-sync-delimited", i64);

/// `guest-ping`: liveness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestPing;
command!(GuestPing, "guest-ping", Empty, HAS_ARGUMENTS = false);

/// `guest-info`: agent version and the commands it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestInfo;
command!(
    GuestInfo,
    "guest-info",
    GuestAgentInfo,
    HAS_ARGUMENTS = false
);

/// The reply to [`GuestInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestAgentInfo {
    /// Agent version, such as `"7.2.22"`.
    pub version: String,
    /// Every command the agent knows, enabled or not, in no particular order.
    pub supported_commands: Vec<GuestAgentCommandInfo>,
}

impl GuestAgentInfo {
    /// The entry for `name`, if the agent knows the command.
    pub fn command(&self, name: &str) -> Option<&GuestAgentCommandInfo> {
        self.supported_commands.iter().find(|c| c.name == name)
    }

    /// True if the agent knows `name` and has it enabled.
    pub fn is_enabled(&self, name: &str) -> bool {
        self.command(name).is_some_and(|c| c.enabled)
    }
}

/// One entry of [`GuestAgentInfo::supported_commands`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestAgentCommandInfo {
    /// Wire name.
    pub name: String,
    /// False when blocked, frozen out or unsupported on this platform.
    pub enabled: bool,
    /// False for commands that send no reply on success.
    #[serde(default = "yes")]
    pub success_response: bool,
}

fn yes() -> bool {
    true
}
