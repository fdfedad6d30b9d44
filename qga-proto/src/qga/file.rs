//! Guest file handles. Handles belong to the agent, not the connection, and are lost when the
//! agent restarts. `guest-file-read` takes at most [`MAX_READ_COUNT`] bytes per call.

use serde::{Deserialize, Serialize};

use crate::Empty;
use crate::base64::{Base64Bytes, Base64Slice};

/// The largest `count` qemu-ga accepts for one `guest-file-read` (48 MiB).
pub const MAX_READ_COUNT: u64 = 48 * 1024 * 1024;

/// `guest-file-open`: returns a handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestFileOpen {
    /// Path in the guest.
    pub path: String,
    /// fopen-style mode (`"r"` by default; `"w"`, `"a"`, `"r+"`, with optional `b`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}
command!(GuestFileOpen, "guest-file-open", i64);

/// `guest-file-close`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestFileClose {
    /// Handle from [`GuestFileOpen`].
    pub handle: i64,
}
command!(GuestFileClose, "guest-file-close", Empty);

/// `guest-file-read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestFileRead {
    /// Handle from [`GuestFileOpen`].
    pub handle: i64,
    /// Bytes to read (agent default 4096, at most [`MAX_READ_COUNT`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}
command!(GuestFileRead, "guest-file-read", GuestFileReadResult);

/// The reply to [`GuestFileRead`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestFileReadResult {
    /// Bytes read.
    pub count: u64,
    /// The data, decoded.
    pub buf_b64: Base64Bytes,
    /// True only when this read hit the end of the file; reading exactly the rest of a file
    /// returns false, and the next read returns 0 bytes with `eof` true.
    pub eof: bool,
}

/// `guest-file-write`. Borrows the data and encodes it while the request is serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestFileWrite<'a> {
    /// Handle from [`GuestFileOpen`].
    pub handle: i64,
    /// The data.
    pub buf_b64: Base64Slice<'a>,
    /// Bytes of `buf_b64` to write (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}
command!(GuestFileWrite<'_>, "guest-file-write", GuestFileWriteResult);

impl<'a> GuestFileWrite<'a> {
    /// Writes all of `data` to `handle`.
    pub fn new(handle: i64, data: &'a [u8]) -> Self {
        Self {
            handle,
            buf_b64: Base64Slice(data),
            count: None,
        }
    }
}

/// The reply to [`GuestFileWrite`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFileWriteResult {
    /// Bytes written.
    pub count: u64,
    /// End of file reached.
    #[serde(default)]
    pub eof: bool,
}

open_enum! {
    /// Origin of a [`GuestFileSeek`]. Sent as a name (agents since 2.6).
    pub enum Whence {
        /// From the start.
        Set = "set",
        /// From the current position.
        Cur = "cur",
        /// From the end.
        End = "end",
    }
}

/// `guest-file-seek`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestFileSeek {
    /// Handle from [`GuestFileOpen`].
    pub handle: i64,
    /// Offset from `whence`.
    pub offset: i64,
    /// Origin.
    pub whence: Whence,
}
command!(GuestFileSeek, "guest-file-seek", GuestFileSeekResult);

/// The reply to [`GuestFileSeek`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFileSeekResult {
    /// New position.
    pub position: i64,
    /// At end of file.
    #[serde(default)]
    pub eof: bool,
}

/// `guest-file-flush`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestFileFlush {
    /// Handle from [`GuestFileOpen`].
    pub handle: i64,
}
command!(GuestFileFlush, "guest-file-flush", Empty);
