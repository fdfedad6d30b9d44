//! The async shell of the connection state machine (`crate::logic::conn`): connecting, the
//! `guest-sync-delimited` handshake, and one request/reply exchange on a tokio stream. It
//! knows nothing of deadlines beyond the handshake's retries: the caller bounds every step
//! with its own `timeout_at`.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::Shared;
use crate::error::{Error, Result};
use crate::io::{exchange, probe, read_frame};
use crate::logic::conn::{Probe, Sent, SyncEnd, io_error};
use crate::logic::deadline::later;
use crate::transport::Stream;

/// The connection state, behind the client's lock.
pub(super) type Conn = crate::logic::conn::Conn<Box<dyn Stream>>;

impl Conn {
    /// Makes sure there is a connection and it is in sync.
    pub(super) async fn ensure_ready(&mut self, shared: &Shared, deadline: Instant) -> Result<()> {
        if self.idle() {
            // Bytes left after the last reply, or arriving since, were not asked for.
            let state = match (self.leftover(), self.stream.as_mut()) {
                (false, Some(stream)) => probe(stream.as_mut(), &mut self.rbuf).await,
                _ => Probe::Unsolicited,
            };
            if self.judge_idle(state) {
                return Ok(());
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
        let mut attempts = 0u32;
        let end = loop {
            attempts += 1;
            let (mut handshake, request) = self.start_sync();
            let retry_at = deadline.min(later(Instant::now(), shared.config.sync_retry_interval));
            let attempt = async {
                let mut written = 0;
                loop {
                    let Some(stream) = self.stream.as_mut() else {
                        return SyncEnd::Eof;
                    };
                    let incoming = exchange(
                        stream.as_mut(),
                        &request,
                        &mut written,
                        &mut self.decoder,
                        &mut self.rbuf,
                    )
                    .await;
                    if let Some(end) = self.sync_step(&mut handshake, incoming) {
                        return end;
                    }
                }
            };
            match tokio::time::timeout_at(retry_at, attempt).await {
                Ok(end) => break end,
                Err(_) => {
                    tracing::debug!(attempts, "no answer to guest-sync-delimited yet");
                    if Instant::now() >= deadline {
                        // The caller's timeout ends this call; do not spin until then.
                        tokio::time::sleep_until(deadline + Duration::from_millis(1)).await;
                    }
                }
            }
        };
        self.finish_sync(end, attempts)
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
            let grace = deadline.min(later(Instant::now(), shared.config.no_reply_grace));
            let wait = read_frame(stream.as_mut(), decoder, rbuf);
            match tokio::time::timeout_at(grace, wait).await {
                Ok(incoming) => incoming,
                // Accepted. The channel stays unsynced: a late error reply must not be taken
                // as the answer to the next command.
                Err(_) => return Sent::NoReply,
            }
        };
        self.judge_sent(incoming, written, expects_reply)
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
}
