//! The connection state machine behind the client's lock: connecting, the
//! `guest-sync-delimited` handshake, and one request/reply exchange. It knows nothing of
//! deadlines: the caller bounds every step with its own `timeout_at`.

use std::time::Duration;

use bytes::BytesMut;
use qga_proto::codec::{Frame, FrameDecoder};
use qga_proto::sync::{Handshake, Progress};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::Shared;
use crate::error::{Error, ProtocolError, Result};
use crate::io::{Incoming, Probe, exchange, probe, read_frame, shrink_idle};
use crate::transport::Stream;

/// The connection state, behind the client's lock.
pub(super) struct Conn {
    pub(super) stream: Option<Box<dyn Stream>>,
    decoder: FrameDecoder,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// True only between a completed exchange and the start of the next one: a call that does
    /// not finish (timeout, dropped future, error) leaves it false, and the next call resyncs.
    pub(super) synced: bool,
    next_id: u64,
}

impl Conn {
    pub(super) fn new(stream: Option<Box<dyn Stream>>, max_message_len: usize) -> Self {
        Self {
            stream,
            decoder: FrameDecoder::with_max_message_len(max_message_len),
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            synced: false,
            next_id: fastrand::u64(1..1 << 32),
        }
    }

    pub(super) fn close(&mut self) {
        self.stream = None;
        self.synced = false;
        self.rbuf = BytesMut::new();
        self.decoder = FrameDecoder::with_max_message_len(self.decoder.max_message_len());
    }

