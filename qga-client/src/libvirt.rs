//! The libvirt transport: guests reached through libvirtd (or the modular `virtqemud`) over
//! its RPC socket, in pure Rust (`virt-proto`), without the libvirt C library.
//!
//! On a libvirt host, libvirt owns each guest's agent channel for the guest's whole life, and
//! QEMU serves one client per channel: a second client connecting directly is not served, and
//! when libvirt's connection drops it steals the agent from libvirt. Going through libvirt is
//! the way to share the agent.
//!
//! A [`LibvirtConnection`] is one connection to the daemon, shared by every guest: calls of
//! any number of [`Client`](crate::Client)s are multiplexed on it by serial. It
//!
//! - authenticates as a local UNIX socket does (`none`, or polkit, which grants root) and
//!   opens `qemu:///system`;
//! - answers the daemon's keepalive pings and sends its own when idle, and reconnects with
//!   capped exponential backoff when the daemon restarts (calls made meanwhile wait for the
//!   new connection within their deadline);
//! - follows the agent lifecycle event (`VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE`): a call to a
//!   guest whose agent is known to be down fails at once with
//!   [`Error::NotConnected`](crate::Error::NotConnected), as QMP presence does, and a call in
//!   flight when the agent goes away ends with it too;
//! - runs one agent call per guest at a time (libvirt runs them one at a time anyway, holding
//!   one of the daemon's few request slots for each waiting call) and at most
//!   [`LibvirtBuilder::max_calls_in_flight`] in all (libvirtd's `max_client_requests`, 5 by
//!   default); the rest wait on the client side within their deadline.
//!
//! [`ClientBuilder::connect_libvirt`](crate::ClientBuilder::connect_libvirt) (or
//! [`LibvirtConnection::client`]) gives a [`Client`](crate::Client) for one domain, found by
//! name or UUID. The same typed commands and helpers work on it, with the same deadlines; the
//! `guest-sync` handshake is libvirt's job and is skipped.
//!
//! # Dedicated calls and the taint
//!
//! libvirt marks a domain tainted (`custom-ga-command`, logged) the first time
//! `virDomainQemuAgentCommand` sends it a raw agent command. Typed commands that libvirt has
//! an API for use that API instead and do not taint:
//!
//! | command | libvirt call |
//! |---|---|
//! | `guest-ping` | `DOMAIN_GET_TIME` (any answer of the agent proves it is there) |
//! | `guest-get-time`, `guest-set-time` | `DOMAIN_GET_TIME`, `DOMAIN_SET_TIME` |
//! | `guest-set-user-password` | `DOMAIN_SET_USER_PASSWORD` |
//! | `guest-get-osinfo`, `-host-name`, `-users`, `-timezone`, `-fsinfo` | `DOMAIN_GET_GUEST_INFO` |
//! | `guest-network-get-interfaces` | `DOMAIN_INTERFACE_ADDRESSES` (source agent) |
//! | `guest-fsfreeze-freeze(-list)`, `guest-fsfreeze-thaw` | `DOMAIN_FSFREEZE`, `DOMAIN_FSTHAW` |
//! | `guest-ssh-get/add/remove-authorized-keys` | `DOMAIN_AUTHORIZED_SSH_KEYS_GET/SET` |
//! | `guest-shutdown` (powerdown, reboot) | `DOMAIN_SHUTDOWN_FLAGS`, `DOMAIN_REBOOT` (agent flag) |
//!
//! Everything else, and every [`Client::call_raw`](crate::Client::call_raw), goes as a raw
//! command through `QEMU_DOMAIN_AGENT_COMMAND` and taints: `guest-info`, `guest-exec` and its
//! status, the `guest-file-*` transfer, `guest-fsfreeze-status`, halt and suspend.
//!
//! What the dedicated calls cannot say: interface statistics, the disk addresses under a
//! file system (`disk` is empty), a user's login time below the millisecond. A dedicated call
//! waits for the agent as long as the domain's agent timeout says (libvirt's default: for
//! ever); when the call's deadline passes first it ends with
//! [`Error::Timeout`](crate::Error::Timeout) here, and the next call to that guest waits
//! until libvirt has finished. Raw commands carry the call's deadline to libvirt.
//!
//! # Limits
//!
//! libvirt 9.0 stalls an agent command that does not fit into the socket buffer towards QEMU
//! at once (about 208 KiB, `net.core.wmem_default`): the rest is written only when the next
//! command comes, after libvirt gave up on this one, and the agent then reads the two mixed
//! (measured with the test guest: a 192 KiB file chunk times out one time in three, and the
//! command after it fails with a garbled argument). So every raw command sent here is at
//! most [`MAX_COMMAND_LEN`] bytes of JSON: file writes go in chunks of [`MAX_WRITE_CHUNK`],
//! which is as fast as the direct socket (about 2.4 MB/s with the TCG test guest), and a
//! larger request (a `guest-exec` with a big stdin, a raw command) is refused with
//! [`Error::InvalidArgument`](crate::Error::InvalidArgument) before anything is sent. Replies
//! are strings of at most 4 MiB (`REMOTE_STRING_MAX`): reads use chunks of at most
//! [`MAX_READ_CHUNK`], and a `guest-exec-status` with more than about 3 MiB of captured
//! output cannot come back.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), qga_client::Error> {
//! use qga_client::Client;
//! use qga_client::libvirt::LibvirtConnection;
//!
//! // /run/libvirt/virtqemud-sock, else /run/libvirt/libvirt-sock.
//! let libvirt = LibvirtConnection::builder().connect().await?;
//! for domain in libvirt.running_domains().await? {
//!     println!("{} {} agent {:?}", domain.name, domain.uuid, domain.agent);
//! }
//! let guest = Client::builder()
//!     .connect_libvirt(&libvirt, "instance-00000001")
//!     .await?;
//! guest.ping().await?; // DOMAIN_GET_TIME: no taint
//! guest.set_user_password("root", b"s3cret", false).await?; // DOMAIN_SET_USER_PASSWORD
//! # Ok(()) }
//! ```

mod config;
mod connection;
mod convert;
mod driver;
mod errors;
mod guest;
mod plan;
mod session;
mod state;
mod target;

pub use config::{
    LIBVIRTD_SOCKET, LibvirtBuilder, SOCKET_CANDIDATES, VIRTQEMUD_SOCKET, default_socket,
};
pub use connection::{LibvirtConnection, LibvirtStats};
pub(crate) use guest::transact;
pub use state::{AgentState, DomainRef, DomainStatus};
pub(crate) use target::Target;
pub use virt_proto::KeepaliveConfig;

/// The RPC crate, re-exported so callers can name its types ([`proto::Uuid`],
/// [`proto::LibvirtError`], ...).
pub use virt_proto as proto;

/// Largest request sent as a raw agent command: below the socket buffer that libvirt writes
/// it into (see [Limits](self#limits)).
pub const MAX_COMMAND_LEN: usize = 192 * 1024;

/// Largest file chunk written in one call over libvirt (its base64 and the JSON around it fit
/// in [`MAX_COMMAND_LEN`]).
pub const MAX_WRITE_CHUNK: usize = 128 * 1024;

/// Largest file chunk read in one call over libvirt: the reply is a string of at most 4 MiB
/// (`REMOTE_STRING_MAX`), and the chunk travels as base64 in JSON.
pub const MAX_READ_CHUNK: usize = 3 * 1024 * 1024 - 64 * 1024;
