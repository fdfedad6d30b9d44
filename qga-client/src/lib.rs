//! Async client for the QEMU guest agent (QGA) and the QEMU monitor (QMP), on tokio.
//!
//! [`Client`] talks to qemu-ga through the UNIX socket QEMU exposes for the guest's
//! virtio-serial port (or any `AsyncRead + AsyncWrite` stream). It:
//!
//! - synchronises with `guest-sync-delimited` when it connects and again after anything that
//!   leaves the channel in doubt — a timeout, a dropped call, a reply it could not read, a
//!   command that sends no reply — discarding stale replies of any size;
//! - puts a deadline on every call: a default per command (5 s; 60 s for fsfreeze and fstrim),
//!   configurable per command name ([`ClientBuilder::timeout`] sets them all at once), a
//!   per-call override ([`Client::call_timeout`]), and one deadline for a whole job of calls
//!   ([`Client::with_deadline`]: a handle whose every call, helpers included, ends by it);
//! - serialises calls (qemu-ga answers one at a time) while many tasks share one cloned client;
//! - reconnects by itself, when it was created from a path, after the agent closed the socket;
//! - never panics on what the guest sends and never buffers more than the configured maximum
//!   message size.
//!
//! With the `libvirt` feature, [`libvirt`] reaches guests through libvirtd's RPC socket instead
//! (libvirt owns the agent's socket on a libvirt host): one shared
//! [`LibvirtConnection`](libvirt::LibvirtConnection) for every guest, the same [`Client`] and
//! helpers on top, libvirt's dedicated calls where it has them (they do not taint the domain).
//!
//! Helpers cover the common jobs: [`Client::exec`] (guest-exec plus polling), chunked file
//! transfer with progress and read-back verification ([`Client::write_file`],
//! [`Client::read_file`]), [`Client::set_user_password`], [`Client::fsfreeze`] with a guard that
//! thaws, and [`Client::shutdown`]. [`QmpClient`] speaks QMP with id-routed replies and an event
//! stream. [`AgentPresence`] follows QMP `VSERPORT_CHANGE` to tell at once whether the guest
//! agent is running, and [`call_if_present`] fails fast when it is not.
//!
//! # Cancel safety
//!
//! Dropping a call's future (for example in `tokio::select!`) is safe: the client notes that
//! the channel is out of step and the next call resynchronises first. The same happens after a
//! timeout. A request that was fully sent may still run in the guest.
//!
//! # Deadlines
//!
//! Each call has its own timeout. For a job of several calls (a request to a daemon that
//! writes a file, runs a program and reads a result), give the job one deadline instead of
//! dividing what is left between the calls: [`Client::with_deadline`] returns a handle on the
//! same connection on which every call ends by `min(now + its timeout, deadline)`, and
//! [`Error::Timeout`] (or [`Error::ExecTimeout`] for a program still running) tells when it
//! passed.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), qga_client::Error> {
//! use std::time::Duration;
//! use qga_client::{Client, ExecRequest};
//! use tokio::time::Instant;
//!
//! let client = Client::builder()
//!     .timeout(Duration::from_secs(3))
//!     .connect("/run/qemu-server/100.qga")
//!     .await?;
//! client.ping().await?;
//! let info = client.info().await?;
//! println!("agent {} with {} commands", info.version, info.supported_commands.len());
//!
//! // Everything below, the exec polling included, within 10 s in all.
//! let guest = client.with_deadline(Instant::now() + Duration::from_secs(10));
//! guest.write_file("/tmp/hello", b"hello\n").await?;
//! let out = guest.exec(ExecRequest::new("cat").arg("/tmp/hello")).await?;
//! print!("{}", String::from_utf8_lossy(&out.stdout));
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod client;
mod error;
mod exec;
mod file;
mod fsfreeze;
mod helpers;
mod io;
#[cfg(feature = "libvirt")]
pub mod libvirt;
mod presence;
mod qmp;
mod transport;

pub use client::{Client, ClientBuilder, Config};
pub use error::{Error, ProtocolError, Result};
pub use exec::{ExecOutput, ExecRequest, ExitStatus};
pub use file::{DEFAULT_CHUNK, DEFAULT_MAX_READ, FileOptions, FileWriteSummary, ProgressFn};
pub use fsfreeze::FreezeGuard;
pub use presence::{AgentPresence, DEFAULT_AGENT_DEVICE_ID, PresenceState, call_if_present};
pub use qmp::{EventStream, QmpClient};
pub use transport::{Stream, Transport};

/// The protocol crate, re-exported so callers can name command types.
pub use qga_proto as proto;
