//! Filesystem freeze and trim. While frozen, the agent accepts only ping, info, the sync
//! commands, fsfreeze-status and fsfreeze-thaw.

use serde::{Deserialize, Serialize};

open_enum! {
    /// The reply to [`GuestFsfreezeStatus`].
    pub enum FsfreezeStatus {
        /// Not frozen.
        Thawed = "thawed",
        /// Frozen.
        Frozen = "frozen",
    }
}

/// `guest-fsfreeze-status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestFsfreezeStatus;
command!(
    GuestFsfreezeStatus,
    "guest-fsfreeze-status",
    FsfreezeStatus,
    HAS_ARGUMENTS = false
);

/// `guest-fsfreeze-freeze`: freeze every freezable filesystem; returns how many. On failure
/// the agent thaws what it froze.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestFsfreezeFreeze;
command!(
    GuestFsfreezeFreeze,
    "guest-fsfreeze-freeze",
    i64,
    HAS_ARGUMENTS = false,
    LONG_RUNNING = true
);

/// `guest-fsfreeze-freeze-list`: freeze the given mount points (all when absent).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct GuestFsfreezeFreezeList {
    /// Mount points; invalid ones are ignored by the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mountpoints: Option<Vec<String>>,
}
command!(
    GuestFsfreezeFreezeList,
    "guest-fsfreeze-freeze-list",
    i64,
    LONG_RUNNING = true
);

/// `guest-fsfreeze-thaw`: returns how many filesystems were thawed (0 if none was frozen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestFsfreezeThaw;
command!(
    GuestFsfreezeThaw,
    "guest-fsfreeze-thaw",
    i64,
    HAS_ARGUMENTS = false,
    LONG_RUNNING = true
);

/// `guest-fstrim`: discard unused blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestFstrim {
    /// Minimum contiguous free range to discard, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<u64>,
}
command!(
    GuestFstrim,
    "guest-fstrim",
    GuestFilesystemTrimResponse,
    LONG_RUNNING = true
);

/// The reply to [`GuestFstrim`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFilesystemTrimResponse {
    /// One entry per filesystem.
    #[serde(default)]
    pub paths: Vec<GuestFilesystemTrimResult>,
}

/// One filesystem in [`GuestFilesystemTrimResponse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFilesystemTrimResult {
    /// Mount point.
    pub path: String,
    /// Bytes trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trimmed: Option<u64>,
    /// Minimum used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<u64>,
    /// Why this one failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
