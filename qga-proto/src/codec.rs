//! Streaming framing: bytes in, whole JSON messages and sync sentinels out.
//!
//! QEMU does not frame messages by lines. Its JSON streamer counts brackets (outside strings)
//! and hands over one message each time the count returns to zero, so a message may span lines
//! and several may share one read. [`FrameDecoder`] splits the same way, and additionally:
//!
//! - reports the `0xFF` byte as [`Frame::Sentinel`]. QGA output is pure ASCII, so `0xFF` can only
//!   be the marker the agent writes before the reply to `guest-sync-delimited`; inside a message
//!   it aborts that message, exactly as it resets QEMU's parser;
//! - bounds every message by [`FrameDecoder::max_message_len`]. An oversized message yields one
//!   [`FrameError::TooLarge`]; the rest of it is dropped as it arrives (never buffered) up to the
//!   end of that object or the next `0xFF`, and decoding carries on with the next message;
//! - treats bytes outside any object as garbage: one [`FrameError::Garbage`] per run, which ends
//!   at the next newline, `{` or `0xFF`;
//! - treats a raw line feed inside a string as the end of a broken message
//!   ([`FrameError::Malformed`]): JSON forbids it there, and every peer ends its messages with a
//!   line feed, so that is where the next message starts.
//!
//! Every error is recoverable: the decoder is ready for the next message after it. Only whole
//! messages are consumed from the buffer; [`FrameDecoder::decode`] returns `Ok(None)` when it
//! needs more bytes, remembering how far it has scanned so that no byte is scanned twice.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The byte qemu-ga writes before the reply to `guest-sync-delimited`, and that a client writes
/// to reset the agent's parser.
pub const SENTINEL: u8 = 0xFF;

/// Default bound on one message: 72 MiB.
///
/// The largest legitimate qemu-ga reply is a `guest-file-read` of its maximum 48 MiB, which is
/// 67,108,925 bytes of JSON; a `guest-exec-status` with both streams at their 16 MiB cap is about
/// 45 MB. The default admits both with room to spare.
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 72 * 1024 * 1024;

/// One unit of the incoming stream.
#[derive(Clone, PartialEq, Eq)]
pub enum Frame {
    /// The `0xFF` sync sentinel.
    Sentinel,
    /// One complete JSON value (an object or an array), exactly as received, without the
    /// whitespace around it.
    Message(Bytes),
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sentinel => f.write_str("Sentinel"),
            // Message contents may hold file data or command output: show only the size.
            Self::Message(bytes) => write!(f, "Message({} bytes)", bytes.len()),
        }
    }
}

/// A recoverable framing error: the bytes concerned were dropped and decoding can go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A message grew past the configured limit; it is being dropped.
    #[error("message exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// Bytes that cannot start a message arrived between messages.
    #[error("unexpected byte {byte:#04x} between messages")]
    Garbage {
        /// The first unexpected byte.
        byte: u8,
    },
    /// A `0xFF` sentinel arrived in the middle of a message, which was dropped.
    #[error("message interrupted by a sync sentinel after {len} bytes")]
    Interrupted {
        /// Bytes of the dropped partial message.
        len: usize,
    },
    /// A raw line feed inside a string: the message is broken and was dropped.
    #[error("raw line feed inside a string after {len} bytes of a message")]
    Malformed {
        /// Bytes of the dropped message.
        len: usize,
    },
    /// The stream ended in the middle of a message.
    #[error("stream ended inside a message after {len} bytes")]
    Truncated {
        /// Bytes of the incomplete message.
        len: usize,
    },
}

/// What the decoder is doing with the bytes at the front of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between messages or inside one that is being buffered.
    Normal,
    /// Dropping an oversized message as it arrives.
    Discard,
    /// Dropping a run of garbage up to the next newline, `{` or sentinel (not `[`: a stray
    /// `]` or a scalar list is far likelier garbage than a reply, which is always an object).
    Garbage,
    /// Dropping everything up to the next sentinel (used by the sync handshake).
    SkipToSentinel,
}

