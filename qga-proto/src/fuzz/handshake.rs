//! Target `handshake`: the guest-sync-delimited state machine against an independent oracle.

use bytes::BytesMut;
use serde_json::Value;

use super::{chunk_header, pieces, small_max};
use crate::codec::{FrameDecoder, SENTINEL};
use crate::sync::{Handshake, MAX_SYNC_ID, Progress};

/// The ids the `handshake` target can wait for; the first input byte modulo the length picks
/// one.
// BEGIN SYNC IDS (read by fuzz/capture-corpus.py)
pub const SYNC_IDS: [u64; 8] = [123456789, 987654321, 42, 5, 777, 1, 0, 9007199254740991];
// END SYNC IDS

const _: () = assert!(SYNC_IDS[7] == MAX_SYNC_ID);

/// True if `data[..end]` ends with `0xFF`, optional whitespace and a JSON object whose
/// `return` member is `id`. Checked independently of the decoder and of `sync.rs`: UTF-8 by
/// `std`, the grammar and the members by [`ReturnMember`].
pub(super) fn ends_with_sync_reply(data: &[u8], end: usize, id: u64) -> bool {
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
pub(super) fn handshake_synced(data: &[u8]) -> bool {
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