    /// Makes sure there is a connection and it is in sync.
    pub(super) async fn ensure_ready(&mut self, shared: &Shared, deadline: Instant) -> Result<()> {
        if self.synced
            && let Some(stream) = self.stream.as_mut()
        {
            // Bytes left after the last reply, or arriving since, were not asked for.
            let leftover = self
                .rbuf
                .iter()
                .any(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
            let state = if leftover {
                Probe::Unsolicited
            } else {
                probe(stream.as_mut(), &mut self.rbuf).await
            };
            match state {
                Probe::Quiet => return Ok(()),
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
        }
        if self.stream.is_none() {
            let Some(transport) = &shared.transport else {
                return Err(Error::Closed);
            };
            let stream = transport.connect(shared.config.connect_timeout).await?;
            tracing::debug!(transport = %transport.describe(), "connected to the guest agent");
            self.stream = Some(stream);
            self.synced = false;
        }
        if !self.synced {
            self.resync(shared, deadline).await?;
        }
        Ok(())
    }

    /// The `guest-sync-delimited` handshake, resent with a fresh id every
    /// `sync_retry_interval` until `deadline` (enforced by the caller's timeout).
    async fn resync(&mut self, shared: &Shared, deadline: Instant) -> Result<()> {
        enum Outcome {
            Synced { attempts: u32, stale: u64 },
            Eof,
            Failed(std::io::Error),
        }
        let outcome = {
            let Self {
                stream,
                decoder,
                rbuf,
                ..
            } = self;
            let Some(stream) = stream.as_mut() else {
                return Err(Error::Closed);
            };
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                let mut handshake = Handshake::start(fastrand::u64(1..), decoder);
                // Bytes already buffered are stale: they go with everything up to the sentinel.
                if handshake.advance(decoder, rbuf) == Progress::Synced {
                    // Impossible: the request has not been sent yet.
                    continue;
                }
                let request = handshake.request();
                let mut written = 0;
                let retry_at = deadline.min(super::later(
                    Instant::now(),
                    shared.config.sync_retry_interval,
                ));
                let attempt = async {
                    loop {
                        let frame =
                            match exchange(stream.as_mut(), &request, &mut written, decoder, rbuf)
                                .await?
                            {
                                Incoming::Frame(frame) => Ok(frame),
                                Incoming::BadFrame(e) => Err(e),
                                Incoming::Eof => return Ok(false),
                            };
                        if handshake.handle(frame, decoder) == Progress::Synced {
                            return Ok::<bool, std::io::Error>(true);
                        }
                    }
                };
                match tokio::time::timeout_at(retry_at, attempt).await {
                    Ok(Ok(true)) => {
                        break Outcome::Synced {
                            attempts,
                            stale: handshake.stale_replies(),
                        };
                    }
                    Ok(Ok(false)) => break Outcome::Eof,
                    Ok(Err(e)) => break Outcome::Failed(e),
                    Err(_) => {
                        tracing::debug!(attempts, "no answer to guest-sync-delimited yet");
                        if Instant::now() >= deadline {
                            // The caller's timeout ends this call; do not spin until then.
                            tokio::time::sleep_until(deadline + Duration::from_millis(1)).await;
                        }
                    }
                }
            }
        };
        match outcome {
            Outcome::Synced { attempts, stale } => {
                tracing::debug!(
                    attempts,
                    stale_sync_replies = stale,
                    "synchronised with the guest agent"
                );
                shrink_idle(&mut self.rbuf);
                self.synced = true;
                Ok(())
            }
            Outcome::Eof => {
                self.close();
                Err(Error::Closed)
            }
            Outcome::Failed(e) => {
                self.close();
                Err(io_error(e))
            }
        }
    }

    /// After a request: a large one (a file chunk) must not pin its buffer to an idle
    /// connection.
    pub(super) fn release_request(&mut self) {
        self.wbuf.clear();
        shrink_idle(&mut self.wbuf);
    }

    /// After a reply that was understood: the channel is in step again.
    pub(super) fn mark_synced(&mut self) {
        self.synced = true;
        shrink_idle(&mut self.rbuf);
    }

    /// Encodes the request into the write buffer; returns its id.
    pub(super) fn prepare(
        &mut self,
        shared: &Shared,
        encode: impl FnOnce(Option<u64>, &mut BytesMut) -> serde_json::Result<()>,
    ) -> Result<Option<u64>> {
        let id = shared.config.request_ids.then(|| {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            id
        });
        self.wbuf.clear();
        encode(id, &mut self.wbuf)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode the arguments: {e}")))?;
        Ok(id)
    }

    /// Sends the prepared request on a synchronised connection and reads its reply.
    pub(super) async fn send(
        &mut self,
        shared: &Shared,
        expects_reply: bool,
        deadline: Instant,
    ) -> Sent {
        // From here until the reply is read, the channel is in doubt.
        self.synced = false;
        let Self {
            stream,
            decoder,
            rbuf,
            wbuf,
            ..
        } = self;
        let Some(stream) = stream.as_mut() else {
            return Sent::Failed {
                error: Error::Closed,
                unsent: true,
            };
        };
        let mut written = 0;
        let incoming = if expects_reply {
            exchange(stream.as_mut(), wbuf, &mut written, decoder, rbuf).await
        } else {
            // No reply on success: send, then wait a grace period for an error reply.
            let sent = async {
                stream.write_all(wbuf).await?;
                stream.flush().await
            };
            if let Err(e) = sent.await {
                self.close();
                return Sent::Failed {
                    error: io_error(e),
                    unsent: false,
                };
            }
            written = wbuf.len();
            let grace = deadline.min(super::later(Instant::now(), shared.config.no_reply_grace));
            let wait = read_frame(stream.as_mut(), decoder, rbuf);
            match tokio::time::timeout_at(grace, wait).await {
                Ok(incoming) => incoming,
                // Accepted. The channel stays unsynced: a late error reply must not be taken
                // as the answer to the next command.
                Err(_) => return Sent::NoReply,
            }
        };
        let sent_all = written == wbuf.len();
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

    /// Reads one more reply for the request already sent (after a message that was not its
    /// answer was skipped).
    pub(super) async fn next_reply(&mut self) -> Sent {
        let Self {
            stream,
            decoder,
            rbuf,
            ..
        } = self;
        let Some(stream) = stream.as_mut() else {
            return Sent::Failed {
                error: Error::Closed,
                unsent: false,
            };
        };
        let incoming = read_frame(stream.as_mut(), decoder, rbuf).await;
        self.outcome(incoming, usize::MAX)
    }

    /// What a frame read after a request means; `written` bytes of it went out.
    fn outcome(&mut self, incoming: std::io::Result<Incoming>, written: usize) -> Sent {
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
}

/// How sending a request ended.
pub(super) enum Sent {
    Reply(bytes::Bytes),
    NoReply,
    Failed {
        error: Error,
        /// True when not one byte of the request was written.
        unsent: bool,
    },
}

/// A broken pipe or reset is the peer closing, not a mysterious IO error.
pub(super) fn io_error(e: std::io::Error) -> Error {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match e.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof => Error::Closed,
        _ => Error::Io(e),
    }
}