/// Scan position inside the current message.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    /// Bytes of the current message already scanned, counted from the buffer's front.
    pos: usize,
    /// Open brackets.
    depth: u32,
    in_string: bool,
    escape: bool,
}

/// Splits a byte stream into [`Frame`]s. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_len: usize,
    mode: Mode,
    /// True while a message has started (its first byte is at the front of the buffer in
    /// `Normal` mode).
    in_message: bool,
    scan: Scan,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Outcome of scanning the available bytes of a message.
enum Step {
    /// The message ends at this index (inclusive).
    Complete(usize),
    /// A sentinel at this index interrupts the message.
    Sentinel(usize),
    /// A raw line feed inside a string at this index breaks the message.
    Newline(usize),
    /// All available bytes were scanned.
    NeedMore,
}

impl FrameDecoder {
    /// A decoder with the [default limit](DEFAULT_MAX_MESSAGE_LEN).
    pub fn new() -> Self {
        Self::with_max_message_len(DEFAULT_MAX_MESSAGE_LEN)
    }

    /// A decoder that rejects messages longer than `max_len` bytes.
    pub fn with_max_message_len(max_len: usize) -> Self {
        Self {
            max_len: max_len.max(2),
            mode: Mode::Normal,
            in_message: false,
            scan: Scan::default(),
        }
    }

    /// The configured bound on one message.
    pub fn max_message_len(&self) -> usize {
        self.max_len
    }

    /// Drops everything up to and including the next `0xFF`, which is then reported as
    /// [`Frame::Sentinel`]; the first step of the sync handshake. Bytes already in the caller's
    /// buffer are dropped on the next [`decode`](Self::decode) call.
    pub fn skip_to_sentinel(&mut self) {
        self.mode = Mode::SkipToSentinel;
        self.in_message = false;
        self.scan = Scan::default();
    }

    /// True while the decoder holds part of a message (or is dropping one).
    pub fn is_mid_message(&self) -> bool {
        self.in_message || self.mode == Mode::Discard
    }

    fn reset(&mut self) {
        self.mode = Mode::Normal;
        self.in_message = false;
        self.scan = Scan::default();
    }

