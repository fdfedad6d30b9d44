//! The blocking shell of the connection state machine (`crate::logic::conn`): connecting,
//! the handshake and one exchange on a [`Socket`], each wait bounded by the call's deadline.

use std::time::{Duration, Instant};

use super::socket::Socket;
use super::{Call, Shared};
use crate::error::{Error, Result};
use crate::logic::config::Config;
use crate::logic::conn::{Incoming, Probe, Sent, SyncEnd};
use crate::logic::deadline::later;
use qga_proto::sync::Handshake;

/// The connection state, in the client's slot.
pub(super) type Conn = crate::logic::conn::Conn<Socket>;

impl Conn {
    /// Makes sure there is a connection and it is in sync. Unlike the async client it does
    /// not look at the socket of an idle connection (a system call on every call): bytes left
    /// in the buffer after the last reply mean a resync; bytes that arrived since are caught
    /// by the id check, and a closed connection by the failed write, after which a client
    /// made from a path reconnects and sends the request again.
    pub(super) fn ensure_ready(&mut self, shared: &Shared, call: &Call<'_>) -> Result<()> {
        if self.idle() {
            let state = if self.leftover() {
                Probe::Unsolicited
            } else {
                Probe::Quiet
            };
            if self.judge_idle(state) {
                return Ok(());
            }
        }
        if self.stream.is_none() {
            let Some(path) = &shared.path else {
                return Err(Error::Closed);
            };
            let left = call.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(call.timed_out());
            }
            // A zero timeout still lets a connect that needs no wait through.
            let timeout = shared
                .config
                .connect_timeout
                .min(left)
                .max(Duration::from_micros(1));
            let socket = Socket::connect(path, timeout).map_err(|source| {
                if Instant::now() >= call.deadline {
                    call.timed_out()
                } else {
                    Error::Connect {
                        path: path.clone(),
                        source,
                    }
                }
            })?;
            tracing::debug!(path = %path.display(), "connected to the guest agent");
            self.stream = Some(socket);
            self.synced = false;
        }
        if !self.synced {
            self.resync(&shared.config, call)?;
        }
        Ok(())
    }

    /// The `guest-sync-delimited` handshake, resent with a fresh id every
    /// `sync_retry_interval` until the call's deadline.
    fn resync(&mut self, config: &Config, call: &Call<'_>) -> Result<()> {
        let mut attempts = 0u32;
        let end = loop {
            attempts += 1;
            let (mut handshake, request) = self.start_sync();
            let retry_at = call
                .deadline
                .min(later(Instant::now(), config.sync_retry_interval));
            match self.sync_attempt(&mut handshake, &request, retry_at) {
                Some(end) => break end,
                None if Instant::now() >= call.deadline => return Err(call.timed_out()),
                None => tracing::debug!(attempts, "no answer to guest-sync-delimited yet"),
            }
        };
        self.finish_sync(end, attempts)
    }

    /// One handshake attempt until `until`: `None` when it ran out first.
    fn sync_attempt(
        &mut self,
        handshake: &mut Handshake,
        request: &[u8],
        until: Instant,
    ) -> Option<SyncEnd> {
        let socket = self.stream.as_mut()?;
        match socket.write_until(request, &mut 0, until) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(SyncEnd::Failed(e)),
        }
        loop {
            let incoming = self.read_frame(until).transpose()?;
            if let Some(end) = self.sync_step(handshake, incoming) {
                return Some(end);
            }
        }
    }

    /// Decodes the next frame, reading until `until` at most: `Ok(None)` when it ran out.
    fn read_frame(&mut self, until: Instant) -> std::io::Result<Option<Incoming>> {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(frame)) => return Ok(Some(Incoming::Frame(frame))),
                Ok(None) => {}
                Err(e) => return Ok(Some(Incoming::BadFrame(e))),
            }
            let Some(socket) = self.stream.as_mut() else {
                return Ok(Some(Incoming::Eof));
            };
            match socket.read_until(&mut self.rbuf, until)? {
                None => return Ok(None),
                Some(0) => return Ok(Some(Incoming::Eof)),
                Some(_) => {}
            }
        }
    }

    /// Sends the prepared request on a synchronised connection and reads its reply (for a
    /// command that sends none on success, waits the grace period for an error reply).
    pub(super) fn send(&mut self, config: &Config, call: &Call<'_>, expects_reply: bool) -> Sent {
        // From here until the reply is read, the channel is in doubt.
        self.synced = false;
        let Some(socket) = self.stream.as_mut() else {
            return Sent::Failed {
                error: Error::Closed,
                unsent: true,
            };
        };
        let mut written = 0;
        let read = match socket.write_until(&self.wbuf, &mut written, call.deadline) {
            Ok(true) if expects_reply => self.read_frame(call.deadline),
            Ok(true) => self.read_frame(
                call.deadline
                    .min(later(Instant::now(), config.no_reply_grace)),
            ),
            Ok(false) => Ok(None),
            Err(e) => Err(e),
        };
        let incoming = match read {
            Ok(Some(incoming)) => Ok(incoming),
            // Accepted. The channel stays unsynced: a late error reply must not be taken as
            // the answer to the next command.
            Ok(None) if !expects_reply && written == self.wbuf.len() => return Sent::NoReply,
            Ok(None) => {
                return Sent::Failed {
                    error: call.timed_out(),
                    unsent: false,
                };
            }
            Err(e) => Err(e),
        };
        self.judge_sent(incoming, written, expects_reply)
    }

    /// Reads one more reply for the request already sent (after a message that was not its
    /// answer was skipped).
    pub(super) fn next_reply(&mut self, call: &Call<'_>) -> Sent {
        match self.read_frame(call.deadline) {
            Ok(Some(incoming)) => self.outcome(Ok(incoming), usize::MAX),
            Ok(None) => Sent::Failed {
                error: call.timed_out(),
                unsent: false,
            },
            Err(e) => self.outcome(Err(e), usize::MAX),
        }
    }
}
