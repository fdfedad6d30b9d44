//! What a [`super::Connection`] reports: events, reply errors, call errors.

use bytes::Bytes;

use crate::call::Call;
use crate::codec::FrameError;
use crate::error::LibvirtError;
use crate::packet::{EncodeError, Header, Status};
use crate::remote::event::DomainEvent;
use crate::xdr::XdrError;

/// The serial number of a call, unique among the calls in flight on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(pub u32);

impl std::fmt::Display for Serial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Something the caller should act on, from [`super::Connection::poll_event`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A call finished: its reply, its error, or why it never will get one.
    Reply(Reply),
    /// An event from the server (only after registering for it).
    DomainEvent(DomainEvent),
    /// The server sent something this connection did not expect. The connection stays open;
    /// see [`ProtocolError`].
    ProtocolError(ProtocolError),
    /// The server stopped answering keepalive pings: the connection is dead and closed, and
    /// every call in flight has been failed with [`ReplyError::Closed`].
    KeepaliveTimeout,
    /// The connection closed for another reason; every call in flight has been failed.
    Closed(CloseReason),
}

/// The outcome of one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The call's serial.
    pub serial: Serial,
    /// The call's program.
    pub program: u32,
    /// The call's procedure.
    pub procedure: i32,
    /// The reply payload (XDR, undecoded), or the error.
    pub result: Result<Bytes, ReplyError>,
}

impl Reply {
    /// Decodes the reply as the reply of `C`.
    ///
    /// # Errors
    ///
    /// The call's [`ReplyError`], [`ReplyError::WrongProcedure`] if this is the reply of
    /// another procedure, or [`ReplyError::Malformed`] if the payload does not decode.
    pub fn decode<C: Call>(&self) -> Result<C::Reply, ReplyError> {
        if (self.program, self.procedure) != (C::PROGRAM, C::PROCEDURE) {
            return Err(ReplyError::WrongProcedure {
                expected: C::PROCEDURE,
                found: self.procedure,
            });
        }
        let payload = self.result.as_ref().map_err(Clone::clone)?;
        C::decode_reply(payload).map_err(ReplyError::Malformed)
    }
}

/// Why a call has no (usable) reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// libvirt returned an error.
    #[error("the call failed")]
    Libvirt(#[source] Box<LibvirtError>),
    /// The reply (or the error in it) does not decode.
    #[error("malformed reply")]
    Malformed(#[source] XdrError),
    /// The reply was larger than the connection's packet limit and was discarded.
    #[error("reply of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The reply's length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The reply's status is neither OK nor ERROR.
    #[error("reply with unexpected status {0:?}")]
    UnexpectedStatus(Status),
    /// The reply passes file descriptors, which this crate cannot receive.
    #[error("reply passes {count} file descriptors, which are not supported")]
    FdsNotSupported {
        /// The number announced.
        count: u32,
    },
    /// The server answered with another procedure, or [`Reply::decode`] was asked for the
    /// wrong one.
    #[error("reply is for procedure {found}, not {expected}")]
    WrongProcedure {
        /// The procedure expected.
        expected: i32,
        /// The procedure found.
        found: i32,
    },
    /// No reply came before the call's deadline. A late reply will be dropped.
    #[error("no reply before the deadline")]
    TimedOut,
    /// The connection closed first.
    #[error("connection closed before the reply")]
    Closed(#[source] CloseReason),
}

impl ReplyError {
    /// The libvirt error, if the server returned one.
    #[must_use]
    pub fn libvirt(&self) -> Option<&LibvirtError> {
        match self {
            Self::Libvirt(e) => Some(e.as_ref()),
            _ => None,
        }
    }

    /// The call timed out, here or inside libvirt.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::TimedOut) || self.libvirt().is_some_and(LibvirtError::is_timeout)
    }

    /// See [`LibvirtError::is_agent_unavailable`].
    #[must_use]
    pub fn is_agent_unavailable(&self) -> bool {
        self.libvirt()
            .is_some_and(LibvirtError::is_agent_unavailable)
    }

    /// See [`LibvirtError::is_no_domain`].
    #[must_use]
    pub fn is_no_domain(&self) -> bool {
        self.libvirt().is_some_and(LibvirtError::is_no_domain)
    }

    /// See [`LibvirtError::is_not_running`].
    #[must_use]
    pub fn is_not_running(&self) -> bool {
        self.libvirt().is_some_and(LibvirtError::is_not_running)
    }

    /// The connection is gone (closed, or dead after a keepalive timeout).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

/// Why [`super::Connection::start_call`] refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The connection is closed.
    #[error("connection is closed")]
    Closed(#[source] CloseReason),
    /// As many calls as allowed are waiting for replies.
    #[error("{limit} calls already in flight")]
    TooManyCalls {
        /// The configured limit.
        limit: usize,
    },
    /// The call could not be encoded.
    #[error("cannot encode the call")]
    Encode(#[from] EncodeError),
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseReason {
    /// No packet arrived for `(count + 1) * interval` while keepalive was on.
    #[error("keepalive timeout")]
    KeepaliveTimeout,
    /// The peer closed the stream between packets.
    #[error("connection closed by the peer")]
    Eof,
    /// The peer closed the stream in the middle of a packet.
    #[error("connection closed by the peer in the middle of a packet")]
    Truncated,
    /// The byte stream cannot be framed any more.
    #[error("framing error")]
    Framing(#[source] FrameError),
    /// [`super::Connection::close`] was called.
    #[error("connection closed locally")]
    Local,
}

/// A packet this client did not expect. Reported, then dropped; the connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A reply whose serial matches no call in flight.
    #[error("reply with unknown serial {serial} (procedure {procedure})")]
    UnknownSerial {
        /// The serial.
        serial: u32,
        /// The reply's procedure.
        procedure: i32,
    },
    /// A packet of a type or program a client never receives (a call, stream data for a call
    /// without a stream, an unknown program or type, a wrong program version).
    #[error("unexpected packet {header:?}")]
    UnexpectedPacket {
        /// Its header.
        header: Header,
    },
    /// An event that does not match its definition.
    #[error("malformed event {procedure} of program {program:#x}")]
    MalformedEvent {
        /// The program.
        program: u32,
        /// The event's procedure number.
        procedure: i32,
        /// Why it did not decode.
        #[source]
        error: XdrError,
    },
    /// A packet over the size limit that answers no call in flight.
    #[error("oversized packet")]
    Oversized(#[source] FrameError),
}
