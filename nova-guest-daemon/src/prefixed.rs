//! The first bytes of a connection, read under a deadline and then replayed to hyper.
//!
//! hyper-util's auto builder reads up to 24 bytes to tell HTTP/2's preface from an HTTP/1.1
//! request, with no deadline: a client that connects and says nothing would hold its
//! connection forever. [`sniff`] reads those bytes itself within the header timeout and hands
//! over a stream that gives them again before the rest.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// HTTP/2's connection preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads until the bytes tell HTTP/1.1 from HTTP/2 (the first byte that leaves the preface, or
/// the whole preface), within `timeout`.
///
/// # Errors
///
/// `TimedOut` when the client is too slow, `UnexpectedEof` when it closes first.
pub(crate) async fn sniff<S: AsyncRead + Unpin>(
    mut stream: S,
    timeout: Duration,
) -> io::Result<Prefixed<S>> {
    let mut prefix = Vec::with_capacity(H2_PREFACE.len());
    let read = async {
        let mut buf = [0u8; 24];
        while prefix.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&prefix) {
            let want = H2_PREFACE.len() - prefix.len();
            let n = stream.read(&mut buf[..want]).await?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            prefix.extend_from_slice(&buf[..n]);
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(())) => Ok(Prefixed {
            prefix,
            at: 0,
            inner: stream,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client sent nothing within header_timeout",
        )),
    }
}

/// A stream whose first bytes were already read: they are read again first.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            if self.at == self.prefix.len() {
                self.prefix = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn replays_what_it_read_then_the_rest() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut io = sniff(server, Duration::from_secs(1)).await.unwrap();
        // It stops as soon as the bytes leave the HTTP/2 preface (here: at the first read).
        assert!(b"GET / HTTP/1.1\r\n".starts_with(&io.prefix));
        assert!(!io.prefix.is_empty());
        client.write_all(b"Host: x\r\n").await.unwrap();
        drop(client);
        let mut all = String::new();
        io.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET / HTTP/1.1\r\nHost: x\r\n");
    }

    #[tokio::test]
    async fn reads_the_whole_h2_preface() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&H2_PREFACE[..10]).await.unwrap();
        client.write_all(&H2_PREFACE[10..]).await.unwrap();
        let io = sniff(server, Duration::from_secs(1)).await.unwrap();
        assert_eq!(io.prefix, H2_PREFACE);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_and_a_stalled_preface_time_out() {
        let (_client, server) = tokio::io::duplex(64);
        let e = sniff(server, Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&H2_PREFACE[..5]).await.unwrap();
        let e = sniff(server, Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let (client, server) = tokio::io::duplex(64);
        drop(client);
        let e = sniff(server, Duration::from_secs(10)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
