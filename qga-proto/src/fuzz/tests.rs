//! The fuzz bodies over the committed corpus, and their helpers.

use bytes::BytesMut;

use super::handshake::{ends_with_sync_reply, handshake_synced};
use super::typed_replies::{TYPED_REPLY_DECODERS, typed_replies_counted};
use super::*;
use crate::codec::{Frame, FrameDecoder};
use crate::message::QmpMessage;

/// The files of `fuzz/corpus/<target>`, by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    assert!(!out.is_empty(), "empty corpus for {target}");
    out.sort();
    out
}

#[test]
fn corpus_replays_cleanly() {
    for (_, data) in corpus("decoder_splits") {
        decoder_splits(&data);
    }
    for (_, data) in corpus("qmp_messages") {
        qmp_messages(&data);
    }
}

#[test]
fn every_captured_reply_decodes_as_its_type() {
    for (name, data) in corpus("typed_replies") {
        let (messages, decoded) = typed_replies_counted(&data);
        assert!(messages > 0, "{name}");
        if name.starts_with("crash-") {
            continue;
        }
        // QMP streams also hold events (and the greeting), which are not replies.
        let mut out = Vec::new();
        drain(
            &mut FrameDecoder::new(),
            &mut BytesMut::from(&data[1..]),
            true,
            &mut out,
        );
        let not_replies = out
            .iter()
            .filter(|f| match f {
                Ok(Frame::Message(m)) => {
                    !matches!(QmpMessage::from_slice(m), Ok(QmpMessage::Reply(_)))
                }
                _ => false,
            })
            .count();
        assert_eq!(decoded + not_replies, messages, "{name}");
    }
}

#[test]
fn every_handshake_seed_syncs() {
    for (name, data) in corpus("handshake") {
        let synced = handshake_synced(&data);
        assert!(synced || name.starts_with("crash-"), "{name}");
    }
}

#[test]
fn layouts() {
    assert_eq!(
        pieces(&[0, 2], b"abcdefg"),
        vec![&b"a"[..], b"bcd", b"e", b"fg"]
    );
    assert_eq!(pieces(&[], b"abc"), vec![&b"abc"[..]]);
    assert_eq!(small_max(0), 2);
    assert_eq!(small_max(255), 4096);
    assert_eq!(TYPED_REPLY_COMMANDS.len(), TYPED_REPLY_DECODERS.len());
}

#[test]
fn handshake_oracle() {
    assert!(ends_with_sync_reply(b"x\xff \n{\"return\": 5}", 17, 5));
    assert!(!ends_with_sync_reply(b"{\"return\": 5}", 13, 5));
    assert!(!ends_with_sync_reply(b"\xff{\"return\": 6}", 14, 5));
    // Valid JSON that serde_json::Value rejects; invalid UTF-8.
    let big = b"\xff{\"return\": 5, \"x\": 1e999}";
    assert!(ends_with_sync_reply(big, big.len(), 5));
    let bad = b"\xff{\"return\": 5, \"id\": \"\xe8\"}";
    assert!(!ends_with_sync_reply(bad, bad.len(), 5));
}
