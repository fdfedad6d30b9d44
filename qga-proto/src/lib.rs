//! Sans-IO core of the QEMU guest agent (QGA) and QEMU monitor (QMP) protocols.
//!
//! This crate turns bytes into protocol messages and back. It performs no IO and reads no
//! clock: the caller owns the socket, the buffers and the deadlines (see the `qga-client` crate
//! for a tokio driver). It provides:
//!
//! - [`codec::FrameDecoder`]: a streaming splitter that cuts a byte stream into JSON messages the
//!   way QEMU does (bracket balance with string and escape awareness, not newlines), reports the
//!   `0xFF` sync sentinel as its own frame, bounds every message by a configurable size and
//!   resynchronises after garbage or an oversized message without losing the messages after it.
//!   [`codec::QgaCodec`] wraps it as a `tokio_util::codec` decoder/encoder.
//! - [`message`]: requests, replies, errors (with an open set of error classes), the QMP greeting
//!   and QMP events.
//! - [`sync::Handshake`]: the `guest-sync-delimited` handshake as a state machine that ignores
//!   stale replies of any size and accepts only the reply carrying the caller's id.
//! - [`Command`]: one type per command for the whole qemu-ga schema ([`qga`]) and the QMP basics
//!   ([`qmp`]), with typed responses; [`RawCommand`] sends anything else.
//!
//! Everything a guest sends is treated as hostile: no input makes this crate panic, and no input
//! makes it buffer more than the configured maximum message size.
//!
//! # Example
//!
//! ```
//! use bytes::BytesMut;
//! use qga_proto::codec::{Frame, FrameDecoder};
//! use qga_proto::message::Reply;
//! use qga_proto::qga::{GuestExecStatus, ExecStatus};
//! use qga_proto::{Command, encode_request};
//!
//! // Encode a typed request with an id.
//! let mut out = BytesMut::new();
//! encode_request(&GuestExecStatus { pid: 42 }, Some(7), &mut out).unwrap();
//! assert_eq!(&out[..], b"{\"execute\":\"guest-exec-status\",\"arguments\":{\"pid\":42},\"id\":7}\n");
//!
//! // Decode a reply that arrives in two pieces.
//! let mut decoder = FrameDecoder::new();
//! let mut input = BytesMut::from(&b"{\"return\": {\"exitcode\": 0, \"out-da"[..]);
//! assert!(decoder.decode(&mut input).unwrap().is_none());
//! input.extend_from_slice(b"ta\": \"aGkK\", \"exited\": true}, \"id\": 7}\n");
//! let Some(Frame::Message(bytes)) = decoder.decode(&mut input).unwrap() else { panic!() };
//! let reply: Reply<ExecStatus> = Reply::from_slice(&bytes).unwrap();
//! let status = reply.into_result().unwrap();
//! assert_eq!(status.out_data.as_deref(), Some(&b"hi\n"[..]));
//! ```
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[macro_use]
mod macros;

pub mod base64;
pub mod codec;
mod command;
pub mod message;
pub mod qga;
pub mod qmp;
pub mod sync;

#[cfg(fuzzing)]
pub mod fuzz;

pub use command::{
    Command, Empty, RawCommand, encode_oob_request, encode_raw_request, encode_request,
};
