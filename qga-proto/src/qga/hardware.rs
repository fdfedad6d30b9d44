//! vCPUs, memory blocks, devices and CPU statistics.

use serde::{Deserialize, Serialize};

/// `guest-get-vcpus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetVcpus;
command!(
    GuestGetVcpus,
    "guest-get-vcpus",
    Vec<GuestLogicalProcessor>,
    HAS_ARGUMENTS = false
);

/// One logical CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestLogicalProcessor {
    /// CPU number.
    pub logical_id: i64,
    /// Online now.
    pub online: bool,
    /// Whether it can be taken offline (only in replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_offline: Option<bool>,
}

/// `guest-set-vcpus`: returns the length of the leading part of `vcpus` that was applied.
/// Destructive on the machine running the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestSetVcpus {
    /// Desired states.
    pub vcpus: Vec<GuestLogicalProcessor>,
}
command!(GuestSetVcpus, "guest-set-vcpus", i64);

/// `guest-get-memory-blocks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetMemoryBlocks;
command!(
    GuestGetMemoryBlocks,
    "guest-get-memory-blocks",
    Vec<GuestMemoryBlock>,
    HAS_ARGUMENTS = false
);

/// One memory block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestMemoryBlock {
    /// Block index.
    pub phys_index: u64,
    /// Online now.
    pub online: bool,
    /// Whether it can be taken offline (only in replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub can_offline: Option<bool>,
}

/// `guest-set-memory-blocks`. Destructive on the machine running the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestSetMemoryBlocks {
    /// Desired states.
    pub mem_blks: Vec<GuestMemoryBlock>,
}
command!(
    GuestSetMemoryBlocks,
    "guest-set-memory-blocks",
    Vec<GuestMemoryBlockResponse>
);

open_enum! {
    /// Outcome for one block of [`GuestSetMemoryBlocks`].
    pub enum GuestMemoryBlockResponseType {
        /// Applied.
        Success = "success",
        /// No such block.
        NotFound = "not-found",
        /// Not supported.
        OperationNotSupported = "operation-not-supported",
        /// Failed; see `error_code`.
        OperationFailed = "operation-failed",
    }
}

/// One entry of the [`GuestSetMemoryBlocks`] reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestMemoryBlockResponse {
    /// Block index.
    pub phys_index: u64,
    /// Outcome.
    pub response: GuestMemoryBlockResponseType,
    /// errno when the operation failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
}

/// `guest-get-memory-block-info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetMemoryBlockInfo;
command!(
    GuestGetMemoryBlockInfo,
    "guest-get-memory-block-info",
    GuestMemoryBlockInfo,
    HAS_ARGUMENTS = false
);

/// The reply to [`GuestGetMemoryBlockInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestMemoryBlockInfo {
    /// Block size in bytes.
    pub size: u64,
}

/// `guest-get-devices` (Windows; listed but disabled on Linux 7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetDevices;
command!(
    GuestGetDevices,
    "guest-get-devices",
    Vec<GuestDeviceInfo>,
    HAS_ARGUMENTS = false
);

/// One device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestDeviceInfo {
    /// Driver name.
    pub driver_name: String,
    /// Driver date, ns since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_date: Option<i64>,
    /// Driver version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// Device id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<GuestDeviceId>,
}

/// Device id; `type` is `"pci"` today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestDeviceId {
    /// Id kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// PCI vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor_id: Option<u16>,
    /// PCI device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<u16>,
}

/// `guest-get-cpustats` (7.1+, Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetCpustats;
command!(
    GuestGetCpustats,
    "guest-get-cpustats",
    Vec<GuestCpuStats>,
    HAS_ARGUMENTS = false
);

/// Counters of one CPU (milliseconds, per the schema). `type` is `"linux"` today; members
/// of other kinds are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestCpuStats {
    /// Kind of statistics.
    #[serde(rename = "type")]
    pub kind: String,
    /// CPU number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<i64>,
    /// User time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<u64>,
    /// Niced user time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nice: Option<u64>,
    /// System time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<u64>,
    /// Idle time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<u64>,
    /// I/O wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iowait: Option<u64>,
    /// Interrupts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irq: Option<u64>,
    /// Soft interrupts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softirq: Option<u64>,
    /// Stolen time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steal: Option<u64>,
    /// Guest time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<u64>,
    /// Niced guest time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guestnice: Option<u64>,
}
