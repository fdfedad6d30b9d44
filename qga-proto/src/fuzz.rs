//! Fuzz bodies, compiled only under `cfg(fuzzing)` (cargo-fuzz sets it). The targets in
//! `fuzz/fuzz_targets/` call these, one function per target.
//!
//! Each body panics only when an invariant of this crate breaks; a malformed input is never a
//! reason to panic. The input layouts are documented per function; `fuzz/capture-corpus.py`
//! writes seeds in the same layouts (it reads [`TYPED_REPLY_COMMANDS`] and [`SYNC_IDS`] from
//! this file, so keep their one-entry-per-line form).
//!
//! The bodies also run as unit tests over the committed corpus:
//! `RUSTFLAGS="--cfg fuzzing" cargo test -p qga-proto --lib --target-dir target/cfg-fuzzing fuzz`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;

use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::codec::{Frame, FrameDecoder, FrameError, SENTINEL};
use crate::message::{QmpMessage, Reply};
use crate::qmp::{KnownEvent, TimedEvent};
use crate::sync::{Handshake, MAX_SYNC_ID, Progress};
use crate::{Command, qga, qmp};

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

/// Decodes each message as a reply to a command whose `return` is `T` and checks what can be
/// checked without knowing the bytes: the accessors work, and a decoded value encodes and
/// decodes again (to an equal value when `EXACT`; types holding floats may lose precision).
/// Returns whether the message decoded.
fn typed_reply<T, const EXACT: bool>(message: &[u8]) -> bool
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let Ok(reply) = Reply::<T>::from_slice(message) else {
        return false;
    };
    let _ = format!("{reply:?}");
    let id = reply.id().cloned();
    match reply.into_result() {
        Ok(value) => {
            let json = serde_json::to_vec(&value).expect("a decoded value encodes");
            let back: T = match serde_json::from_slice(&json) {
                Ok(back) => back,
                Err(e) => panic!("re-decoding {} failed: {e}", String::from_utf8_lossy(&json)),
            };
            if EXACT {
                assert_eq!(back, value, "decode(encode(x)) != x");
            }
        }
        Err(error) => {
            let _ = error.to_string();
            let _ = id;
        }
    }
    true
}

macro_rules! typed_replies {
    ($($name:literal => $ty:ty, $exact:literal;)*) => {
        /// Wire names of the commands `typed_replies` can select, in selector order: the first
        /// input byte modulo the length picks one. The last entry, `*raw*`, decodes the
        /// `return` value as untyped JSON (`RawCommand`).
        pub const TYPED_REPLY_COMMANDS: &[&str] = &[$($name,)* "*raw*"];

        const TYPED_REPLY_DECODERS: &[fn(&[u8]) -> bool] = &[
            $(typed_reply::<<$ty as Command>::Response, $exact>,)*
            typed_reply::<Value, false>,
        ];

        // The names above are the commands' own.
        const _: () = {
            $(assert!(
                same_str(<$ty as Command>::NAME, $name),
                concat!("wrong wire name for ", stringify!($ty))
            );)*
        };
    };
}

// BEGIN TYPED REPLIES (read by fuzz/capture-corpus.py; append new commands at the end)
typed_replies! {
    "guest-sync-delimited" => qga::GuestSyncDelimited, true;
    "guest-sync" => qga::GuestSync, true;
    "guest-ping" => qga::GuestPing, true;
    "guest-info" => qga::GuestInfo, true;
    "guest-get-time" => qga::GuestGetTime, true;
    "guest-set-time" => qga::GuestSetTime, true;
    "guest-get-timezone" => qga::GuestGetTimezone, true;
    "guest-shutdown" => qga::GuestShutdown, true;
    "guest-suspend-disk" => qga::GuestSuspendDisk, true;
    "guest-suspend-ram" => qga::GuestSuspendRam, true;
    "guest-suspend-hybrid" => qga::GuestSuspendHybrid, true;
    "guest-file-open" => qga::GuestFileOpen, true;
    "guest-file-close" => qga::GuestFileClose, true;
    "guest-file-read" => qga::GuestFileRead, true;
    "guest-file-write" => qga::GuestFileWrite<'static>, true;
    "guest-file-seek" => qga::GuestFileSeek, true;
    "guest-file-flush" => qga::GuestFileFlush, true;
    "guest-fsfreeze-status" => qga::GuestFsfreezeStatus, true;
    "guest-fsfreeze-freeze" => qga::GuestFsfreezeFreeze, true;
    "guest-fsfreeze-freeze-list" => qga::GuestFsfreezeFreezeList, true;
    "guest-fsfreeze-thaw" => qga::GuestFsfreezeThaw, true;
    "guest-fstrim" => qga::GuestFstrim, true;
    "guest-network-get-interfaces" => qga::GuestNetworkGetInterfaces, true;
    "guest-network-get-route" => qga::GuestNetworkGetRoute, true;
    "guest-get-vcpus" => qga::GuestGetVcpus, true;
    "guest-set-vcpus" => qga::GuestSetVcpus, true;
    "guest-get-memory-blocks" => qga::GuestGetMemoryBlocks, true;
    "guest-set-memory-blocks" => qga::GuestSetMemoryBlocks, true;
    "guest-get-memory-block-info" => qga::GuestGetMemoryBlockInfo, true;
    "guest-get-devices" => qga::GuestGetDevices, true;
    "guest-get-cpustats" => qga::GuestGetCpustats, true;
    "guest-get-disks" => qga::GuestGetDisks, false;
    "guest-get-fsinfo" => qga::GuestGetFsinfo, true;
    "guest-get-diskstats" => qga::GuestGetDiskstats, true;
    "guest-get-host-name" => qga::GuestGetHostName, true;
    "guest-get-osinfo" => qga::GuestGetOsinfo, true;
    "guest-get-users" => qga::GuestGetUsers, false;
    "guest-get-load" => qga::GuestGetLoad, false;
    "guest-set-user-password" => qga::GuestSetUserPassword, true;
    "guest-exec" => qga::GuestExec, true;
    "guest-exec-status" => qga::GuestExecStatus, true;
    "guest-ssh-get-authorized-keys" => qga::GuestSshGetAuthorizedKeys, true;
    "guest-ssh-add-authorized-keys" => qga::GuestSshAddAuthorizedKeys, true;
    "guest-ssh-remove-authorized-keys" => qga::GuestSshRemoveAuthorizedKeys, true;
    "qmp_capabilities" => qmp::QmpCapabilities, true;
    "query-version" => qmp::QueryVersion, true;
    "query-status" => qmp::QueryStatus, true;
    "query-commands" => qmp::QueryCommands, true;
    "query-chardev" => qmp::QueryChardev, true;
    "stop" => qmp::Stop, true;
    "cont" => qmp::Cont, true;
    "system_powerdown" => qmp::SystemPowerdown, true;
    "system_reset" => qmp::SystemReset, true;
    "quit" => qmp::Quit, true;
    "human-monitor-command" => qmp::HumanMonitorCommand, true;
}
// END TYPED REPLIES

