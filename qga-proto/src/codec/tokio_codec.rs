//! [`FrameDecoder`] as a `tokio_util` codec (feature `tokio-codec`, on by default).

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{Frame, FrameDecoder, FrameError, SENTINEL};

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