    /// Takes the next frame from the front of `buf`.
    ///
    /// Returns `Ok(None)` when more bytes are needed; whatever was consumed by then was
    /// whitespace or data being dropped.
    ///
    /// # Errors
    ///
    /// A [`FrameError`] for each oversized, interrupted or broken message and each run of
    /// garbage. The decoder stays usable: call `decode` again to continue.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            match self.mode {
                Mode::SkipToSentinel => {
                    if let Some(i) = memchr::memchr(SENTINEL, buf) {
                        buf.advance(i + 1);
                        self.reset();
                        return Ok(Some(Frame::Sentinel));
                    }
                    buf.clear();
                    return Ok(None);
                }
                Mode::Garbage => {
                    match memchr::memchr3(b'\n', b'{', SENTINEL, buf) {
                        Some(i) if buf[i] == b'\n' => buf.advance(i + 1),
                        Some(i) => buf.advance(i),
                        None => {
                            buf.clear();
                            return Ok(None);
                        }
                    }
                    self.reset();
                }
                Mode::Discard => match scan(&mut self.scan, buf, usize::MAX) {
                    Step::Complete(end) => {
                        buf.advance(end + 1);
                        self.reset();
                    }
                    Step::Sentinel(at) | Step::Newline(at) => {
                        // The sentinel itself is reported by the next round; a line feed ends
                        // the dropped message.
                        let skip = if buf[at] == SENTINEL { at } else { at + 1 };
                        buf.advance(skip);
                        self.reset();
                    }
                    Step::NeedMore => {
                        buf.clear();
                        self.scan.pos = 0;
                        return Ok(None);
                    }
                },
                Mode::Normal if !self.in_message => {
                    let start = buf
                        .iter()
                        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
                    let Some(start) = start else {
                        buf.clear();
                        return Ok(None);
                    };
                    buf.advance(start);
                    match buf[0] {
                        SENTINEL => {
                            buf.advance(1);
                            return Ok(Some(Frame::Sentinel));
                        }
                        b'{' | b'[' => {
                            self.in_message = true;
                            self.scan = Scan::default();
                        }
                        byte => {
                            self.mode = Mode::Garbage;
                            buf.advance(1);
                            return Err(FrameError::Garbage { byte });
                        }
                    }
                }
                Mode::Normal => {
                    // Scan at most one byte past the limit.
                    let limit = self.max_len.saturating_add(1);
                    match scan(&mut self.scan, buf, limit) {
                        Step::Complete(end) if end < self.max_len => {
                            let message = buf.split_to(end + 1).freeze();
                            self.reset();
                            return Ok(Some(Frame::Message(message)));
                        }
                        Step::Complete(end) => {
                            buf.advance(end + 1);
                            self.reset();
                            return Err(FrameError::TooLarge {
                                limit: self.max_len,
                            });
                        }
                        Step::Sentinel(at) => {
                            buf.advance(at);
                            self.reset();
                            return Err(FrameError::Interrupted { len: at });
                        }
                        Step::Newline(at) => {
                            buf.advance(at + 1);
                            self.reset();
                            return Err(FrameError::Malformed { len: at });
                        }
                        Step::NeedMore if self.scan.pos > self.max_len => {
                            // Drop what we hold and the rest of the message as it comes.
                            buf.advance(self.scan.pos);
                            self.scan.pos = 0;
                            self.in_message = false;
                            self.mode = Mode::Discard;
                            return Err(FrameError::TooLarge {
                                limit: self.max_len,
                            });
                        }
                        Step::NeedMore => return Ok(None),
                    }
                }
            }
        }
    }

    /// Like [`decode`](Self::decode), for when the stream has ended: bytes of an unfinished
    /// message are reported as [`FrameError::Truncated`] and dropped.
    ///
    /// # Errors
    ///
    /// As for `decode`, plus [`FrameError::Truncated`].
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None if self.in_message => {
                let len = buf.len();
                buf.clear();
                self.reset();
                Err(FrameError::Truncated { len })
            }
            None => {
                buf.clear();
                self.reset();
                Ok(None)
            }
        }
    }
}

/// Strings up to this long are scanned byte by byte (see [`scan`]).
const SHORT_STRING: usize = 32;

/// Byte class: ends a run of plain bytes inside a string (`"`, `\\`, a raw line feed, the
/// sentinel).
const ENDS_STRING_RUN: u8 = 1;
/// Byte class: matters outside strings (`"`, brackets, the sentinel).
const STRUCTURAL: u8 = 2;

/// The class of every byte, so that [`scan`] tests one table entry instead of a chain of
/// comparisons.
static CLASSES: [u8; 256] = {
    let mut t = [0; 256];
    t[b'"' as usize] = ENDS_STRING_RUN | STRUCTURAL;
    t[b'\\' as usize] = ENDS_STRING_RUN;
    t[b'\n' as usize] = ENDS_STRING_RUN;
    t[SENTINEL as usize] = ENDS_STRING_RUN | STRUCTURAL;
    t[b'{' as usize] = STRUCTURAL;
    t[b'[' as usize] = STRUCTURAL;
    t[b'}' as usize] = STRUCTURAL;
    t[b']' as usize] = STRUCTURAL;
    t
};

fn class(b: u8) -> u8 {
    CLASSES[usize::from(b)]
}