const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// Every qemu-ga command of the catalogue has an entry.
const _: () = {
    let mut i = 0;
    while i < qga::ALL_COMMANDS.len() {
        let mut found = false;
        let mut j = 0;
        while j < TYPED_REPLY_COMMANDS.len() {
            found |= same_str(qga::ALL_COMMANDS[i], TYPED_REPLY_COMMANDS[j]);
            j += 1;
        }
        assert!(found, "a qga command is missing from TYPED_REPLY_COMMANDS");
        i += 1;
    }
};

/// Target `typed_replies`. Input: `[selector] stream`.
///
/// The selector picks a command of [`TYPED_REPLY_COMMANDS`]; every message of the stream is
/// decoded as a reply to it. Must never panic.
pub fn typed_replies(data: &[u8]) {
    typed_replies_counted(data);
}

/// [`typed_replies`], returning how many messages there were and how many decoded.
fn typed_replies_counted(data: &[u8]) -> (usize, usize) {
    let Some((&selector, stream)) = data.split_first() else {
        return (0, 0);
    };
    let decode = TYPED_REPLY_DECODERS[usize::from(selector) % TYPED_REPLY_DECODERS.len()];
    let mut decoder = FrameDecoder::new();
    let mut buf = BytesMut::from(stream);
    let mut out = Vec::new();
    drain(&mut decoder, &mut buf, true, &mut out);
    let (mut messages, mut decoded) = (0, 0);
    for frame in out {
        if let Ok(Frame::Message(bytes)) = frame {
            messages += 1;
            decoded += usize::from(decode(&bytes));
        }
    }
    (messages, decoded)
}

/// The ids the `handshake` target can wait for; the first input byte modulo the length picks
/// one.
// BEGIN SYNC IDS (read by fuzz/capture-corpus.py)
pub const SYNC_IDS: [u64; 8] = [123456789, 987654321, 42, 5, 777, 1, 0, 9007199254740991];
// END SYNC IDS

const _: () = assert!(SYNC_IDS[7] == MAX_SYNC_ID);

/// True if `data[..end]` ends with `0xFF`, optional whitespace and a JSON object whose
/// `return` member is `id`. Checked independently of the decoder and of `sync.rs`: UTF-8 by
/// `std`, the grammar and the members by [`ReturnMember`].
fn ends_with_sync_reply(data: &[u8], end: usize, id: u64) -> bool {
    (0..end).filter(|&i| data[i] == SENTINEL).any(|i| {
        let mut j = i + 1;
        while j < end && matches!(data[j], b' ' | b'\t' | b'\r' | b'\n') {
            j += 1;
        }
        let message = &data[j..end];
        if std::str::from_utf8(message).is_err() {
            return false;
        }
        let mut values = serde_json::Deserializer::from_slice(message).into_iter::<ReturnMember>();
        match values.next() {
            Some(Ok(ReturnMember(ret))) => values.byte_offset() == message.len() && ret == Some(id),
            _ => false,
        }
    })
}

/// A JSON object read member by member, keeping only `return` when it is an unsigned
/// integer. Unlike `serde_json::Value` it accepts numbers beyond the range of `f64` (valid JSON
/// that `Value` rejects) in the other members.
struct ReturnMember(Option<u64>);

