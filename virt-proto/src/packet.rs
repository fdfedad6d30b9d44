//! Packets: the length word, the 24-byte header and the payload (`virnetprotocol.x`).
//!
//! ```text
//! +--------+---------+---------+-----------+--------+----------+----------+----------------+
//! | len    | program | version | procedure | type   | serial   | status   | payload ...    |
//! | u32    | u32     | u32     | i32       | i32    | u32      | i32      | len - 28 bytes |
//! +--------+---------+---------+-----------+--------+----------+----------+----------------+
//! ```
//!
//! The length counts itself, so the smallest packet is 28 bytes. libvirt refuses a length whose
//! remainder after the length word is above `VIR_NET_MESSAGE_MAX` (`virNetMessageDecodeLength`
//! in `src/rpc/virnetmessage.c`), hence [`MAX_PACKET_LEN`].

use bytes::{BufMut, Bytes, BytesMut};

use crate::xdr::{Encoder, XdrEncode, XdrError};

/// `REMOTE_PROGRAM` (`remote_protocol.x`).
pub const REMOTE_PROGRAM: u32 = 0x2000_8086;
/// `REMOTE_PROTOCOL_VERSION`.
pub const REMOTE_PROTOCOL_VERSION: u32 = 1;
/// `QEMU_PROGRAM` (`qemu_protocol.x`).
pub const QEMU_PROGRAM: u32 = 0x2000_8087;
/// `QEMU_PROTOCOL_VERSION`.
pub const QEMU_PROTOCOL_VERSION: u32 = 1;
/// `KEEPALIVE_PROGRAM` (`virkeepaliveprotocol.x`): ASCII "keep".
pub const KEEPALIVE_PROGRAM: u32 = 0x6b65_6570;
/// `KEEPALIVE_PROTOCOL_VERSION`.
pub const KEEPALIVE_PROTOCOL_VERSION: u32 = 1;

/// `VIR_NET_MESSAGE_MAX`: the largest packet after its length word. libvirt 4.x and older used
/// 16 MiB (16777216); current libvirt allows 32 MiB.
pub const VIR_NET_MESSAGE_MAX: u32 = 33_554_432;
/// `VIR_NET_MESSAGE_INITIAL`: libvirt's initial receive buffer (a good first read size).
pub const VIR_NET_MESSAGE_INITIAL: u32 = 65_536;
/// `VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX`: the payload limit of libvirt before 1.2.x; a server
/// that old rejects anything longer.
pub const VIR_NET_MESSAGE_LEGACY_PAYLOAD_MAX: u32 = 262_120;
/// `VIR_NET_MESSAGE_HEADER_MAX`: size of the encoded header.
pub const HEADER_LEN: usize = 24;
/// `VIR_NET_MESSAGE_LEN_MAX`: size of the length word.
pub const LEN_WORD: usize = 4;
/// The smallest valid packet: length word and header, no payload.
pub const MIN_PACKET_LEN: u32 = (LEN_WORD + HEADER_LEN) as u32;
/// The largest packet libvirt accepts, counting the length word.
pub const MAX_PACKET_LEN: u32 = VIR_NET_MESSAGE_MAX + LEN_WORD as u32;
/// `VIR_NET_MESSAGE_STRING_MAX` (for `virNetMessageError` strings).
pub const VIR_NET_MESSAGE_STRING_MAX: u32 = 4_194_304;
/// `VIR_NET_MESSAGE_NUM_FDS_MAX`.
pub const VIR_NET_MESSAGE_NUM_FDS_MAX: u32 = 32;

/// `virNetMessageType`. Values this crate does not know are kept in `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// `VIR_NET_CALL`: client to server, the arguments of a call.
    Call,
    /// `VIR_NET_REPLY`: the reply or error of a call.
    Reply,
    /// `VIR_NET_MESSAGE`: an asynchronous message (events, keepalive).
    Message,
    /// `VIR_NET_STREAM`: stream data.
    Stream,
    /// `VIR_NET_CALL_WITH_FDS`: a call that passes file descriptors.
    CallWithFds,
    /// `VIR_NET_REPLY_WITH_FDS`: a reply that passes file descriptors.
    ReplyWithFds,
    /// `VIR_NET_STREAM_HOLE`: a hole in a sparse stream.
    StreamHole,
    /// Any other value.
    Unknown(i32),
}