/// Scans `buf[state.pos..]` (at most up to `limit` bytes from the front) for the end of the
/// current message, updating `state`.
fn scan(state: &mut Scan, buf: &[u8], limit: usize) -> Step {
    let end = buf.len().min(limit);
    let mut i = state.pos;
    while i < end {
        if state.in_string {
            if state.escape {
                state.escape = false;
                if buf[i] == SENTINEL {
                    state.pos = i;
                    return Step::Sentinel(i);
                }
                i += 1;
                continue;
            }
            // Jump to the next byte that matters: the closing quote, an escape, a sentinel or
            // a (forbidden) raw line feed. Most strings are short keys and values, cheaper to
            // look through byte by byte than to set up a vectorised search for; the bulk of
            // the bytes are in long strings (base64 payloads), where memchr pays.
            let rest = &buf[i..end];
            let head = &rest[..rest.len().min(SHORT_STRING)];
            let stop = match head.iter().position(|&b| class(b) & ENDS_STRING_RUN != 0) {
                Some(at) => at,
                None if rest.len() == head.len() => rest.len(),
                None => {
                    let tail = &rest[head.len()..];
                    let at = memchr::memchr3(b'"', b'\\', SENTINEL, tail).unwrap_or(tail.len());
                    head.len() + memchr::memchr(b'\n', &tail[..at]).unwrap_or(at)
                }
            };
            if rest.get(stop) == Some(&b'\n') {
                state.pos = i + stop;
                return Step::Newline(i + stop);
            }
            i += stop;
            if i == end {
                break;
            }
            match buf[i] {
                b'"' => state.in_string = false,
                b'\\' => state.escape = true,
                _ => {
                    state.pos = i;
                    return Step::Sentinel(i);
                }
            }
            i += 1;
        } else {
            // Skip what does not change the nesting: punctuation, numbers, literals.
            match buf[i..end].iter().position(|&b| class(b) & STRUCTURAL != 0) {
                Some(at) => i += at,
                None => break,
            }
            match buf[i] {
                b'"' => state.in_string = true,
                b'{' | b'[' => state.depth = state.depth.saturating_add(1), // never wraps
                b'}' | b']' => {
                    state.depth = state.depth.saturating_sub(1);
                    if state.depth == 0 {
                        state.pos = i;
                        return Step::Complete(i);
                    }
                }
                SENTINEL => {
                    state.pos = i;
                    return Step::Sentinel(i);
                }
                _ => {}
            }
            i += 1;
        }
    }
    state.pos = end;
    Step::NeedMore
}

/// A `tokio_util` codec over [`FrameDecoder`].
///
/// Framing errors are recoverable, so they are yielded as items (`Ok(Err(FrameError))`) rather
/// than as the stream's error, which would end a `FramedRead`. The stream error is only ever an
/// IO error. As an encoder it writes already-encoded requests (see
/// [`encode_request`](crate::encode_request)) and single sentinels.
#[derive(Debug, Default, Clone)]
pub struct QgaCodec {
    decoder: FrameDecoder,
}

impl QgaCodec {
    /// A codec with the default message limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec that rejects messages longer than `max_len` bytes.
    pub fn with_max_message_len(max_len: usize) -> Self {
        Self {
            decoder: FrameDecoder::with_max_message_len(max_len),
        }
    }

    /// The decoder inside, for example to start a handshake.
    pub fn decoder_mut(&mut self) -> &mut FrameDecoder {
        &mut self.decoder
    }
}

impl Decoder for QgaCodec {
    type Item = Result<Frame, FrameError>;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        Ok(self.decoder.decode(src).transpose())
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        Ok(self.decoder.decode_eof(src).transpose())
    }
}

/// What [`QgaCodec`] can write.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A single `0xFF`, which resets the peer's parser (and provokes one error reply).
    Sentinel,
    /// Bytes of one or more encoded requests.
    Encoded(Bytes),
}

impl Encoder<Outgoing> for QgaCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Outgoing, dst: &mut BytesMut) -> Result<(), Self::Error> {
        match item {
            Outgoing::Sentinel => dst.extend_from_slice(&[SENTINEL]),
            Outgoing::Encoded(bytes) => dst.extend_from_slice(&bytes),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