impl<'de> serde::Deserialize<'de> for ReturnMember {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = ReturnMember;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ReturnMember, A::Error> {
                let mut ret = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "return" {
                        ret = map.next_value::<Value>()?.as_u64();
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(ReturnMember(ret))
            }
        }
        d.deserialize_map(Members)
    }
}

/// Target `handshake`. Input: `[id selector] [max] [n] [n chunk lengths] data`.
///
/// Feeds `data` in pieces to a [`Handshake`] waiting for one of [`SYNC_IDS`], through a
/// decoder with a small limit, twice: with [`Handshake::advance`] and with a hand-written loop
/// over `decode` and [`Handshake::handle`] whose iterations are bounded. Checks that both agree,
/// and that `Synced` is reported only right after a `0xFF`, optional whitespace and a JSON
/// object with `"return": <id>`.
pub fn handshake(data: &[u8]) {
    handshake_synced(data);
}

/// [`handshake`], returning whether it synced.
fn handshake_synced(data: &[u8]) -> bool {
    let [selector, max, rest @ ..] = data else {
        return false;
    };
    let Some((lens, data)) = chunk_header(rest) else {
        return false;
    };
    let id = SYNC_IDS[usize::from(*selector) % SYNC_IDS.len()];
    let max = small_max(*max);
    let chunks = pieces(lens, data);

    // With advance().
    let mut decoder = FrameDecoder::with_max_message_len(max);
    let mut hs = Handshake::start(id, &mut decoder);
    assert_eq!(hs.id(), id);
    let request = hs.request();
    assert_eq!(request[0], SENTINEL);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut synced_at = None;
    for chunk in &chunks {
        assert!(buf.len() <= decoder.max_message_len());
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        if hs.advance(&mut decoder, &mut buf) == Progress::Synced {
            synced_at = Some(fed - buf.len());
            break;
        }
    }
    if let Some(end) = synced_at {
        assert!(hs.is_synced());
        assert!(
            ends_with_sync_reply(data, end, id),
            "synced without our reply after a sentinel"
        );
        // Once synced it stays synced and consumes nothing.
        let left = buf.len();
        assert_eq!(hs.advance(&mut decoder, &mut buf), Progress::Synced);
        assert_eq!(buf.len(), left);
    } else {
        assert!(!hs.is_synced());
    }
    let sentinels = data.iter().filter(|&&b| b == SENTINEL).count();
    assert!(hs.stale_replies() as usize <= sentinels);

    // By hand, bounded: every frame or error consumes at least one byte.
    let mut decoder2 = FrameDecoder::with_max_message_len(max);
    let mut hs2 = Handshake::start(id, &mut decoder2);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut synced_at2 = None;
    'feed: for chunk in &chunks {
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        for _ in 0..=buf.len() + 1 {
            let frame = match decoder2.decode(&mut buf) {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) => continue 'feed,
                Err(e) => Err(e),
            };
            if hs2.handle(frame, &mut decoder2) == Progress::Synced {
                synced_at2 = Some(fed - buf.len());
                break 'feed;
            }
        }
        panic!("decode/handle did not finish a chunk within its length");
    }
    assert_eq!(synced_at, synced_at2, "advance and handle disagree");
    assert_eq!(hs.stale_replies(), hs2.stale_replies());
    synced_at.is_some()
}

/// Target `qmp_messages`: arbitrary bytes through the decoder, [`QmpMessage::from_slice`] and
/// [`KnownEvent::from_event`]. Must never panic; an event keeps its name and time.
pub fn qmp_messages(data: &[u8]) {
    let mut decoder = FrameDecoder::new();
    let mut buf = BytesMut::from(data);
    let mut out = Vec::new();
    drain(&mut decoder, &mut buf, true, &mut out);
    for frame in out {
        let Ok(Frame::Message(bytes)) = frame else {
            continue;
        };
        match QmpMessage::from_slice(&bytes) {
            Ok(QmpMessage::Event(event)) => {
                let timed = TimedEvent::from(event.clone());
                assert_eq!(timed.name, event.event);
                assert_eq!(timed.timestamp, event.timestamp);
                let known = KnownEvent::from_event(event.clone());
                match (&known, event.event.as_str()) {
                    (KnownEvent::Stop, "STOP")
                    | (KnownEvent::Resume, "RESUME")
                    | (KnownEvent::Suspend, "SUSPEND")
                    | (
                        KnownEvent::Shutdown(_)
                        | KnownEvent::Reset(_)
                        | KnownEvent::VserportChange(_),
                        _,
                    ) => {}
                    (KnownEvent::Other(kept), _) => assert_eq!(kept, &event),
                    (other, name) => panic!("{name} typed as {other:?}"),
                }
                let _ = format!("{known:?}");
            }
            Ok(QmpMessage::Greeting(greeting)) => {
                let _ = greeting.qmp.version.qemu.to_string();
            }
            Ok(QmpMessage::Reply(reply)) => {
                let _ = format!("{reply:?}");
                if let Err(error) = reply.into_result() {
                    let _ = error.to_string();
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}

#[cfg(test)]
mod tests;
