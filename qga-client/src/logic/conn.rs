//! The connection state both clients keep behind their lock, and what each thing read from
//! the peer means for it. The shells own the IO: they write the prepared request (or a
//! handshake's), read into `rbuf`, and hand what they got to the verdicts here, which decide
//! whether the channel is in step, must be resynchronised, or must be closed.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use qga_proto::codec::{Frame, FrameDecoder, FrameError};
use qga_proto::sync::{Handshake, Progress};

use crate::error::{Error, ProtocolError, Result};

/// An idle connection keeps no more read buffer than this.
const IDLE_BUFFER_MAX: usize = 64 * 1024;

/// What came out of the stream.
#[derive(Debug)]
pub(crate) enum Incoming {
    Frame(Frame),
    BadFrame(FrameError),
    Eof,
}

/// What a look at an idle connection found.
#[derive(Debug)]
pub(crate) enum Probe {
    /// Nothing to read: the connection looks healthy.
    Quiet,
    /// The peer closed it.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Eof,
    /// Bytes nobody asked for (stale or hostile): resynchronise.
    Unsolicited,
    /// The socket failed.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    Failed(std::io::Error),
}

/// How sending a request ended.
pub(crate) enum Sent {
    Reply(Bytes),
    NoReply,
    Failed {
        error: Error,
        /// True when not one byte of the request was written.
        unsent: bool,
    },
}

/// How one handshake attempt ended.
#[derive(Debug)]
pub(crate) enum SyncEnd {
    Synced { stale: u64 },
    Eof,
    Failed(std::io::Error),
}

/// What the reply loop of a call does next.
pub(crate) enum Settled<R> {
    /// The call's result.
    Done(Result<R>),
    /// An event was skipped: read the next message for the same request.
    ReadAnother,
}

/// The connection state, behind a client's lock: the stream (none while disconnected), the
/// decoder and its buffers, and whether the channel is known to be in step.
pub(crate) struct Conn<S> {
    pub(crate) stream: Option<S>,
    pub(crate) decoder: FrameDecoder,
    pub(crate) rbuf: BytesMut,
    pub(crate) wbuf: BytesMut,
    /// True only between a completed exchange and the start of the next one: a call that does
    /// not finish (timeout, dropped future, error) leaves it false, and the next call resyncs.
    pub(crate) synced: bool,
    next_id: u64,
}

impl<S> Conn<S> {
    pub(crate) fn new(stream: Option<S>, max_message_len: usize) -> Self {
        Self {
            stream,
            decoder: FrameDecoder::with_max_message_len(max_message_len),
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            synced: false,
            next_id: fastrand::u64(1..1 << 32),
        }
    }

    pub(crate) fn close(&mut self) {
        self.stream = None;
        self.synced = false;
        self.rbuf = BytesMut::new();
        self.decoder = FrameDecoder::with_max_message_len(self.decoder.max_message_len());
    }

    /// A connection that can take a request as it is: open and in sync, with nothing left
    /// unread from the last reply.
    pub(crate) fn idle(&self) -> bool {
        self.synced && self.stream.is_some()
    }

