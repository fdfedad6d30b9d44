//! Fuzz bodies, compiled only under `cfg(fuzzing)` (cargo-fuzz sets it). The target
//! `fuzz/fuzz_targets/libvirt_rpc.rs` calls [`rpc`].
//!
//! The body panics only when an invariant of this crate breaks; malformed input is never a
//! reason to panic. The committed corpus holds real libvirtd traffic (`capture-*`: the
//! server-to-client streams of `virt-proto/tests/captures/`, three client-to-server ones, each
//! behind a `[0] [255]` header), seeds built by [`seeds`] from this crate's encoder
//! (`seed-*`) and fuzzer finds (`regression-*`). The bodies also run over that corpus as unit
//! tests:
//! `RUSTFLAGS="--cfg fuzzing" cargo test -p virt-proto --lib --target-dir target/cfg-fuzzing fuzz`
//! (with `VIRT_PROTO_WRITE_SEEDS=1` that test rewrites `fuzz/corpus/libvirt_rpc/seed-*`).
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use crate::codec::{FrameError, PacketDecoder};
use crate::connection::{Config, Connection, Event, KeepaliveConfig};
use crate::error::{ErrorCode, ErrorDomain, LibvirtError};
use crate::packet::{
    Header, MAX_PACKET_LEN, MessageType, Packet, QEMU_PROGRAM, REMOTE_PROGRAM, Status, encode_with,
};
use crate::qemu::{AgentReply, QemuDomainAgentCommand};
use crate::remote::connect::*;
use crate::remote::domain::*;
use crate::remote::event::*;
use crate::remote::guest::*;
use crate::types::{Domain, TypedParam, TypedValue, Uuid};
use crate::xdr::{XdrDecode, XdrEncode, from_slice, to_vec};

/// Splits `[n] [n chunk lengths] rest` (`n` modulo 8).
fn chunk_header(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&n, rest) = data.split_first()?;
    let n = usize::from(n % 8);
    (rest.len() >= n).then(|| rest.split_at(n))
}

/// `data` cut into pieces whose lengths cycle through `lens` (byte `b`: `b + 1` bytes).
fn pieces<'a>(lens: &[u8], data: &'a [u8]) -> Vec<&'a [u8]> {
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

/// The packet limit from one byte: 255 is libvirt's own, anything else `28 + 16 * b`.
fn max_for(b: u8) -> u32 {
    if b == u8::MAX {
        MAX_PACKET_LEN
    } else {
        28 + 16 * u32::from(b)
    }
}

fn decode_all(max: u32, chunks: &[&[u8]]) -> Vec<Result<Packet, FrameError>> {
    let mut d = PacketDecoder::with_max_packet_len(max);
    let mut out = Vec::new();
    for chunk in chunks {
        let mut input = *chunk;
        loop {
            let before = input.len();
            match d.decode(&mut input) {
                Ok(None) => {
                    assert!(input.is_empty(), "Ok(None) with input left");
                    break;
                }
                Ok(Some(p)) => {
                    assert!(
                        p.payload.len() + 28 <= max as usize,
                        "packet over the limit"
                    );
                    out.push(Ok(p));
                }
                Err(e) => out.push(Err(e)),
            }
            assert!(input.len() < before, "a result consumed nothing");
            assert!(d.buffered_len() <= max as usize, "buffered past the limit");
        }
    }
    out
}

/// Decodes `payload` as `T`; when that works, encoding and decoding again must be stable.
fn check<T: XdrDecode + XdrEncode>(payload: &[u8]) {
    let Ok(value) = from_slice::<T>(payload) else {
        return;
    };
    let once = to_vec(&value).expect("a decoded value encodes");
    let again: T = from_slice(&once).expect("an encoded value decodes");
    assert_eq!(
        to_vec(&again).unwrap(),
        once,
        "encode(decode(x)) is not stable"
    );
}

