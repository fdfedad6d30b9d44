use proptest::prelude::*;

use super::*;
use crate::packet::{MessageType, REMOTE_PROGRAM, Status, encode_packet};

fn packet(serial: u32, payload: &[u8]) -> Vec<u8> {
    let h = Header {
        program: REMOTE_PROGRAM,
        version: 1,
        procedure: 1,
        kind: MessageType::Reply,
        serial,
        status: Status::Ok,
    };
    encode_packet(&h, payload, MAX_PACKET_LEN).unwrap().to_vec()
}

/// Feeds `chunks` one after the other and collects every result.
fn run(max: u32, chunks: &[&[u8]]) -> Vec<Result<Packet, FrameError>> {
    let mut d = PacketDecoder::with_max_packet_len(max);
    let mut out = Vec::new();
    for chunk in chunks {
        let mut input = *chunk;
        loop {
            let before = input.len();
            match d.decode(&mut input) {
                Ok(None) => {
                    assert!(input.is_empty());
                    break;
                }
                Ok(Some(p)) => out.push(Ok(p)),
                Err(e) => out.push(Err(e)),
            }
            assert!(input.len() < before || before == 0);
            assert!(d.buffered_len() <= d.max_packet_len() as usize);
        }
    }
    out
}

#[test]
fn one_byte_at_a_time() {
    let bytes = packet(7, b"abcd");
    let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
    let out = run(MAX_PACKET_LEN, &chunks);
    assert_eq!(out.len(), 1);
    let p = out[0].as_ref().unwrap();
    assert_eq!(p.header.serial, 7);
    assert_eq!(&p.payload[..], b"abcd");
}

#[test]
fn two_packets_in_one_read() {
    let mut bytes = packet(1, b"");
    bytes.extend(packet(2, b"12345678"));
    let out = run(MAX_PACKET_LEN, &[&bytes]);
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].as_ref().unwrap().header.serial, 2);
}

#[test]
fn too_short_is_skipped() {
    // Length 8: the length word and 4 more bytes, then a good packet.
    let mut bytes = vec![0, 0, 0, 8, 1, 2, 3, 4];
    bytes.extend(packet(3, b""));
    let out = run(MAX_PACKET_LEN, &[&bytes]);
    assert_eq!(out[0], Err(FrameError::TooShort { len: 8 }));
    assert_eq!(out[1].as_ref().unwrap().header.serial, 3);
    // Lengths 0..4 skip nothing beyond the length word.
    let out = run(MAX_PACKET_LEN, &[&[0, 0, 0, 0]]);
    assert_eq!(out, [Err(FrameError::TooShort { len: 0 })]);
}

#[test]
fn too_large_reports_the_header_then_recovers() {
    let big = packet(9, &[0; 100]);
    let mut bytes = big.clone();
    bytes.extend(packet(10, b"ok!!"));
    let out = run(64, &[&bytes]);
    match &out[0] {
        Err(FrameError::TooLarge { len, max, header }) => {
            assert_eq!((*len, *max), (128, 64));
            assert_eq!(header.serial, 9);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(&out[1].as_ref().unwrap().payload[..], b"ok!!");
    // The oversized body is never buffered, whatever the split.
    let mut d = PacketDecoder::with_max_packet_len(64);
    let mut input = &big[..40];
    assert!(d.decode(&mut input).is_err());
    assert_eq!(d.buffered_len(), 0);
    assert!(!d.is_idle());
}

#[test]
fn limit_is_clamped() {
    assert_eq!(PacketDecoder::with_max_packet_len(0).max_packet_len(), 28);
    assert_eq!(
        PacketDecoder::with_max_packet_len(u32::MAX).max_packet_len(),
        MAX_PACKET_LEN
    );
    assert_eq!(PacketDecoder::new().max_packet_len(), 33_554_436);
}

#[test]
fn idle_tells_truncation() {
    let bytes = packet(1, b"abcd");
    let mut d = PacketDecoder::new();
    let mut input = &bytes[..10];
    assert_eq!(d.decode(&mut input), Ok(None));
    assert!(!d.is_idle());
    let mut input = &bytes[10..];
    assert!(d.decode(&mut input).unwrap().is_some());
    assert!(d.is_idle());
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    // A mix of good packets, too-short and too-large ones, and raw noise.
    let item = prop_oneof![
        (any::<u32>(), proptest::collection::vec(any::<u8>(), 0..80))
            .prop_map(|(s, p)| packet(s, &p)),
        (0u32..28).prop_map(|len| {
            let mut v = len.to_be_bytes().to_vec();
            v.resize(len.max(4) as usize, 0xAA);
            v
        }),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(item, 0..8).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn any_split_gives_the_same_packets(
        bytes in stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
        max in 28u32..120,
    ) {
        let whole = run(max, &[&bytes]);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&bytes[last..p]);
            last = p;
        }
        chunks.push(&bytes[last..]);
        prop_assert_eq!(run(max, &chunks), whole);
    }
}
