//! Routing what the server sends: replies to their calls by serial, events, keepalive, and
//! packets that break the protocol.

use bytes::Bytes;
use std::time::Instant;

use super::*;

impl Connection {
    pub(super) fn handle_oversized(&mut self, len: u32, max: u32, header: Header) {
        let is_reply = matches!(header.kind, MessageType::Reply | MessageType::ReplyWithFds);
        // Only a reply may consume the call's slot (an oversized event or stream packet that
        // happens to carry a serial in flight must not).
        let pending = if is_reply {
            self.pending.remove(&header.serial)
        } else {
            None
        };
        match pending {
            Some(p) => {
                if !p.abandoned {
                    let err = Err(ReplyError::TooLarge { len, max });
                    self.push_reply(header.serial, p.program, p.procedure, err);
                }
            }
            None => {
                let e = FrameError::TooLarge { len, max, header };
                self.push(Event::ProtocolError(ProtocolError::Oversized(e)));
            }
        }
    }

    pub(super) fn handle_packet(&mut self, now: Instant, packet: Packet) {
        self.keepalive.received(now);
        let Packet { header, payload } = packet;
        match header.kind {
            MessageType::Reply => self.handle_reply(header, payload),
            MessageType::ReplyWithFds => {
                let mut payload = payload;
                match payload.get(..4) {
                    Some(&[0, 0, 0, 0]) => {
                        payload.advance(4);
                        self.handle_reply(header, payload);
                    }
                    Some(b) => {
                        let count = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        self.fail_reply(header, ReplyError::FdsNotSupported { count });
                    }
                    None => self.fail_reply(
                        header,
                        ReplyError::Malformed(crate::xdr::XdrError::UnexpectedEnd {
                            offset: 0,
                            needed: 4,
                            remaining: payload.len(),
                        }),
                    ),
                }
            }
            MessageType::Message if header.program == KEEPALIVE_PROGRAM => {
                self.handle_keepalive(header);
            }
            MessageType::Message if DomainEvent::is_event_program(header.program) => {
                let event = DomainEvent::decode(header.program, header.procedure, payload);
                self.push(match event {
                    Ok(e) => Event::DomainEvent(e),
                    Err(error) => Event::ProtocolError(ProtocolError::MalformedEvent {
                        program: header.program,
                        procedure: header.procedure,
                        error,
                    }),
                });
            }
            _ => self.push(Event::ProtocolError(ProtocolError::UnexpectedPacket {
                header,
            })),
        }
    }

    fn handle_keepalive(&mut self, header: Header) {
        if header.version != KEEPALIVE_PROTOCOL_VERSION {
            let e = ProtocolError::UnexpectedPacket { header };
            self.push(Event::ProtocolError(e));
            return;
        }
        // Answer every ping at once; pongs not yet written are merged into one.
        if header.procedure == crate::keepalive::PROC_PING && !self.pong_queued {
            self.transmit.push_back((crate::keepalive::pong(), true));
            self.pong_queued = true;
        }
        // A pong only proves liveness, which `received` already noted; unknown keepalive
        // procedures are ignored, as libvirt does.
    }

    fn fail_reply(&mut self, header: Header, error: ReplyError) {
        match self.pending.remove(&header.serial) {
            Some(p) if !p.abandoned => {
                self.push_reply(header.serial, p.program, p.procedure, Err(error));
            }
            Some(_) => {}
            None => self.unknown_serial(header),
        }
    }

    fn unknown_serial(&mut self, header: Header) {
        let e = ProtocolError::UnknownSerial {
            serial: header.serial,
            procedure: header.procedure,
        };
        self.push(Event::ProtocolError(e));
    }

    fn handle_reply(&mut self, header: Header, payload: Bytes) {
        let Some(p) = self.pending.remove(&header.serial) else {
            return self.unknown_serial(header);
        };
        if p.abandoned {
            return;
        }
        let result = if (header.program, header.procedure) != (p.program, p.procedure) {
            Err(ReplyError::WrongProcedure {
                expected: p.procedure,
                found: header.procedure,
            })
        } else {
            match header.status {
                Status::Ok => Ok(payload),
                Status::Error => match from_slice::<LibvirtError>(&payload) {
                    Ok(e) => Err(ReplyError::Libvirt(Box::new(e))),
                    Err(e) => Err(ReplyError::Malformed(e)),
                },
                other => Err(ReplyError::UnexpectedStatus(other)),
            }
        };
        self.push_reply(header.serial, p.program, p.procedure, result);
    }
}
