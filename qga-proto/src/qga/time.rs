//! Guest clock and time zone.

use serde::{Deserialize, Serialize};

use crate::Empty;

/// `guest-get-time`: nanoseconds since the epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetTime;
command!(GuestGetTime, "guest-get-time", i64, HAS_ARGUMENTS = false);

/// `guest-set-time`: set the clock to `time` (ns since the epoch, UTC), or from the RTC when
/// `time` is absent. Destructive on the machine running the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct GuestSetTime {
    /// New time in nanoseconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<i64>,
}
command!(GuestSetTime, "guest-set-time", Empty);

/// `guest-get-timezone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestGetTimezone;
command!(
    GuestGetTimezone,
    "guest-get-timezone",
    GuestTimezone,
    HAS_ARGUMENTS = false
);

/// The reply to [`GuestGetTimezone`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestTimezone {
    /// Zone name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Seconds east of UTC.
    pub offset: i64,
}
