//! Host name, OS information, users, load and passwords.

use serde::{Deserialize, Serialize};

use crate::Empty;
use crate::base64::Base64Bytes;

/// `guest-get-host-name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetHostName;
command!(
    GuestGetHostName,
    "guest-get-host-name",
    GuestHostName,
    HAS_ARGUMENTS = false
);

/// The reply to [`GuestGetHostName`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestHostName {
    /// The guest's host name.
    pub host_name: String,
}

/// `guest-get-osinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetOsinfo;
command!(
    GuestGetOsinfo,
    "guest-get-osinfo",
    GuestOsInfo,
    HAS_ARGUMENTS = false
);

/// The reply to [`GuestGetOsinfo`]; every member is optional (os-release may lack them).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct GuestOsInfo {
    /// `uname -r`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
    /// `uname -v`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_version: Option<String>,
    /// `uname -m`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// os-release `ID` (`"debian"`, `"mswindows"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// os-release `NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// os-release `PRETTY_NAME`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
    /// os-release `VERSION`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// os-release `VERSION_ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// os-release `VARIANT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// os-release `VARIANT_ID`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant_id: Option<String>,
}

impl GuestOsInfo {
    /// True for a Windows guest (qemu-ga reports `id` `"mswindows"` there).
    pub fn is_windows(&self) -> bool {
        self.id.as_deref() == Some("mswindows")
    }
}

/// `guest-get-users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetUsers;
command!(
    GuestGetUsers,
    "guest-get-users",
    Vec<GuestUser>,
    HAS_ARGUMENTS = false
);

/// A logged-in user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestUser {
    /// User name.
    pub user: String,
    /// Login time, seconds since the epoch (fractional).
    pub login_time: f64,
    /// Windows domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

/// `guest-get-load` (10.0+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetLoad;
command!(
    GuestGetLoad,
    "guest-get-load",
    GuestLoadAverage,
    HAS_ARGUMENTS = false
);

/// The reply to [`GuestGetLoad`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GuestLoadAverage {
    /// One-minute load.
    pub load1m: f64,
    /// Five-minute load.
    pub load5m: f64,
    /// Fifteen-minute load.
    pub load15m: f64,
}

/// `guest-set-user-password`. The password always travels base64-encoded, crypted or not;
/// the agent rejects one containing a newline. Destructive on the machine running the agent.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct GuestSetUserPassword {
    /// Account name.
    pub username: String,
    /// Plain password, or a crypt(3) hash when `crypted`.
    pub password: Base64Bytes,
    /// Whether `password` is already hashed.
    pub crypted: bool,
}
command!(GuestSetUserPassword, "guest-set-user-password", Empty);

impl std::fmt::Debug for GuestSetUserPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestSetUserPassword")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("crypted", &self.crypted)
            .finish()
    }
}
