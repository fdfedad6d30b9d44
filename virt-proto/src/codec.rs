//! Streaming packet framing: bytes in, whole [`Packet`]s out.
//!
//! [`PacketDecoder::decode`] takes bytes from the front of the caller's slice, one packet at a
//! time, and returns `Ok(None)` once the slice is used up without completing a packet. It
//! buffers at most one partial packet, and never more than its limit: the length word is
//! checked before the body is read.
//!
//! Errors are recoverable, because every packet states its own length:
//!
//! - a length below 28 ([`FrameError::TooShort`]) cannot hold a header; the rest of what it
//!   claims (if anything) is skipped;
//! - a length above the limit ([`FrameError::TooLarge`]) is reported once its header has
//!   arrived, so the caller can fail the call it answers; the body is then discarded as it
//!   arrives, never buffered.
//!
//! Either way decoding carries on at the next length word. (A peer that sends a wrong length is
//! usually broken beyond repair, and [`crate::Connection`] closes on `TooShort`; the decoder
//! itself never gets stuck and never panics.)

use bytes::{Buf, BytesMut};

use crate::packet::{HEADER_LEN, Header, LEN_WORD, MAX_PACKET_LEN, MIN_PACKET_LEN, Packet};

/// A framing error. The offending bytes are dropped and decoding can continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length word is smaller than a header.
    #[error("packet length {len} is below the minimum of 28")]
    TooShort {
        /// The length found.
        len: u32,
    },
    /// The length word is above the limit; the packet is being discarded.
    #[error("packet length {len} exceeds the limit of {max}")]
    TooLarge {
        /// The length found.
        len: u32,
        /// The decoder's limit.
        max: u32,
        /// The packet's header, read before the rest was discarded.
        header: Header,
    },
}

#[derive(Debug, Clone)]
enum State {
    /// Reading a packet into `buf` (length word first).
    Packet,
    /// Collecting the header of an oversized packet.
    OversizeHeader {
        len: u32,
        got: usize,
        header: [u8; HEADER_LEN],
    },
    /// Dropping bytes.
    Skip { remaining: usize },
}

/// Splits a byte stream into packets, with a bounded buffer.
#[derive(Debug, Clone)]
pub struct PacketDecoder {
    max_packet_len: u32,
    buf: BytesMut,
    state: State,
}

impl Default for PacketDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketDecoder {
    /// A decoder with libvirt's own limit, [`MAX_PACKET_LEN`] (32 MiB + 4).
    #[must_use]
    pub fn new() -> Self {
        Self::with_max_packet_len(MAX_PACKET_LEN)
    }

    /// A decoder that accepts packets of at most `max` bytes (counting the length word),
    /// clamped to `28..=MAX_PACKET_LEN`.
    #[must_use]
    pub fn with_max_packet_len(max: u32) -> Self {
        Self {
            max_packet_len: max.clamp(MIN_PACKET_LEN, MAX_PACKET_LEN),
            buf: BytesMut::new(),
            state: State::Packet,
        }
    }

    /// The limit on one packet, counting the length word.
    #[must_use]
    pub fn max_packet_len(&self) -> u32 {
        self.max_packet_len
    }

    /// Bytes held for the packet in progress (never more than [`Self::max_packet_len`]).
    #[must_use]
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// True between packets: nothing partial is held or being skipped. At end of stream this
    /// tells a clean close from a truncated packet.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && matches!(self.state, State::Packet)
    }

    /// Takes bytes from the front of `input` until one packet is complete, and returns it.
    ///
    /// Returns `Ok(None)` when `input` is empty and no packet is complete; call again with
    /// more bytes. Call in a loop until it returns `Ok(None)`: each call consumes at least
    /// one byte unless `input` is empty.
    ///
    /// # Errors
    ///
    /// A [`FrameError`]; the decoder has already skipped (or is skipping) the bad packet and
    /// the next call continues with the bytes after it.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<Packet>, FrameError> {
        loop {
            match &mut self.state {
                State::Skip { remaining } => {
                    let n = (*remaining).min(input.len());
                    input.advance(n);
                    *remaining -= n;
                    if *remaining > 0 {
                        return Ok(None);
                    }
                    self.state = State::Packet;
                }
                State::OversizeHeader { len, got, header } => {
                    let n = (HEADER_LEN - *got).min(input.len());
                    header[*got..*got + n].copy_from_slice(&input[..n]);
                    input.advance(n);
                    *got += n;
                    if *got < HEADER_LEN {
                        return Ok(None);
                    }
                    let (len, header) = (*len, Header::from_bytes(header));
                    self.state = State::Skip {
                        remaining: len as usize - LEN_WORD - HEADER_LEN,
                    };
                    return Err(FrameError::TooLarge {
                        len,
                        max: self.max_packet_len,
                        header,
                    });
                }
                State::Packet => return self.decode_packet(input),
            }
        }
    }

    fn decode_packet(&mut self, input: &mut &[u8]) -> Result<Option<Packet>, FrameError> {
        if self.buf.len() < LEN_WORD {
            self.fill(input, LEN_WORD);
            if self.buf.len() < LEN_WORD {
                return Ok(None);
            }
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len < MIN_PACKET_LEN {
            self.buf.clear();
            self.state = State::Skip {
                remaining: (len as usize).saturating_sub(LEN_WORD),
            };
            return Err(FrameError::TooShort { len });
        }
        if len > self.max_packet_len {
            self.buf.clear();
            self.state = State::OversizeHeader {
                len,
                got: 0,
                header: [0; HEADER_LEN],
            };
            return self.decode(input);
        }
        self.fill(input, len as usize);
        if self.buf.len() < len as usize {
            return Ok(None);
        }
        let mut packet = self.buf.split_to(len as usize);
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&packet[LEN_WORD..LEN_WORD + HEADER_LEN]);
        packet.advance(LEN_WORD + HEADER_LEN);
        Ok(Some(Packet {
            header: Header::from_bytes(&header),
            payload: packet.freeze(),
        }))
    }

    /// Moves bytes from `input` into the buffer until it holds `target` bytes.
    fn fill(&mut self, input: &mut &[u8], target: usize) {
        let n = target.saturating_sub(self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..n]);
        input.advance(n);
    }
}

#[cfg(test)]
mod tests;
