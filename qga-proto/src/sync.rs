//! The `guest-sync-delimited` handshake as a state machine.
//!
//! A QGA channel carries no connection semantics: after a reconnect, a timeout or an agent
//! restart it may still hold replies nobody read (of any size) and a partial request inside the
//! agent's parser. The handshake puts both sides back in a known state:
//!
//! 1. the client sends `0xFF` (which resets the agent's parser and provokes one error reply)
//!    followed by `guest-sync-delimited` with a fresh id;
//! 2. the agent writes `0xFF` immediately before its reply to that command, so everything
//!    before the agent's `0xFF` is stale and is dropped unread;
//! 3. the reply after the sentinel must carry our id. A different number is the reply to an
//!    earlier sync that timed out: it is dropped and the client waits for the next sentinel.
//!
//! [`Handshake`] does the bookkeeping; the caller moves bytes and owns the deadline. A
//! handshake that times out must be abandoned and a new one started with a new id.
//!
//! ```
//! use bytes::BytesMut;
//! use qga_proto::codec::FrameDecoder;
//! use qga_proto::sync::{Handshake, Progress};
//!
//! let mut decoder = FrameDecoder::new();
//! let mut hs = Handshake::start(123456789, &mut decoder);
//! assert_eq!(hs.request()[0], 0xFF);
//! // What a real agent answered, with a stale reply in front.
//! let mut input = BytesMut::from(
//!     &b"{\"return\": {}, \"id\": \"old\"}\n{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\\\uFFFD'\"}}\n\xff{\"return\": 123456789}\n"[..],
//! );
//! assert_eq!(hs.advance(&mut decoder, &mut input), Progress::Synced);
//! ```

use bytes::{Bytes, BytesMut};
use serde::Deserialize;

use crate::codec::{Frame, FrameDecoder, SENTINEL};

/// Where a handshake stands after the bytes it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed.
    Pending,
    /// The agent answered our id: the channel is in sync.
    Synced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Dropping bytes up to the agent's sentinel.
    AwaitSentinel,
    /// The sentinel arrived; the next message should be our reply.
    AwaitReply,
    /// Done.
    Synced,
}

/// One `guest-sync-delimited` exchange. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Handshake {
    id: u64,
    state: State,
    stale_replies: u64,
}

/// Largest id worth sending: qemu-ga takes an int64, and values below 2^53 survive any JSON
/// consumer that reads numbers as doubles.
pub const MAX_SYNC_ID: u64 = (1 << 53) - 1;

impl Handshake {
    /// Starts a handshake with `id` (taken modulo 2^53; pick it at random so that it cannot
    /// match a reply to an earlier handshake) and puts `decoder` into sentinel-scanning mode.
    pub fn start(id: u64, decoder: &mut FrameDecoder) -> Self {
        decoder.skip_to_sentinel();
        Self {
            id: id & MAX_SYNC_ID,
            state: State::AwaitSentinel,
            stale_replies: 0,
        }
    }

    /// The id this handshake waits for.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// True once the agent answered.
    pub fn is_synced(&self) -> bool {
        self.state == State::Synced
    }

    /// How many replies to earlier handshakes were dropped.
    pub fn stale_replies(&self) -> u64 {
        self.stale_replies
    }

    /// The bytes to send: `0xFF` and the `guest-sync-delimited` request.
    pub fn request(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(80);
        out.extend_from_slice(&[SENTINEL]);
        out.extend_from_slice(b"{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.id).as_bytes());
        out.extend_from_slice(b"}}\n");
        out.freeze()
    }

    /// Feeds the next frame or framing error. Returns [`Progress::Synced`] when it was our
    /// reply; anything else is dropped, and the decoder is sent back to scanning for the next
    /// sentinel when the reply after a sentinel was not ours.
    pub fn handle(
        &mut self,
        frame: Result<Frame, crate::codec::FrameError>,
        decoder: &mut FrameDecoder,
    ) -> Progress {
        match (self.state, frame) {
            (State::Synced, _) => Progress::Synced,
            (State::AwaitSentinel, Ok(Frame::Sentinel)) => {
                self.state = State::AwaitReply;
                Progress::Pending
            }
            (State::AwaitSentinel, _) => {
                // Only reachable if the caller fed frames decoded before `start`.
                decoder.skip_to_sentinel();
                Progress::Pending
            }
            (State::AwaitReply, Ok(Frame::Sentinel)) => Progress::Pending,
            (State::AwaitReply, Ok(Frame::Message(bytes))) => {
                if sync_reply_id(&bytes) == Some(self.id) {
                    self.state = State::Synced;
                    Progress::Synced
                } else {
                    self.stale_replies += 1;
                    self.state = State::AwaitSentinel;
                    decoder.skip_to_sentinel();
                    Progress::Pending
                }
            }
            (State::AwaitReply, Err(_)) => {
                self.state = State::AwaitSentinel;
                decoder.skip_to_sentinel();
                Progress::Pending
            }
        }
    }

    /// Decodes and handles frames from `input` until the handshake completes or the bytes run
    /// out. Bytes after our reply stay in `input`.
    pub fn advance(&mut self, decoder: &mut FrameDecoder, input: &mut BytesMut) -> Progress {
        loop {
            if self.is_synced() {
                return Progress::Synced;
            }
            let frame = match decoder.decode(input) {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) => return Progress::Pending,
                Err(e) => Err(e),
            };
            if self.handle(frame, decoder) == Progress::Synced {
                return Progress::Synced;
            }
        }
    }
}