impl From<i32> for MessageType {
    fn from(v: i32) -> Self {
        match v {
            0 => Self::Call,
            1 => Self::Reply,
            2 => Self::Message,
            3 => Self::Stream,
            4 => Self::CallWithFds,
            5 => Self::ReplyWithFds,
            6 => Self::StreamHole,
            other => Self::Unknown(other),
        }
    }
}

impl From<MessageType> for i32 {
    fn from(t: MessageType) -> Self {
        match t {
            MessageType::Call => 0,
            MessageType::Reply => 1,
            MessageType::Message => 2,
            MessageType::Stream => 3,
            MessageType::CallWithFds => 4,
            MessageType::ReplyWithFds => 5,
            MessageType::StreamHole => 6,
            MessageType::Unknown(v) => v,
        }
    }
}

/// `virNetMessageStatus`. Values this crate does not know are kept in `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `VIR_NET_OK`.
    Ok,
    /// `VIR_NET_ERROR`: a `remote_error` follows.
    Error,
    /// `VIR_NET_CONTINUE`: more stream data follows.
    Continue,
    /// Any other value.
    Unknown(i32),
}

impl From<i32> for Status {
    fn from(v: i32) -> Self {
        match v {
            0 => Self::Ok,
            1 => Self::Error,
            2 => Self::Continue,
            other => Self::Unknown(other),
        }
    }
}

impl From<Status> for i32 {
    fn from(s: Status) -> Self {
        match s {
            Status::Ok => 0,
            Status::Error => 1,
            Status::Continue => 2,
            Status::Unknown(v) => v,
        }
    }
}

/// `struct virNetMessageHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// `prog`: which program the procedure belongs to.
    pub program: u32,
    /// `vers`: the program's version.
    pub version: u32,
    /// `proc`: the procedure (or event) number within the program.
    pub procedure: i32,
    /// `type`.
    pub kind: MessageType,
    /// `serial`: chosen by the caller for calls, echoed in replies, 0 for events.
    pub serial: u32,
    /// `status`.
    pub status: Status,
}

impl Header {
    /// The header of a call.
    #[must_use]
    pub fn call(program: u32, version: u32, procedure: i32, serial: u32) -> Self {
        Self {
            program,
            version,
            procedure,
            kind: MessageType::Call,
            serial,
            status: Status::Ok,
        }
    }

    /// Decodes the 24 header bytes.
    #[must_use]
    pub fn from_bytes(b: &[u8; HEADER_LEN]) -> Self {
        let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        Self {
            program: u32::from_be_bytes(word(0)),
            version: u32::from_be_bytes(word(4)),
            procedure: i32::from_be_bytes(word(8)),
            kind: MessageType::from(i32::from_be_bytes(word(12))),
            serial: u32::from_be_bytes(word(16)),
            status: Status::from(i32::from_be_bytes(word(20))),
        }
    }

    /// Encodes the header (24 bytes).
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.program.to_be_bytes());
        out[4..8].copy_from_slice(&self.version.to_be_bytes());
        out[8..12].copy_from_slice(&self.procedure.to_be_bytes());
        out[12..16].copy_from_slice(&i32::from(self.kind).to_be_bytes());
        out[16..20].copy_from_slice(&self.serial.to_be_bytes());
        out[20..24].copy_from_slice(&i32::from(self.status).to_be_bytes());
        out
    }
}

