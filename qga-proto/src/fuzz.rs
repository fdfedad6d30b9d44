//! Fuzz bodies, compiled only under `cfg(fuzzing)` (cargo-fuzz sets it). The targets in
//! `fuzz/fuzz_targets/` call these, one function per target, each in its own submodule
//! (`fuzz/decoder_splits.rs`, `typed_replies.rs`, `handshake.rs`, `qmp_messages.rs`); this
//! file holds what they share: the input layouts' helpers and the decoder-contract checks.
//!
//! Each body panics only when an invariant of this crate breaks; a malformed input is never a
//! reason to panic. The input layouts are documented per function; `fuzz/capture-corpus.py`
//! writes seeds in the same layouts (it reads [`TYPED_REPLY_COMMANDS`] from
//! `fuzz/typed_replies.rs`, one entry per line, and [`SYNC_IDS`] from `fuzz/handshake.rs`,
//! between their marker comments).
//!
//! The bodies also run as unit tests over the committed corpus:
//! `RUSTFLAGS="--cfg fuzzing" cargo test -p qga-proto --lib --target-dir target/cfg-fuzzing fuzz`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;

use crate::codec::{Frame, FrameDecoder, FrameError, SENTINEL};

mod decoder_splits;
mod handshake;
mod qmp_messages;
mod typed_replies;

pub use self::decoder_splits::decoder_splits;
pub use self::handshake::{SYNC_IDS, handshake};
pub use self::qmp_messages::qmp_messages;
pub use self::typed_replies::{TYPED_REPLY_COMMANDS, typed_replies};

/// Splits `[n] [n chunk lengths] rest` into the chunk lengths and the rest (`n` is taken
/// modulo 8). Returns `None` when the input is too short.
fn chunk_header(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&n, rest) = data.split_first()?;
    let n = usize::from(n % 8);
    (rest.len() >= n).then(|| rest.split_at(n))
}

/// `data` cut into pieces whose lengths cycle through `lens` (each byte `b` is a piece of
/// `b + 1` bytes); one piece when `lens` is empty.
fn pieces<'a>(lens: &'a [u8], data: &'a [u8]) -> Vec<&'a [u8]> {
    if lens.is_empty() {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    for &b in lens.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at((usize::from(b) + 1).min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

/// A small message limit from one byte: 2..=129 in steps of 1, then 32..=4096 in steps of 32.
fn small_max(b: u8) -> usize {
    if b < 128 {
        usize::from(b) + 2
    } else {
        usize::from(b - 127) * 32
    }
}

/// Calls `decode` (or `decode_eof`) until it needs more bytes, checking the decoder contract
/// on every result, and appends the results to `out`.
fn drain(
    decoder: &mut FrameDecoder,
    buf: &mut BytesMut,
    eof: bool,
    out: &mut Vec<Result<Frame, FrameError>>,
) {
    let max = decoder.max_message_len();
    loop {
        let before = buf.len();
        let result = if eof {
            decoder.decode_eof(buf)
        } else {
            decoder.decode(buf)
        };
        match result {
            Ok(None) => {
                // Whatever is kept is (the start of) one message within the limit.
                assert!(buf.len() <= max, "holds {} > max {max}", buf.len());
                if eof {
                    assert!(buf.is_empty(), "decode_eof left {} bytes", buf.len());
                    assert!(!decoder.is_mid_message(), "mid-message after eof");
                }
                return;
            }
            Ok(Some(frame)) => {
                // Every item consumes input, so the loop ends.
                assert!(buf.len() < before, "a frame consumed nothing");
                if let Frame::Message(bytes) = &frame {
                    assert!(bytes.len() <= max, "message of {} > max {max}", bytes.len());
                    assert!(matches!(bytes.first(), Some(b'{' | b'[')), "bad first byte");
                    assert!(matches!(bytes.last(), Some(b'}' | b']')), "bad last byte");
                    assert!(!bytes.contains(&SENTINEL), "a message holds 0xFF");
                }
                out.push(Ok(frame));
            }
            Err(e) => {
                assert!(buf.len() < before, "an error consumed nothing: {e}");
                out.push(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests;
