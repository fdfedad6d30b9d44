//! Criterion benches of the sans-IO codec: message splitting ([`FrameDecoder`]), typed reply
//! decoding (`Reply::<T>::from_slice`, base64 included), QMP event bursts and request
//! encoding. `cargo bench -p qga-benches --bench codec`; CI only compiles them
//! (`cargo bench --no-run`).

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use qga_benches::payload;
use qga_proto::codec::{Frame, FrameDecoder};
use qga_proto::message::{QmpMessage, Reply};
use qga_proto::qga::{
    ExecStatus, GuestAgentInfo, GuestExecStatus, GuestFileWrite, GuestInfo, GuestPing,
};
use qga_proto::qmp::{QueryStatus, StatusInfo};
use qga_proto::{Empty, encode_request};

/// Splits every message out of `buf`; returns how many there were.
fn split_all(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Ok(Some(frame)) = decoder.decode(buf) {
        black_box(&frame);
        n += 1;
    }
    n
}

fn small_replies(c: &mut Criterion) {
    let cases: [(&str, &[u8]); 3] = [
        ("ping", payload::PING_REPLY_ID),
        ("guest-info", payload::GUEST_INFO_REPLY),
        ("query-status", payload::QUERY_STATUS_REPLY),
    ];
    let mut g = c.benchmark_group("split");
    for (name, bytes) in cases {
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(name, |b| {
            let mut decoder = FrameDecoder::new();
            b.iter_batched_ref(
                || BytesMut::from(bytes),
                |buf| split_all(&mut decoder, buf),
                BatchSize::SmallInput,
            );
        });
    }
    g.finish();

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(payload::PING_REPLY_ID.len() as u64));
    g.bench_function("ping", |b| {
        b.iter(|| Reply::<Empty>::from_slice(black_box(payload::PING_REPLY_ID)));
    });
    g.throughput(Throughput::Bytes(payload::GUEST_INFO_REPLY.len() as u64));
    g.bench_function("guest-info", |b| {
        b.iter(|| Reply::<GuestAgentInfo>::from_slice(black_box(payload::GUEST_INFO_REPLY)));
    });
    g.throughput(Throughput::Bytes(payload::QUERY_STATUS_REPLY.len() as u64));
    g.bench_function("query-status", |b| {
        b.iter(|| Reply::<StatusInfo>::from_slice(black_box(payload::QUERY_STATUS_REPLY)));
    });
    g.finish();
}

fn large_exec_status(c: &mut Criterion) {
    let reply = payload::large_exec_status_reply();
    let mut g = c.benchmark_group("exec-status-11MB");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Bytes(reply.len() as u64));
    // The decoder's message splitting alone: the buffer is refilled outside the timing.
    g.bench_function("split", |b| {
        let mut decoder = FrameDecoder::new();
        b.iter_batched_ref(
            || BytesMut::from(&reply[..]),
            |buf| {
                let Ok(Some(Frame::Message(m))) = decoder.decode(buf) else {
                    unreachable!("the payload is one whole message")
                };
                m
            },
            BatchSize::LargeInput,
        );
    });
    // Full typed decode, base64 included.
    g.bench_function("typed-decode", |b| {
        b.iter(|| {
            let reply = Reply::<ExecStatus>::from_slice(black_box(&reply));
            black_box(reply.map(|r| r.into_result().map(|s| s.out_data.map(|d| d.len()))))
        });
    });
    g.finish();
}

fn qmp_event_burst(c: &mut Criterion) {
    let burst = payload::qmp_event_burst(1000);
    let mut g = c.benchmark_group("qmp-events-1000");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("split", |b| {
        let mut decoder = FrameDecoder::new();
        b.iter_batched_ref(
            || BytesMut::from(&burst[..]),
            |buf| split_all(&mut decoder, buf),
            BatchSize::LargeInput,
        );
    });
    g.bench_function("split+classify", |b| {
        let mut decoder = FrameDecoder::new();
        b.iter_batched_ref(
            || BytesMut::from(&burst[..]),
            |buf| {
                let mut events = 0;
                while let Ok(Some(Frame::Message(m))) = decoder.decode(buf) {
                    if let Ok(QmpMessage::Event(e)) = QmpMessage::from_slice(&m) {
                        black_box(&e);
                        events += 1;
                    }
                }
                events
            },
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    let mut out = BytesMut::with_capacity(1 << 20);
    g.bench_function("guest-ping", |b| {
        b.iter(|| {
            out.clear();
            encode_request(black_box(&GuestPing), Some(4242), &mut out)
        });
    });
    g.bench_function("guest-info", |b| {
        b.iter(|| {
            out.clear();
            encode_request(black_box(&GuestInfo), Some(4242), &mut out)
        });
    });
    g.bench_function("guest-exec-status", |b| {
        b.iter(|| {
            out.clear();
            encode_request(
                black_box(&GuestExecStatus { pid: 12419 }),
                Some(4242),
                &mut out,
            )
        });
    });
    g.bench_function("query-status", |b| {
        b.iter(|| {
            out.clear();
            encode_request(black_box(&QueryStatus), Some(7), &mut out)
        });
    });
    let data = payload::random_bytes(64 * 1024, 7);
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("guest-file-write-64KiB", |b| {
        b.iter(|| {
            out.clear();
            encode_request(
                &GuestFileWrite::new(1000, black_box(&data)),
                Some(1),
                &mut out,
            )
        });
    });
    g.finish();
}

criterion_group!(
    benches,
    small_replies,
    large_exec_status,
    qmp_event_burst,
    encode
);
criterion_main!(benches);
