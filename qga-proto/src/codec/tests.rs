use bytes::BytesMut;
use proptest::prelude::*;

use super::*;

/// Everything the decoder yields for `input` fed in the given pieces, then EOF.
fn decode_pieces(decoder: &mut FrameDecoder, pieces: &[&[u8]]) -> Vec<Result<Frame, FrameError>> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => break,
                Err(e) => out.push(Err(e)),
            }
        }
    }
    loop {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(f)) => out.push(Ok(f)),
            Ok(None) => break,
            Err(e) => out.push(Err(e)),
        }
    }
    out
}

fn decode_all(input: &[u8]) -> Vec<Result<Frame, FrameError>> {
    decode_pieces(&mut FrameDecoder::new(), &[input])
}

fn msg(s: &str) -> Result<Frame, FrameError> {
    Ok(Frame::Message(Bytes::copy_from_slice(s.as_bytes())))
}

#[test]
fn one_message_with_lf_and_crlf() {
    assert_eq!(
        decode_all(b"{\"return\": {}}\n"),
        vec![msg("{\"return\": {}}")]
    );
    assert_eq!(
        decode_all(b"{\"return\": {}, \"id\": 1}\r\n"),
        vec![msg("{\"return\": {}, \"id\": 1}")]
    );
}

#[test]
fn two_messages_in_one_read_without_separator() {
    assert_eq!(
        decode_all(b"{\"return\": {}}{\"return\": {}, \"id\": 2}"),
        vec![msg("{\"return\": {}}"), msg("{\"return\": {}, \"id\": 2}")]
    );
}

#[test]
fn whitespace_between_and_message_spanning_lines() {
    assert_eq!(
        decode_all(b" \t\r\n{\"execute\":\"guest-ping\",\n\"id\":5}\n\n  [1, {\"a\": [2]}]  "),
        vec![
            msg("{\"execute\":\"guest-ping\",\n\"id\":5}"),
            msg("[1, {\"a\": [2]}]")
        ]
    );
}

#[test]
fn one_byte_at_a_time() {
    let input = b"{\"return\": {\"s\": \"a}b{c\\\"d\\\\\"}}\n\xff{\"return\": 42}\n";
    let pieces: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        decode_pieces(&mut FrameDecoder::new(), &pieces),
        vec![
            msg("{\"return\": {\"s\": \"a}b{c\\\"d\\\\\"}}"),
            Ok(Frame::Sentinel),
            msg("{\"return\": 42}"),
        ]
    );
}

