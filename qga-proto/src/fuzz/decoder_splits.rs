//! Target `decoder_splits`: the decoder contract, and splitting changes nothing.

use bytes::BytesMut;

use super::{chunk_header, drain, pieces, small_max};
use crate::codec::{Frame, FrameDecoder, FrameError};

/// Decodes `chunks` one after the other, then EOF, with a `max`-byte limit.
fn decode_chunks(max: usize, chunks: &[&[u8]]) -> Vec<Result<Frame, FrameError>> {
    let mut decoder = FrameDecoder::with_max_message_len(max);
    let max = decoder.max_message_len();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        // Between reads the decoder holds at most one partial message within the limit, so
        // after this read at most max + chunk bytes.
        assert!(buf.len() <= max);
        buf.extend_from_slice(chunk);
        drain(&mut decoder, &mut buf, false, &mut out);
    }
    drain(&mut decoder, &mut buf, true, &mut out);
    out
}

/// Target `decoder_splits`. Input: `[n] [n chunk lengths] [max] data`.
///
/// Decodes `data` whole and in pieces with a small limit (see `small_max`), checks the
/// decoder contract on every call (messages within the limit, starting with `{` or `[`; never
/// more than the limit held between reads; every item consumes input) and that both ways
/// give the same frames and errors.
pub fn decoder_splits(data: &[u8]) {
    let Some((lens, rest)) = chunk_header(data) else {
        return;
    };
    let Some((&max, data)) = rest.split_first() else {
        return;
    };
    let max = small_max(max);
    let whole = decode_chunks(max, &[data]);
    let split = decode_chunks(max, &pieces(lens, data));
    assert_eq!(whole, split, "splitting changed the result");
}