/// Every argument, reply and event type of the crate over one payload.
fn decode_everything(payload: &[u8]) {
    // Replies.
    check::<AuthListReply>(payload);
    check::<Flag>(payload);
    check::<LibVersion>(payload);
    check::<Domain>(payload);
    check::<ListAllDomainsReply>(payload);
    check::<DomainStateReply>(payload);
    check::<DomainInfo>(payload);
    check::<TypedParams>(payload);
    if let Ok(params) = from_slice::<TypedParams>(payload) {
        // The typed view never panics, whatever the counts say.
        drop(crate::remote::guest_info::GuestInfo::from_params(&params));
    }
    check::<XmlDesc>(payload);
    if let Ok(text) = std::str::from_utf8(payload) {
        let _ = crate::remote::domain_xml::agent_channel_state(text);
    }
    if let Ok(xml) = from_slice::<XmlDesc>(payload) {
        let _ = crate::remote::domain_xml::agent_channel_state(&xml.0);
    }
    check::<Interfaces>(payload);
    check::<i32>(payload);
    check::<GuestTime>(payload);
    check::<SshKeys>(payload);
    check::<Hostname>(payload);
    check::<AgentReply>(payload);
    check::<LibvirtError>(payload);
    // Events.
    check::<AgentLifecycleEvent>(payload);
    check::<LifecycleEvent>(payload);
    // Arguments (what a server would decode).
    check::<ConnectOpen>(payload);
    check::<ConnectSupportsFeature>(payload);
    check::<DomainLookupByUuid>(payload);
    check::<DomainLookupByName>(payload);
    check::<ConnectListAllDomains>(payload);
    check::<DomainGetState>(payload);
    check::<DomainGetInfo>(payload);
    check::<DomainGetXmlDesc>(payload);
    check::<DomainShutdownFlags>(payload);
    check::<DomainReboot>(payload);
    check::<DomainSetUserPassword>(payload);
    check::<DomainGetGuestInfo>(payload);
    check::<DomainInterfaceAddresses>(payload);
    check::<DomainFsfreeze>(payload);
    check::<DomainFsthaw>(payload);
    check::<DomainGetTime>(payload);
    check::<DomainSetTime>(payload);
    check::<DomainAuthorizedSshKeysGet>(payload);
    check::<DomainAuthorizedSshKeysSet>(payload);
    check::<DomainGetHostname>(payload);
    check::<ConnectDomainEventCallbackRegisterAny>(payload);
    check::<ConnectDomainEventCallbackDeregisterAny>(payload);
    check::<QemuDomainAgentCommand>(payload);
}

fn dom() -> Domain {
    Domain {
        name: "instance-00000001".into(),
        uuid: Uuid([0x5a; 16]),
        id: 1,
    }
}

/// Starts the calls the fuzzed server answers: serials 1 to 4.
fn start_calls(c: &mut Connection, now: Instant) {
    c.start_call(now, &ConnectGetLibVersion).unwrap();
    let info = DomainGetGuestInfo {
        dom: dom(),
        types: 0,
        flags: 0,
    };
    c.start_call(now, &info).unwrap();
    let cmd = QemuDomainAgentCommand {
        dom: dom(),
        cmd: r#"{"execute":"guest-ping"}"#.into(),
        timeout: -1,
        flags: 0,
    };
    c.start_call(now, &cmd).unwrap();
    c.start_call(now, &ConnectListAllDomains::new(0)).unwrap();
}

fn decode_reply(r: &crate::connection::Reply) {
    match r.procedure {
        157 => drop(r.decode::<ConnectGetLibVersion>()),
        418 => drop(r.decode::<DomainGetGuestInfo>()),
        3 => drop(r.decode::<QemuDomainAgentCommand>()),
        _ => drop(r.decode::<ConnectListAllDomains>()),
    }
}

