//! QMP commands.

use serde::{Deserialize, Serialize};

use crate::Empty;
use crate::message::QemuVersion;

/// `qmp_capabilities`: leave negotiation mode, optionally enabling capabilities (`"oob"`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct QmpCapabilities {
    /// Capabilities to enable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable: Option<Vec<String>>,
}
command!(QmpCapabilities, "qmp_capabilities", Empty);

/// `query-version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueryVersion;
command!(
    QueryVersion,
    "query-version",
    QemuVersion,
    HAS_ARGUMENTS = false
);

/// `query-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueryStatus;
command!(
    QueryStatus,
    "query-status",
    StatusInfo,
    HAS_ARGUMENTS = false
);

open_enum! {
    /// The VM run state.
    pub enum RunState {
        /// Debugger.
        Debug = "debug",
        /// Waiting for an incoming migration.
        Inmigrate = "inmigrate",
        /// Internal error.
        InternalError = "internal-error",
        /// I/O error.
        IoError = "io-error",
        /// Paused.
        Paused = "paused",
        /// Migration finished.
        Postmigrate = "postmigrate",
        /// Before the first start.
        Prelaunch = "prelaunch",
        /// Finishing a migration.
        FinishMigrate = "finish-migrate",
        /// Restoring a snapshot.
        RestoreVm = "restore-vm",
        /// Running.
        Running = "running",
        /// Saving a snapshot.
        SaveVm = "save-vm",
        /// Shut down (with `-no-shutdown`).
        Shutdown = "shutdown",
        /// Suspended.
        Suspended = "suspended",
        /// Watchdog fired.
        Watchdog = "watchdog",
        /// Guest panicked.
        GuestPanicked = "guest-panicked",
        /// Colo.
        Colo = "colo",
    }
}

/// The reply to [`QueryStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// Whether vCPUs run.
    pub running: bool,
    /// Detailed state.
    pub status: RunState,
    /// Dropped after 7.2; ignored when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub singlestep: Option<bool>,
}

/// `query-commands`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueryCommands;
command!(
    QueryCommands,
    "query-commands",
    Vec<CommandInfo>,
    HAS_ARGUMENTS = false
);

/// One entry of [`QueryCommands`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandInfo {
    /// Command name.
    pub name: String,
}

/// `query-chardev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QueryChardev;
command!(
    QueryChardev,
    "query-chardev",
    Vec<ChardevInfo>,
    HAS_ARGUMENTS = false
);

/// One character device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChardevInfo {
    /// Chardev id.
    pub label: String,
    /// Backend description (`"unix:/path,server=on"`, `"disconnected:..."`).
    pub filename: String,
    /// Whether the frontend (for a virtserialport: the guest side) has it open.
    #[serde(default)]
    pub frontend_open: bool,
}

/// `stop`: pause the vCPUs (emits `STOP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stop;
command!(Stop, "stop", Empty, HAS_ARGUMENTS = false);

/// `cont`: resume the vCPUs (emits `RESUME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cont;
command!(Cont, "cont", Empty, HAS_ARGUMENTS = false);

/// `system_powerdown`: ACPI power button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SystemPowerdown;
command!(
    SystemPowerdown,
    "system_powerdown",
    Empty,
    HAS_ARGUMENTS = false
);

/// `system_reset`: hard reset (emits `RESET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SystemReset;
command!(SystemReset, "system_reset", Empty, HAS_ARGUMENTS = false);

/// `quit`: exit QEMU (emits `SHUTDOWN`, replies, then closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quit;
command!(Quit, "quit", Empty, HAS_ARGUMENTS = false);

/// `human-monitor-command`: run an HMP command line; returns its text output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HumanMonitorCommand {
    /// The HMP command line.
    pub command_line: String,
    /// CPU to use as the default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_index: Option<i64>,
}
command!(HumanMonitorCommand, "human-monitor-command", String);
