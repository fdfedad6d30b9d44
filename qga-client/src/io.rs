//! The one IO primitive both clients build on: write a request while reading, so that a peer
//! that talks while we write can never deadlock us (qemu-ga blocks on a full socket too).

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;

use bytes::BytesMut;
use qga_proto::codec::FrameDecoder;
use tokio::io::AsyncRead;

use crate::logic::conn::{Incoming, Probe};
use crate::transport::Stream;

/// Room kept free in the read buffer before each read.
const READ_RESERVE: usize = 16 * 1024;
/// While a large message is coming in, the room grows with it up to this: one read takes all
/// that the peer managed to queue, and the buffer grows in fewer, larger steps.
const MAX_READ_RESERVE: usize = 1024 * 1024;

/// Writes all of `out` (from `*written`) and flushes, while decoding frames from the stream.
/// Returns the first frame (or EOF). `*written` tells how much of `out` went out.
pub(crate) async fn exchange(
    stream: &mut dyn Stream,
    out: &[u8],
    written: &mut usize,
    decoder: &mut FrameDecoder,
    rbuf: &mut BytesMut,
) -> std::io::Result<Incoming> {
    let mut flushed = out.is_empty();
    poll_fn(|cx| {
        while *written < out.len() {
            match Pin::new(&mut *stream).poll_write(cx, &out[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        if *written == out.len() && !flushed {
            match Pin::new(&mut *stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => flushed = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        poll_frame(&mut *stream, cx, decoder, rbuf)
    })
    .await
}

/// Reads until one frame (or EOF) is available.
pub(crate) async fn read_frame<R: AsyncRead + Unpin + ?Sized>(
    stream: &mut R,
    decoder: &mut FrameDecoder,
    rbuf: &mut BytesMut,
) -> std::io::Result<Incoming> {
    poll_fn(|cx| poll_frame(&mut *stream, cx, decoder, rbuf)).await
}

fn poll_frame<R: AsyncRead + Unpin + ?Sized>(
    stream: &mut R,
    cx: &mut std::task::Context<'_>,
    decoder: &mut FrameDecoder,
    rbuf: &mut BytesMut,
) -> Poll<std::io::Result<Incoming>> {
    loop {
        match decoder.decode(rbuf) {
            Ok(Some(frame)) => return Poll::Ready(Ok(Incoming::Frame(frame))),
            Ok(None) => {}
            Err(e) => return Poll::Ready(Ok(Incoming::BadFrame(e))),
        }
        rbuf.reserve(rbuf.len().clamp(READ_RESERVE, MAX_READ_RESERVE));
        match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, rbuf) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Ok(Incoming::Eof)),
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
}

/// Looks, without waiting, whether an idle connection has data or EOF pending.
pub(crate) async fn probe(stream: &mut dyn Stream, rbuf: &mut BytesMut) -> Probe {
    poll_fn(|cx| {
        rbuf.reserve(1024);
        Poll::Ready(
            match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, rbuf) {
                Poll::Pending => Probe::Quiet,
                Poll::Ready(Ok(0)) => Probe::Eof,
                Poll::Ready(Ok(_)) => Probe::Unsolicited,
                Poll::Ready(Err(e)) => Probe::Failed(e),
            },
        )
    })
    .await
}