/// The connection fed `chunks`, 700 ms apart, with keepalive on and small queues. The packet
/// limit is at least 160 bytes, so that the four calls fit.
fn connection(max: u32, chunks: &[&[u8]]) {
    let max = max.max(160);
    let t0 = Instant::now();
    let config = Config::default()
        .with_max_packet_len(max)
        .with_max_calls_in_flight(4)
        .with_max_queued_events(8)
        .with_keepalive(Some(KeepaliveConfig {
            interval: Duration::from_secs(1),
            count: 2,
        }));
    let mut c = Connection::new(config, t0);
    start_calls(&mut c, t0);
    c.enable_keepalive();
    let mut resolved = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let now = t0 + Duration::from_millis(700 * i as u64);
        if c.poll_timeout().is_some_and(|t| t <= now) {
            c.handle_timeout(now);
        }
        c.handle_input(now, chunk);
        assert!(c.buffered_len() <= max as usize);
        assert!(c.calls_in_flight() <= 4);
        // Replies are never dropped, other events are capped at 8, plus one close event.
        assert!(
            c.queued_events() <= 8 + 4 + 1,
            "{} events",
            c.queued_events()
        );
        let mut transmits = 0;
        while c.poll_transmit().is_some() {
            transmits += 1;
        }
        assert!(transmits <= 4 + 2, "{transmits} packets to send");
        // Leave events queued every other chunk, to exercise the bound.
        if i % 2 == 1 {
            while let Some(event) = c.poll_event() {
                if let Event::Reply(r) = &event {
                    resolved += 1;
                    decode_reply(r);
                }
                let _ = format!("{event:?}");
            }
        }
    }
    c.handle_eof();
    assert!(c.is_closed());
    assert_eq!(c.calls_in_flight(), 0);
    assert!(c.start_call(t0, &ConnectGetLibVersion).is_err());
    while let Some(event) = c.poll_event() {
        if matches!(event, Event::Reply(_)) {
            resolved += 1;
        }
    }
    assert_eq!(resolved, 4, "every call resolved exactly once");
}

/// Target `libvirt_rpc`. Input: `[n] [n chunk lengths] [max] stream`.
///
/// Cuts the server byte stream `stream` into pieces and checks: the packet decoder gives the
/// same packets and errors whole and split, never buffers past its limit and always makes
/// progress; every payload and the raw stream decode (or fail) without panicking through every
/// argument, reply and event type, with stable re-encoding; and a [`Connection`] with four
/// calls in flight, keepalive on and small queues stays within its bounds and resolves each
/// call exactly once.
pub fn rpc(data: &[u8]) {
    let Some((lens, rest)) = chunk_header(data) else {
        return;
    };
    let Some((&max, stream)) = rest.split_first() else {
        return;
    };
    let max = max_for(max);
    let chunks = pieces(lens, stream);
    let whole = decode_all(max, &[stream]);
    assert_eq!(
        whole,
        decode_all(max, &chunks),
        "splitting changed the packets"
    );
    for packet in whole.iter().flatten() {
        decode_everything(&packet.payload);
        let h = packet.header;
        let _ = DomainEvent::decode(h.program, h.procedure, packet.payload.clone());
    }
    decode_everything(stream);
    connection(max, &chunks);
}

fn packet<T: XdrEncode + ?Sized>(header: Header, body: &T) -> Vec<u8> {
    encode_with(&header, body, MAX_PACKET_LEN).unwrap().to_vec()
}

fn reply_header(program: u32, procedure: i32, serial: u32, status: Status) -> Header {
    Header {
        program,
        version: 1,
        procedure,
        kind: MessageType::Reply,
        serial,
        status,
    }
}

fn event_header(procedure: i32) -> Header {
    Header {
        program: REMOTE_PROGRAM,
        version: 1,
        procedure,
        kind: MessageType::Message,
        serial: 0,
        status: Status::Ok,
    }
}