    /// Bytes left after the last reply that nobody asked for.
    pub(crate) fn leftover(&self) -> bool {
        self.rbuf
            .iter()
            .any(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    }

    /// Acts on what a look at the idle connection found; true when it can take a request.
    pub(crate) fn judge_idle(&mut self, probe: Probe) -> bool {
        match probe {
            Probe::Quiet => return true,
            Probe::Unsolicited => {
                tracing::debug!("unsolicited bytes from the guest agent; resynchronising");
                self.synced = false;
            }
            Probe::Eof => {
                tracing::debug!("guest agent closed the idle connection");
                self.close();
            }
            Probe::Failed(e) => {
                tracing::debug!(error = %e, "guest agent connection failed while idle");
                self.close();
            }
        }
        false
    }

    /// Starts a `guest-sync-delimited` handshake with a fresh id: bytes already buffered are
    /// stale and go with everything up to the agent's sentinel. Returns the handshake and the
    /// bytes to send.
    pub(crate) fn start_sync(&mut self) -> (Handshake, Bytes) {
        loop {
            let mut handshake = Handshake::start(fastrand::u64(1..), &mut self.decoder);
            // Synced before anything was sent is impossible; start again if it ever were.
            if handshake.advance(&mut self.decoder, &mut self.rbuf) == Progress::Pending {
                let request = handshake.request();
                return (handshake, request);
            }
        }
    }

    /// Feeds what one read of a handshake attempt brought; `Some` once the attempt ended.
    pub(crate) fn sync_step(
        &mut self,
        handshake: &mut Handshake,
        incoming: std::io::Result<Incoming>,
    ) -> Option<SyncEnd> {
        let frame = match incoming {
            Ok(Incoming::Frame(frame)) => Ok(frame),
            Ok(Incoming::BadFrame(e)) => Err(e),
            Ok(Incoming::Eof) => return Some(SyncEnd::Eof),
            Err(e) => return Some(SyncEnd::Failed(e)),
        };
        (handshake.handle(frame, &mut self.decoder) == Progress::Synced).then(|| SyncEnd::Synced {
            stale: handshake.stale_replies(),
        })
    }

    /// Acts on how the handshake ended after `attempts` attempts.
    pub(crate) fn finish_sync(&mut self, end: SyncEnd, attempts: u32) -> Result<()> {
        match end {
            SyncEnd::Synced { stale } => {
                tracing::debug!(
                    attempts,
                    stale_sync_replies = stale,
                    "synchronised with the guest agent"
                );
                shrink_idle(&mut self.rbuf);
                self.synced = true;
                Ok(())
            }
            SyncEnd::Eof => {
                self.close();
                Err(Error::Closed)
            }
            SyncEnd::Failed(e) => {
                self.close();
                Err(io_error(e))
            }
        }
    }

    /// Encodes the request into the write buffer; returns its id.
    pub(crate) fn prepare(
        &mut self,
        request_ids: bool,
        encode: impl FnOnce(Option<u64>, &mut BytesMut) -> serde_json::Result<()>,
    ) -> Result<Option<u64>> {
        let id = request_ids.then(|| {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            id
        });
        self.wbuf.clear();
        encode(id, &mut self.wbuf)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode the arguments: {e}")))?;
        Ok(id)
    }

    /// After a request: a large one (a file chunk) must not pin its buffer to an idle
    /// connection.
    pub(crate) fn release_request(&mut self) {
        self.wbuf.clear();
        shrink_idle(&mut self.wbuf);
    }

    /// What was read after sending `written` bytes of the prepared request.
    pub(crate) fn judge_sent(
        &mut self,
        incoming: std::io::Result<Incoming>,
        written: usize,
        expects_reply: bool,
    ) -> Sent {
        let sent_all = written == self.wbuf.len();
        if let Ok(Incoming::Eof) = incoming
            && !expects_reply
            && sent_all
        {
            // The guest went away after taking the command: that is success.
            self.close();
            return Sent::NoReply;
        }
        if let Ok(Incoming::Frame(Frame::Message(_))) = incoming
            && !sent_all
        {
            return Sent::Failed {
                error: Error::Protocol(ProtocolError::EarlyReply),
                unsent: false,
            };
        }
        self.outcome(incoming, written)
    }

    /// What a frame read after a request means; `written` bytes of it went out.
    pub(crate) fn outcome(&mut self, incoming: std::io::Result<Incoming>, written: usize) -> Sent {
        let failed = |error| Sent::Failed {
            error,
            unsent: false,
        };
        match incoming {
            Ok(Incoming::Frame(Frame::Message(bytes))) => Sent::Reply(bytes),
            Ok(Incoming::Frame(Frame::Sentinel)) => {
                failed(Error::Protocol(ProtocolError::UnexpectedSentinel))
            }
            Ok(Incoming::BadFrame(e)) => {
                tracing::warn!(error = %e, "bad framing from the guest agent");
                failed(Error::Protocol(ProtocolError::Frame(e)))
            }
            Ok(Incoming::Eof) => {
                self.close();
                failed(Error::Closed)
            }
            Err(e) => {
                self.close();
                let error = io_error(e);
                // Nothing reached the peer: the request can go again on a new connection.
                let unsent = written == 0 && error.is_closed();
                Sent::Failed { error, unsent }
            }
        }
    }

    /// What a call's send (or its next read) ended with means: a decoded reply that puts the
    /// channel back in step, an event to skip (counted in `skipped`), or an error.
    pub(crate) fn settle<R>(
        &mut self,
        command: &str,
        sent: Sent,
        id: Option<u64>,
        decode: impl Fn(Option<&[u8]>, Option<u64>) -> Result<R>,
        skipped: &AtomicU64,
    ) -> Settled<R> {
        let bytes = match sent {
            Sent::Reply(bytes) => bytes,
            Sent::NoReply => return Settled::Done(decode(None, id)),
            Sent::Failed { error, .. } => return Settled::Done(Err(error)),
        };
        let result = decode(Some(&bytes), id);
        // qemu-ga sends no events on its channel, but a hostile guest may: one is skipped
        // (counted) and the real reply read after it. Checked only when the reply does not
        // decode, so it costs nothing otherwise.
        if matches!(result, Err(Error::Decode { .. })) && super::reply::is_event(&bytes) {
            let skipped = skipped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(
                command,
                skipped,
                "skipped an event on the guest agent channel"
            );
            return Settled::ReadAnother;
        }
        if !matches!(result, Err(Error::Protocol(_))) {
            self.synced = true;
            shrink_idle(&mut self.rbuf);
        }
        Settled::Done(result)
    }
}

/// A broken pipe or reset is the peer closing, not a mysterious IO error.
pub(crate) fn io_error(e: std::io::Error) -> Error {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match e.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof => Error::Closed,
        _ => Error::Io(e),
    }
}

/// Gives back the memory of a large buffer once it is empty.
pub(crate) fn shrink_idle(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > IDLE_BUFFER_MAX {
        *buf = BytesMut::new();
    }
}