/// The number in `{"return": N}`, if that is what the message is.
fn sync_reply_id(bytes: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct SyncReply {
        #[serde(rename = "return")]
        ret: Option<u64>,
    }
    // serde_json does not check UTF-8 inside members it skips; a message that is not text is
    // not a reply (qemu-ga writes pure ASCII), whatever number it carries.
    let text = std::str::from_utf8(bytes).ok()?;
    // serde's derived struct also reads a sequence (`[5]` would pass as `{"return": 5}`); a
    // reply is an object.
    if crate::message::first_non_space(bytes) != Some(b'{') {
        return None;
    }
    serde_json::from_str::<SyncReply>(text).ok()?.ret
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, input: &[u8]) -> (Progress, Handshake, BytesMut) {
        let mut decoder = FrameDecoder::new();
        let mut hs = Handshake::start(id, &mut decoder);
        let mut buf = BytesMut::from(input);
        let p = hs.advance(&mut decoder, &mut buf);
        (p, hs, buf)
    }

    #[test]
    fn request_bytes() {
        let mut d = FrameDecoder::new();
        let hs = Handshake::start(42, &mut d);
        assert_eq!(
            &hs.request()[..],
            b"\xff{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":42}}\n"
        );
        assert_eq!(Handshake::start(u64::MAX, &mut d).id(), MAX_SYNC_ID);
    }

    #[test]
    fn fresh_agent_transcript() {
        // T1 of the protocol notes: our 0xFF provokes an error reply before the sentinel.
        let (p, _, rest) = run(
            123456789,
            b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\\\uFFFD'\"}}\n\xff{\"return\": 123456789}\n",
        );
        assert_eq!(p, Progress::Synced);
        assert_eq!(&rest[..], b"\n");
    }

    #[test]
    fn stale_sync_reply_is_skipped() {
        let (p, hs, _) = run(7, b"\xff{\"return\": 6}\n{\"return\": 7}\n");
        // The unmarked {"return": 7} after a wrong sentinel reply is not trusted.
        assert_eq!(p, Progress::Pending);
        assert_eq!(hs.stale_replies(), 1);
        let (p, hs, _) = run(7, b"\xff{\"return\": 6}\n\xff{\"return\": 7}\n");
        assert_eq!(p, Progress::Synced);
        assert_eq!(hs.stale_replies(), 1);
    }

    #[test]
    fn a_sync_reply_is_an_object_not_an_array() {
        // Found by the `handshake` fuzz target: serde reads a struct from a sequence too.
        for input in [&b"\xff[5]\n"[..], b"\xff\r\r[\r5\r]\n", b"\xff[5, 1]\n"] {
            let (p, hs, _) = run(5, input);
            assert_eq!(p, Progress::Pending, "{input:?}");
            assert!(!hs.is_synced());
        }
        let (p, _, _) = run(5, b"\xff[5]\n\xff {\"return\": 5}\n");
        assert_eq!(p, Progress::Synced);
    }

    #[test]
    fn our_id_without_sentinel_is_not_accepted() {
        let (p, _, _) = run(7, b"{\"return\": 7}\n");
        assert_eq!(p, Progress::Pending);
    }

    #[test]
    fn error_or_garbage_after_sentinel_restarts_scan() {
        let (p, _, _) = run(
            9,
            b"\xff{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}\n\xffjunk\n\xff{\"return\": 9, \"id\": \"s\"}\n",
        );
        assert_eq!(p, Progress::Synced);
    }

    #[test]
    fn huge_stale_reply_is_dropped_without_buffering() {
        let mut decoder = FrameDecoder::with_max_message_len(1024);
        let mut hs = Handshake::start(5, &mut decoder);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(b"{\"return\": {\"buf-b64\": \"");
        for _ in 0..1000 {
            buf.extend_from_slice(&[b'A'; 4096]);
            assert_eq!(hs.advance(&mut decoder, &mut buf), Progress::Pending);
            assert!(buf.is_empty(), "stale bytes are dropped as they arrive");
        }
        buf.extend_from_slice(b"\"}}\n\xff{\"return\": 5}\nleft");
        assert_eq!(hs.advance(&mut decoder, &mut buf), Progress::Synced);
        assert_eq!(&buf[..], b"\nleft");
    }

    #[test]
    fn reply_with_invalid_utf8_is_not_ours() {
        // Found by the `handshake` fuzz target: invalid UTF-8 in a skipped member.
        let (p, hs, _) = run(5, b"\xff{\"return\": 5, \"id\": \"\xe8\xe8s5\"}\n");
        assert_eq!(p, Progress::Pending);
        assert_eq!(hs.stale_replies(), 1);
        let (p, _, _) = run(5, b"\xff{\"return\": 5, \"id\": \"\xc3\xa9\"}\n");
        assert_eq!(p, Progress::Synced);
    }

    #[test]
    fn byte_at_a_time() {
        let input = b"{\"return\": {}}\n{\"err\xff{\"return\": 77}\n";
        let mut decoder = FrameDecoder::new();
        let mut hs = Handshake::start(77, &mut decoder);
        let mut buf = BytesMut::new();
        let mut result = Progress::Pending;
        for &b in input {
            buf.extend_from_slice(&[b]);
            result = hs.advance(&mut decoder, &mut buf);
        }
        assert_eq!(result, Progress::Synced);
    }
}