/// Seed inputs built with this crate's encoder, covering what the captures do not (typed
/// parameters of every type, lifecycle events, bad lengths): `(name, input)` in the layout of
/// [`rpc`].
#[must_use]
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let ok = |proc, serial, body: &dyn Fn() -> Vec<u8>| {
        let mut p = packet(reply_header(REMOTE_PROGRAM, proc, serial, Status::Ok), &());
        p.extend(body());
        let len = p.len() as u32;
        p[..4].copy_from_slice(&len.to_be_bytes());
        p
    };
    let version = ok(157, 1, &|| to_vec(&LibVersion(10_005_000)).unwrap());
    let params = TypedParams(vec![
        TypedParam::new("hostname", TypedValue::String("guest".into())),
        TypedParam::new("user.count", TypedValue::UInt(1)),
        TypedParam::new("load.1m", TypedValue::Double(0.5)),
        TypedParam::new("fs.0.total-bytes", TypedValue::ULLong(1 << 30)),
        TypedParam::new("timezone.offset", TypedValue::Int(3600)),
        TypedParam::new("x.time", TypedValue::LLong(-1)),
        TypedParam::new("x.bool", TypedValue::Boolean(true)),
        TypedParam::new("user.0.name", TypedValue::String("root".into())),
        TypedParam::new("fs.count", TypedValue::UInt(1)),
        TypedParam::new("fs.0.mountpoint", TypedValue::String("/".into())),
        TypedParam::new("fs.0.disk.count", TypedValue::UInt(1)),
        TypedParam::new("fs.0.disk.0.device", TypedValue::String("/dev/vda".into())),
    ]);
    let guest_info = ok(418, 2, &|| to_vec(&params).unwrap());
    let agent = packet(
        reply_header(QEMU_PROGRAM, 3, 3, Status::Ok),
        &AgentReply(Some(r#"{"return":{}}"#.into())),
    );
    let list = ok(273, 4, &|| {
        to_vec(&ListAllDomainsReply {
            domains: vec![dom()],
            count: 1,
        })
        .unwrap()
    });
    let no_agent = packet(
        reply_header(REMOTE_PROGRAM, 418, 2, Status::Error),
        &LibvirtError::new(
            ErrorCode::AGENT_UNRESPONSIVE,
            ErrorDomain::QEMU,
            "QEMU guest agent is not connected",
        ),
    );
    let agent_event = packet(
        event_header(348),
        &AgentLifecycleEvent {
            callback_id: 1,
            dom: dom(),
            state: 1,
            reason: 2,
        },
    );
    let lifecycle = packet(
        event_header(318),
        &LifecycleEvent {
            callback_id: 2,
            dom: dom(),
            event: 5,
            detail: 0,
        },
    );
    let xml = ok(14, 5, &|| {
        to_vec(&XmlDesc(
            "<domain><devices><channel type='unix'><target type='virtio' \
             name='org.qemu.guest_agent.0' state='connected'/></channel></devices></domain>"
                .into(),
        ))
        .unwrap()
    });
    let ping = crate::keepalive::ping().to_vec();
    let all = [
        version.clone(),
        ping.clone(),
        guest_info,
        agent_event.clone(),
        agent,
        lifecycle,
        list,
    ]
    .concat();
    let framed = |lens: &[u8], max: u8, stream: Vec<u8>| {
        let mut v = vec![lens.len() as u8];
        v.extend_from_slice(lens);
        v.push(max);
        v.extend(stream);
        v
    };
    vec![
        ("seed-all-replies", framed(&[], u8::MAX, all.clone())),
        ("seed-all-replies-split", framed(&[0, 6, 27], u8::MAX, all)),
        (
            "seed-error-reply",
            framed(&[3], u8::MAX, [no_agent, version].concat()),
        ),
        ("seed-pings", framed(&[], u8::MAX, ping.repeat(4))),
        ("seed-domain-xml", framed(&[7], u8::MAX, xml)),
        ("seed-agent-event", framed(&[1, 2], 4, agent_event)),
        (
            "seed-too-short",
            framed(&[], u8::MAX, vec![0, 0, 0, 5, 1, 2, 3, 4]),
        ),
        (
            "seed-garbage",
            framed(&[2], 1, b"\x00\x00\xff\xffnot libvirt".to_vec()),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/libvirt_rpc")
    }

    #[test]
    fn seeds_pass() {
        for (name, input) in seeds() {
            rpc(&input);
            let _ = name;
        }
        if std::env::var_os("VIRT_PROTO_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(corpus_dir()).unwrap();
            for (name, input) in seeds() {
                std::fs::write(corpus_dir().join(name), input).unwrap();
            }
        }
    }

    #[test]
    fn committed_corpus_passes() {
        let Ok(dir) = std::fs::read_dir(corpus_dir()) else {
            return;
        };
        for entry in dir {
            let path = entry.unwrap().path();
            rpc(&std::fs::read(&path).unwrap());
        }
    }

    #[test]
    fn short_inputs() {
        for input in [&[][..], &[3], &[0], &[0, 255], &[1, 0, 7, 0, 0, 0]] {
            rpc(input);
        }
    }
}