#[test]
fn braces_and_escapes_inside_strings() {
    assert_eq!(
        decode_all(br#"{"desc": "stray '\"}' and \\"}"#),
        vec![msg(r#"{"desc": "stray '\"}' and \\"}"#)]
    );
}

#[test]
fn sentinel_mid_message_aborts_it_and_is_reported() {
    assert_eq!(
        decode_all(b"{\"return\": {\"a\": \"xy\xff{\"return\": 1}\n"),
        vec![
            Err(FrameError::Interrupted { len: 20 }),
            Ok(Frame::Sentinel),
            msg("{\"return\": 1}")
        ]
    );
    // Also outside a string, and right after a backslash.
    assert_eq!(
        decode_all(b"{\"a\": 1\xff{}"),
        vec![
            Err(FrameError::Interrupted { len: 7 }),
            Ok(Frame::Sentinel),
            msg("{}")
        ]
    );
    assert_eq!(
        decode_all(b"{\"a\": \"\\\xff{}"),
        vec![
            Err(FrameError::Interrupted { len: 8 }),
            Ok(Frame::Sentinel),
            msg("{}")
        ]
    );
}

#[test]
fn eof_mid_message() {
    assert_eq!(
        decode_all(b"{\"return\": {}}\n{\"return\""),
        vec![
            msg("{\"return\": {}}"),
            Err(FrameError::Truncated { len: 9 })
        ]
    );
    assert_eq!(decode_all(b"  \n"), vec![]);
}

#[test]
fn too_long_then_recovery() {
    let mut d = FrameDecoder::with_max_message_len(32);
    let long = format!("{{\"return\": \"{}\"}}\n", "x".repeat(100));
    let input = format!("{{\"ok\": 1}}\n{long}{{\"return\": {{}}}}\n");
    assert_eq!(
        decode_pieces(&mut d, &[input.as_bytes()]),
        vec![
            msg("{\"ok\": 1}"),
            Err(FrameError::TooLarge { limit: 32 }),
            msg("{\"return\": {}}")
        ]
    );
    // The same, arriving in small pieces: the oversized part is never buffered past the limit.
    let mut d = FrameDecoder::with_max_message_len(32);
    let pieces: Vec<&[u8]> = input.as_bytes().chunks(7).collect();
    assert_eq!(
        decode_pieces(&mut d, &pieces),
        vec![
            msg("{\"ok\": 1}"),
            Err(FrameError::TooLarge { limit: 32 }),
            msg("{\"return\": {}}")
        ]
    );
}

#[test]
fn exactly_at_the_limit_is_accepted() {
    let body = "{\"a\": \"xxxxxx\"}"; // 15 bytes
    let mut d = FrameDecoder::with_max_message_len(15);
    assert_eq!(decode_pieces(&mut d, &[body.as_bytes()]), vec![msg(body)]);
    let mut d = FrameDecoder::with_max_message_len(14);
    assert_eq!(
        decode_pieces(&mut d, &[body.as_bytes()]),
        vec![Err(FrameError::TooLarge { limit: 14 })]
    );
}

#[test]
fn oversized_message_dropped_until_sentinel() {
    let mut d = FrameDecoder::with_max_message_len(16);
    let mut buf = BytesMut::from(&b"{\"return\": \"aaaaaaaaaaaaaaaaaaaaaaa"[..]);
    assert_eq!(d.decode(&mut buf), Err(FrameError::TooLarge { limit: 16 }));
    for _ in 0..100 {
        buf.extend_from_slice(&[b'a'; 1000]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert!(buf.is_empty(), "discarded bytes are not kept");
    }
    buf.extend_from_slice(b"aa\xff{\"return\": 3}");
    assert_eq!(d.decode(&mut buf), Ok(Some(Frame::Sentinel)));
    assert_eq!(
        d.decode(&mut buf),
        Ok(Some(Frame::Message(Bytes::from_static(b"{\"return\": 3}"))))
    );
}

#[test]
fn garbage_between_messages_is_one_error_per_run() {
    assert_eq!(
        decode_all(b"abc def\n{\"return\": {}}\n42 }\n]{\"x\": 1}"),
        vec![
            Err(FrameError::Garbage { byte: b'a' }),
            msg("{\"return\": {}}"),
            Err(FrameError::Garbage { byte: b'4' }),
            Err(FrameError::Garbage { byte: b']' }),
            msg("{\"x\": 1}"),
        ]
    );
}

#[test]
fn raw_newline_in_string_breaks_only_that_message() {
    assert_eq!(
        decode_all(b"{\"return\": \"unterminated\n{\"return\": {}}\n"),
        vec![
            Err(FrameError::Malformed { len: 24 }),
            msg("{\"return\": {}}")
        ]
    );
}

#[test]
fn flood_without_newlines_stays_bounded() {
    let mut d = FrameDecoder::with_max_message_len(1024);
    let mut buf = BytesMut::new();
    let mut errors = 0;
    buf.extend_from_slice(b"[");
    for _ in 0..200 {
        buf.extend_from_slice(&[b'1'; 4096]);
        loop {
            match d.decode(&mut buf) {
                Ok(None) => break,
                Ok(Some(f)) => panic!("unexpected frame {f:?}"),
                Err(_) => errors += 1,
            }
        }
        assert!(buf.len() <= 1025 + 4096);
    }
    assert_eq!(errors, 1);
}

#[test]
fn skip_to_sentinel_drops_everything_before_it() {
    let mut d = FrameDecoder::new();
    let mut buf = BytesMut::from(&b"{\"return\": {}}\n{\"partial"[..]);
    d.skip_to_sentinel();
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert!(buf.is_empty());
    buf.extend_from_slice(b"more}\xff{\"return\": 1}");
    assert_eq!(d.decode(&mut buf), Ok(Some(Frame::Sentinel)));
    assert_eq!(
        d.decode(&mut buf),
        Ok(Some(Frame::Message(Bytes::from_static(b"{\"return\": 1}"))))
    );
}

#[cfg(feature = "tokio-codec")]
#[test]
fn tokio_codec_yields_errors_as_items() {
    use tokio_util::codec::{Decoder as _, Encoder as _};

    let mut codec = QgaCodec::with_max_message_len(8);
    let mut buf = BytesMut::from(&b"{\"aaaaaaaaaaaaaa\": 1}\n{}\n"[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Ok(Some(Err(FrameError::TooLarge { .. })))
    ));
    assert!(matches!(
        codec.decode(&mut buf),
        Ok(Some(Ok(Frame::Message(_))))
    ));
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    let mut out = BytesMut::new();
    codec.encode(Outgoing::Sentinel, &mut out).unwrap();
    codec
        .encode(Outgoing::Encoded(Bytes::from_static(b"{}\n")), &mut out)
        .unwrap();
    assert_eq!(&out[..], b"\xff{}\n");
}

/// Messages made of arbitrary JSON values, as a peer would send them.
fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".*".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(".*", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn decode_of_encode_is_identity(
        values in prop::collection::vec(arb_json(), 1..6),
        sentinels in prop::collection::vec(any::<bool>(), 6),
        crlf in any::<bool>(),
    ) {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (i, v) in values.iter().enumerate() {
            if sentinels[i] {
                input.push(SENTINEL);
                expected.push(None);
            }
            let obj = serde_json::json!({ "return": v });
            input.extend_from_slice(serde_json::to_string(&obj).unwrap().as_bytes());
            input.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            expected.push(Some(obj));
        }
        let frames = decode_all(&input);
        prop_assert_eq!(frames.len(), expected.len());
        for (frame, want) in frames.into_iter().zip(expected) {
            match (frame, want) {
                (Ok(Frame::Sentinel), None) => {}
                (Ok(Frame::Message(bytes)), Some(want)) => {
                    let got: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                    prop_assert_eq!(got, want);
                }
                (other, want) => prop_assert!(false, "{:?} vs {:?}", other, want),
            }
        }
    }

    #[test]
    fn any_split_decodes_the_same(
        input in prop::collection::vec(
            prop_oneof![
                Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b'\\'),
                Just(b'\n'), Just(b' '), Just(SENTINEL), Just(b'a'), Just(b':'), any::<u8>()
            ],
            0..300,
        ),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        max in 4usize..64,
    ) {
        let whole = decode_pieces(&mut FrameDecoder::with_max_message_len(max), &[&input]);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut last = 0;
        for p in points {
            pieces.push(&input[last..p]);
            last = p;
        }
        pieces.push(&input[last..]);
        let split = decode_pieces(&mut FrameDecoder::with_max_message_len(max), &pieces);
        prop_assert_eq!(&whole, &split);
        for frame in &whole {
            if let Ok(Frame::Message(m)) = frame {
                prop_assert!(m.len() <= max);
            }
        }
    }
}

proptest! {
    #[test]
    fn the_eight_byte_string_scan_finds_what_the_byte_scan_finds(
        bytes in proptest::collection::vec(
            proptest::sample::select(b"ab\"\\\n\xff\x00\x7f\x80 ".to_vec()), 0..40),
    ) {
        let want = bytes.iter().position(|&b| matches!(b, b'"' | b'\\' | b'\n' | SENTINEL));
        prop_assert_eq!(string_run_end(&bytes), want);
    }
}
