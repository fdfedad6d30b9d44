//! The keepalive program (`virkeepaliveprotocol.x`): `KEEPALIVE_PROGRAM` 0x6b656570
//! ("keep"), version 1, two procedures, both sent as `VIR_NET_MESSAGE` with serial 0, status
//! OK and no payload.
//!
//! Either side may send [`PROC_PING`]; the other answers [`PROC_PONG`] at once. libvirt's
//! timer (`src/rpc/virkeepalive.c`) is what [`crate::Connection`] reproduces: any packet from
//! the peer restarts the interval; when an interval passes in silence a ping is sent and the
//! remaining count drops by one; when it is already zero the connection is declared dead. With
//! interval `i` and count `c` a silent peer is detected after `(c + 1) * i`.

use bytes::Bytes;

use crate::packet::{
    Header, KEEPALIVE_PROGRAM, KEEPALIVE_PROTOCOL_VERSION, MAX_PACKET_LEN, MessageType, Status,
    encode_packet,
};

/// `KEEPALIVE_PROC_PING`.
pub const PROC_PING: i32 = 1;
/// `KEEPALIVE_PROC_PONG`.
pub const PROC_PONG: i32 = 2;

/// The header of a keepalive message with `procedure`.
#[must_use]
pub fn header(procedure: i32) -> Header {
    Header {
        program: KEEPALIVE_PROGRAM,
        version: KEEPALIVE_PROTOCOL_VERSION,
        procedure,
        kind: MessageType::Message,
        serial: 0,
        status: Status::Ok,
    }
}

fn encode(procedure: i32) -> Bytes {
    // 28 bytes can never exceed the limit.
    match encode_packet(&header(procedure), &[], MAX_PACKET_LEN) {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    }
}

/// The 28-byte PING packet.
#[must_use]
pub fn ping() -> Bytes {
    encode(PROC_PING)
}

/// The 28-byte PONG packet.
#[must_use]
pub fn pong() -> Bytes {
    encode(PROC_PONG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_and_pong_bytes() {
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 28,
            0x6b, 0x65, 0x65, 0x70, // "keep"
            0, 0, 0, 1,
            0, 0, 0, 1,             // PING
            0, 0, 0, 2,             // VIR_NET_MESSAGE
            0, 0, 0, 0,
            0, 0, 0, 0,
        ];
        assert_eq!(&ping()[..], expected);
        let p = pong();
        assert_eq!(p.len(), 28);
        assert_eq!(p[15], 2);
    }
}