/// A whole packet as received: the header and the payload after it.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet {
    /// The header.
    pub header: Header,
    /// The payload (XDR for calls, replies and events; raw bytes for stream data).
    pub payload: Bytes,
}

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Payloads can hold passwords or guest data: show only their size.
        f.debug_struct("Packet")
            .field("header", &self.header)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Packet {
    /// Encodes this packet (length word, header, payload).
    ///
    /// # Errors
    ///
    /// [`EncodeError::TooLarge`] above `max_len` (at most [`MAX_PACKET_LEN`]).
    pub fn encode(&self, max_len: u32) -> Result<Bytes, EncodeError> {
        encode_packet(&self.header, &self.payload[..], max_len)
    }
}

/// An error while building an outgoing packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The arguments do not fit their `.x` definition.
    #[error("cannot encode the arguments")]
    Xdr(#[from] XdrError),
    /// The packet would be larger than the limit.
    #[error("packet of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The packet's length, counting the length word.
        len: u64,
        /// The limit.
        max: u32,
    },
}

/// Encodes a packet whose payload is `args` XDR-encoded, checking the size limit
/// (`max_len`, clamped to [`MAX_PACKET_LEN`]).
///
/// # Errors
///
/// [`EncodeError::Xdr`] if `args` breaks a limit of its definition,
/// [`EncodeError::TooLarge`] if the packet would exceed `max_len`.
pub fn encode_with<T: XdrEncode + ?Sized>(
    header: &Header,
    args: &T,
    max_len: u32,
) -> Result<Bytes, EncodeError> {
    let mut out = BytesMut::with_capacity(64);
    out.put_u32(0);
    out.put_slice(&header.to_bytes());
    args.encode(&mut Encoder::new(&mut out))?;
    finish(out, max_len)
}

/// Encodes a packet with an already-encoded payload.
///
/// # Errors
///
/// [`EncodeError::TooLarge`] if the packet would exceed `max_len`.
pub fn encode_packet(header: &Header, payload: &[u8], max_len: u32) -> Result<Bytes, EncodeError> {
    let mut out = BytesMut::with_capacity(LEN_WORD + HEADER_LEN + payload.len());
    out.put_u32(0);
    out.put_slice(&header.to_bytes());
    out.put_slice(payload);
    finish(out, max_len)
}

fn finish(mut out: BytesMut, max_len: u32) -> Result<Bytes, EncodeError> {
    let max = max_len.min(MAX_PACKET_LEN);
    match u32::try_from(out.len()) {
        Ok(len) if len <= max => {
            out[..LEN_WORD].copy_from_slice(&len.to_be_bytes());
            Ok(out.freeze())
        }
        _ => Err(EncodeError::TooLarge {
            len: out.len() as u64,
            max,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_with_unknown_values() {
        let h = Header {
            program: REMOTE_PROGRAM,
            version: 1,
            procedure: -7,
            kind: MessageType::Unknown(99),
            serial: u32::MAX,
            status: Status::Unknown(-3),
        };
        assert_eq!(Header::from_bytes(&h.to_bytes()), h);
        for v in -1..8 {
            assert_eq!(i32::from(MessageType::from(v)), v);
            assert_eq!(i32::from(Status::from(v)), v);
        }
    }

    #[test]
    fn empty_call_is_28_bytes() {
        let h = Header::call(REMOTE_PROGRAM, 1, 66, 1);
        let p = encode_packet(&h, &[], MAX_PACKET_LEN).unwrap();
        assert_eq!(
            &p[..],
            [
                0, 0, 0, 28, 0x20, 0, 0x80, 0x86, 0, 0, 0, 1, 0, 0, 0, 66, 0, 0, 0, 0, 0, 0, 0, 1,
                0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn limit_is_enforced_and_clamped() {
        let h = Header::call(REMOTE_PROGRAM, 1, 1, 1);
        assert_eq!(
            encode_packet(&h, &[0; 8], 32),
            Err(EncodeError::TooLarge { len: 36, max: 32 })
        );
        assert!(encode_packet(&h, &[0; 8], 36).is_ok());
        assert!(matches!(
            encode_packet(&h, &[], u32::MAX),
            Ok(p) if p.len() == 28
        ));
    }
}
