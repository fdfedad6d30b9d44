//! Sans-IO core of libvirt's RPC protocol, the one `libvirtd`/`virtqemud` serve on
//! `/run/libvirt/libvirt-sock`, without the libvirt C library.
//!
//! This crate turns calls into bytes and bytes into replies and events. It performs no IO and
//! reads no clock: the caller owns the socket and passes the time in (a tokio driver lives in
//! `qga-client`; a blocking loop works just as well). It provides:
//!
//! - [`xdr`]: an XDR encoder and a bounded, borrowing decoder. Every length from the peer is
//!   checked against the limit of its field in the `.x` files and against the bytes left
//!   before anything is allocated.
//! - [`packet`] and [`codec`]: the 4-byte length (which counts itself), the 24-byte header,
//!   and a streaming [`PacketDecoder`] that never holds more than one packet of at most the
//!   configured size and recovers from bad lengths.
//! - [`Call`]: one type per procedure, with typed arguments and reply, for the `remote`
//!   program ([`remote::connect`], [`remote::domain`], [`remote::guest`], [`remote::event`])
//!   and the `qemu` program ([`qemu::QemuDomainAgentCommand`]).
//! - [`LibvirtError`]: `remote_error` with the codes of `virterror.h` and predicates such as
//!   [`LibvirtError::is_agent_unavailable`].
//! - [`Connection`]: a state machine in the style of quinn-proto that assigns serials, routes
//!   replies, bounds the calls in flight, answers keepalive pings, sends its own and declares
//!   the server dead after the configured number of unanswered ones.
//!
//! Everything the server sends is treated as untrusted: no input makes this crate panic or
//! buffer more than its limits.
//!
//! It does **not** do: sockets or TLS, SASL authentication (only `none` and polkit, which is
//! what a local UNIX socket uses), streams (`VIR_NET_STREAM` data is reported as unexpected),
//! file-descriptor passing, or procedures beyond the ones the project needs (any other can be
//! sent with [`Connection::start_raw_call`] and decoded with [`xdr::Decoder`]).
//!
//! # Example
//!
//! Open a connection the way libvirt's own client does, and read a reply:
//!
//! ```
//! use std::time::Instant;
//! use virt_proto::remote::connect::{ConnectOpen, ConnectSupportsFeature};
//! use virt_proto::{Config, Connection, Event};
//!
//! let now = Instant::now();
//! let mut conn = Connection::new(Config::default(), now);
//!
//! // Probe keepalive support, then open the hypervisor URI.
//! let probe = conn.start_call(now, &ConnectSupportsFeature::KEEPALIVE).unwrap();
//! let open = conn.start_call(now, &ConnectOpen::new("qemu:///system")).unwrap();
//! let first = conn.poll_transmit().unwrap(); // write these to the socket, in order
//! let second = conn.poll_transmit().unwrap();
//! assert_eq!(&second[..4], [0, 0, 0, 56]); // CONNECT_OPEN is 56 bytes long
//! assert_eq!(first.len(), 32);
//!
//! // The server answers both (bytes as read from the socket, in any split).
//! let replies: &[u8] = &[
//!     0, 0, 0, 32, 0x20, 0, 0x80, 0x86, 0, 0, 0, 1, 0, 0, 0, 60, // SUPPORTS_FEATURE
//!     0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, // reply, serial 1, ok: supported
//!     0, 0, 0, 28, 0x20, 0, 0x80, 0x86, 0, 0, 0, 1, 0, 0, 0, 1, // CONNECT_OPEN
//!     0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, // reply, serial 2, ok, no payload
//! ];
//! conn.handle_input(now, &replies[..10]);
//! conn.handle_input(now, &replies[10..]);
//!
//! let Some(Event::Reply(reply)) = conn.poll_event() else { panic!() };
//! assert_eq!(reply.serial, probe);
//! if reply.decode::<ConnectSupportsFeature>().unwrap().0 {
//!     conn.enable_keepalive(); // pings every 5 s of silence from now on
//! }
//! let Some(Event::Reply(reply)) = conn.poll_event() else { panic!() };
//! assert_eq!(reply.serial, open);
//! reply.decode::<ConnectOpen>().unwrap();
//! assert!(conn.poll_timeout().is_some()); // the next keepalive deadline
//! ```
//!
//! # Compared with other implementations
//!
//! - [go-libvirt](https://github.com/digitalocean/go-libvirt) (pure Go) generates its types
//!   from the `.x` files and decodes with reflection; its reader goroutine allocates each
//!   packet's buffer from the length word without an upper bound (`socket.listen`), owns the
//!   socket, drops replies for unknown serials silently and neither sends nor answers
//!   keepalive messages.
//! - The `libvirt-rpc` crate (tokio-core 0.1, xdr-codec) is tied to its own IO stack and
//!   decodes into owned values through `io::Read` without per-field limits; it has not been
//!   updated for the current protocol.
//!
//! This crate instead decodes from borrowed slices with the `.x` limits checked before any
//! allocation, caps the packet size before reading the body, keeps IO and time outside (so
//! the same code runs under tokio, in a blocking loop and in tests with synthetic
//! `Instant`s), reports every unexpected packet as a typed [`ProtocolError`], and implements
//! libvirt's keepalive timer.
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod call;
pub mod codec;
pub mod connection;
pub mod error;
pub mod keepalive;
pub mod packet;
pub mod qemu;
pub mod remote;
pub mod types;
pub mod xdr;

#[cfg(fuzzing)]
pub mod fuzz;

pub use call::Call;
pub use codec::{FrameError, PacketDecoder};
pub use connection::{
    CallError, CloseReason, Config, Connection, Event, KeepaliveConfig, ProtocolError, Reply,
    ReplyError, Serial,
};
pub use error::{ErrorCode, ErrorDomain, ErrorLevel, LibvirtError};
pub use packet::{Header, MessageType, Packet, Status};
pub use remote::event::DomainEvent;
pub use types::{Domain, TypedParam, TypedValue, Uuid};
