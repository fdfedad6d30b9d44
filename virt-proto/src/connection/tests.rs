use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::error::{ErrorCode, ErrorDomain};
use crate::packet::{MAX_PACKET_LEN, REMOTE_PROGRAM, encode_with};
use crate::remote::connect::{ConnectGetLibVersion, ConnectOpen, LibVersion};
use crate::remote::event::AgentLifecycleEvent;
use crate::types::{Domain, Uuid};
use crate::xdr::XdrEncode;

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn reply_header(procedure: i32, serial: u32, status: Status) -> Header {
    Header {
        program: REMOTE_PROGRAM,
        version: 1,
        procedure,
        kind: MessageType::Reply,
        serial,
        status,
    }
}

/// A reply packet as libvirtd would send it.
fn reply<T: XdrEncode>(procedure: i32, serial: u32, status: Status, body: &T) -> Vec<u8> {
    encode_with(
        &reply_header(procedure, serial, status),
        body,
        MAX_PACKET_LEN,
    )
    .unwrap()
    .to_vec()
}

fn server_ping() -> Vec<u8> {
    crate::keepalive::ping().to_vec()
}

fn conn(now: Instant) -> Connection {
    Connection::new(Config::default(), now)
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn transmits(c: &mut Connection) -> Vec<Bytes> {
    std::iter::from_fn(|| c.poll_transmit()).collect()
}

fn reply_of(e: &Event) -> &Reply {
    match e {
        Event::Reply(r) => r,
        other => panic!("not a reply: {other:?}"),
    }
}

#[test]
fn replies_are_routed_by_serial_in_any_order() {
    let t0 = Instant::now();
    let mut c = conn(t0);
    let a = c.start_call(t0, &ConnectGetLibVersion).unwrap();
    let b = c
        .start_call(t0, &ConnectOpen::new("qemu:///system"))
        .unwrap();
    assert_eq!((a, b), (Serial(1), Serial(2)));
    let sent = transmits(&mut c);
    assert_eq!(sent.len(), 2);
    assert_eq!(&sent[0][20..24], [0, 0, 0, 1]);
    let mut input = reply(1, 2, Status::Ok, &());
    input.extend(reply(157, 1, Status::Ok, &LibVersion(10_000_000)));
    c.handle_input(t0, &input);
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2);
    assert_eq!(reply_of(&ev[0]).serial, b);
    reply_of(&ev[0]).decode::<ConnectOpen>().unwrap();
    let v = reply_of(&ev[1]).decode::<ConnectGetLibVersion>().unwrap();
    assert_eq!(v.to_string(), "10.0.0");
    // Decoding as the wrong procedure is a typed error.
    assert!(matches!(
        reply_of(&ev[1]).decode::<ConnectOpen>(),
        Err(ReplyError::WrongProcedure {
            expected: 1,
            found: 157
        })
    ));
    assert_eq!(c.calls_in_flight(), 0);
}

#[test]
fn error_replies_carry_the_libvirt_error() {
    let t0 = Instant::now();
    let mut c = conn(t0);
    c.start_call(t0, &ConnectOpen::new("qemu:///system"))
        .unwrap();
    let err = LibvirtError::new(ErrorCode::AGENT_UNRESPONSIVE, ErrorDomain::QEMU, "no agent");
    c.handle_input(t0, &reply(1, 1, Status::Error, &err));
    let ev = events(&mut c);
    let r = reply_of(&ev[0]);
    let e = r.result.as_ref().unwrap_err();
    assert!(e.is_agent_unavailable());
    assert_eq!(e.libvirt(), Some(&err));
    assert!(matches!(
        r.decode::<ConnectOpen>(),
        Err(ReplyError::Libvirt(_))
    ));
    // A garbled error is Malformed, not a panic; a strange status is typed too.
    c.start_call(t0, &ConnectOpen::default()).unwrap();
    c.start_call(t0, &ConnectOpen::default()).unwrap();
    let mut input = reply(1, 2, Status::Error, &7u32);
    input.extend(reply(1, 3, Status::Continue, &()));
    c.handle_input(t0, &input);
    let ev = events(&mut c);
    assert!(matches!(
        reply_of(&ev[0]).result,
        Err(ReplyError::Malformed(_))
    ));
    assert!(matches!(
        reply_of(&ev[1]).result,
        Err(ReplyError::UnexpectedStatus(Status::Continue))
    ));
}

#[test]
fn unknown_serial_and_unexpected_packets_are_reported_not_fatal() {
    let t0 = Instant::now();
    let mut c = conn(t0);
    c.handle_input(t0, &reply(1, 99, Status::Ok, &()));
    let mut call = reply(1, 1, Status::Ok, &());
    call[19] = 0; // type VIR_NET_CALL from the server
    c.handle_input(t0, &call);
    let mut stream = reply(1, 1, Status::Ok, &());
    stream[19] = 3;
    c.handle_input(t0, &stream);
    let ev = events(&mut c);
    assert_eq!(
        ev[0],
        Event::ProtocolError(ProtocolError::UnknownSerial {
            serial: 99,
            procedure: 1
        })
    );
    assert!(matches!(
        ev[1],
        Event::ProtocolError(ProtocolError::UnexpectedPacket { .. })
    ));
    assert!(matches!(
        ev[2],
        Event::ProtocolError(ProtocolError::UnexpectedPacket { .. })
    ));
    assert!(!c.is_closed());
}

#[test]
fn a_reply_for_another_procedure_fails_the_call() {
    let t0 = Instant::now();
    let mut c = conn(t0);
    c.start_call(t0, &ConnectOpen::default()).unwrap();
    c.handle_input(t0, &reply(2, 1, Status::Ok, &()));
    let ev = events(&mut c);
    assert!(matches!(
        reply_of(&ev[0]).result,
        Err(ReplyError::WrongProcedure {
            expected: 1,
            found: 2
        })
    ));
}

#[test]
fn calls_in_flight_are_bounded() {
    let t0 = Instant::now();
    let mut c = Connection::new(Config::default().with_max_calls_in_flight(2), t0);
    c.start_call(t0, &ConnectGetLibVersion).unwrap();
    c.start_call(t0, &ConnectGetLibVersion).unwrap();
    assert_eq!(
        c.start_call(t0, &ConnectGetLibVersion),
        Err(CallError::TooManyCalls { limit: 2 })
    );
    c.handle_input(t0, &reply(157, 1, Status::Ok, &LibVersion(1)));
    assert_eq!(c.start_call(t0, &ConnectGetLibVersion), Ok(Serial(3)));
}

#[test]
fn cancelled_calls_swallow_their_late_reply() {
    let t0 = Instant::now();
    let mut c = conn(t0);
    let a = c.start_call(t0, &ConnectGetLibVersion).unwrap();
    assert!(c.cancel(a));
    assert!(!c.cancel(a));
    assert!(!c.cancel(Serial(77)));
    assert_eq!(c.calls_in_flight(), 1);
    c.handle_input(t0, &reply(157, 1, Status::Ok, &LibVersion(1)));
    assert!(events(&mut c).is_empty());
    assert_eq!(c.calls_in_flight(), 0);
}

#[test]
fn call_deadlines() {
    let t0 = Instant::now();
    let mut c = Connection::new(Config::default().with_keepalive(None), t0);
    let a = c
        .start_call_with_timeout(t0, &ConnectGetLibVersion, Some(s(2)))
        .unwrap();
    c.start_call(t0, &ConnectGetLibVersion).unwrap();
    assert_eq!(c.poll_timeout(), Some(t0 + s(2)));
    c.handle_timeout(t0 + s(1));
    assert!(events(&mut c).is_empty());
    c.handle_timeout(t0 + s(2));
    let ev = events(&mut c);
    assert_eq!(ev.len(), 1);
    assert_eq!(reply_of(&ev[0]).serial, a);
    assert!(reply_of(&ev[0]).result.as_ref().unwrap_err().is_timeout());
    // The other call's default deadline is next.
    assert_eq!(c.poll_timeout(), Some(t0 + ConnectGetLibVersion::TIMEOUT));
    // The late reply is dropped silently.
    c.handle_input(t0 + s(3), &reply(157, 1, Status::Ok, &LibVersion(1)));
    assert!(events(&mut c).is_empty());
}

#[test]
fn server_pings_are_answered_at_once_and_merged() {
    let t0 = Instant::now();
    let mut c = conn(t0);
    let mut two = server_ping();
    two.extend(server_ping());
    c.handle_input(t0, &two);
    let sent = transmits(&mut c);
    assert_eq!(sent, [crate::keepalive::pong()]);
    c.handle_input(t0, &server_ping());
    assert_eq!(transmits(&mut c), [crate::keepalive::pong()]);
    // Pongs from the server and unknown keepalive procedures are accepted quietly.
    c.handle_input(t0, &crate::keepalive::pong());
    let mut odd = server_ping();
    odd[15] = 9;
    c.handle_input(t0, &odd);
    assert!(transmits(&mut c).is_empty());
    assert!(events(&mut c).is_empty());
}

#[test]
fn keepalive_pings_then_declares_the_server_dead() {
    let t0 = Instant::now();
    let mut c = conn(t0);
    assert_eq!(c.poll_timeout(), None);
    let call = c
        .start_call_with_timeout(t0, &ConnectGetLibVersion, None)
        .unwrap();
    transmits(&mut c);
    assert!(c.enable_keepalive());
    for i in 1..=5 {
        assert_eq!(c.poll_timeout(), Some(t0 + s(5 * i)));
        c.handle_timeout(t0 + s(5 * i));
        assert_eq!(transmits(&mut c), [crate::keepalive::ping()], "ping {i}");
    }
    c.handle_timeout(t0 + s(30));
    let ev = events(&mut c);
    assert!(matches!(
        &reply_of(&ev[0]).result,
        Err(ReplyError::Closed(CloseReason::KeepaliveTimeout))
    ));
    assert_eq!(reply_of(&ev[0]).serial, call);
    assert_eq!(ev[1], Event::KeepaliveTimeout);
    assert!(c.is_closed());
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(
        c.start_call(t0, &ConnectGetLibVersion),
        Err(CallError::Closed(CloseReason::KeepaliveTimeout))
    );
    // Input after the close is ignored.
    c.handle_input(t0, &server_ping());
    assert!(transmits(&mut c).is_empty());
}

#[test]
fn any_packet_restarts_the_keepalive_interval() {
    let t0 = Instant::now();
    let mut c = Connection::new(
        Config::default().with_keepalive(Some(KeepaliveConfig {
            interval: s(5),
            count: 1,
        })),
        t0,
    );
    c.enable_keepalive();
    c.handle_timeout(t0 + s(5));
    assert_eq!(transmits(&mut c).len(), 1);
    c.handle_input(t0 + s(8), &crate::keepalive::pong());
    assert_eq!(c.poll_timeout(), Some(t0 + s(13)));
    c.handle_timeout(t0 + s(13));
    c.handle_timeout(t0 + s(17));
    assert!(!c.is_closed());
    c.handle_timeout(t0 + s(18));
    assert!(c.is_closed());
}

#[test]
fn framing_errors() {
    let t0 = Instant::now();
    let mut c = Connection::new(Config::default().with_max_packet_len(64), t0);
    c.start_call(t0, &ConnectGetLibVersion).unwrap();
    c.start_call(t0, &ConnectGetLibVersion).unwrap();
    // An oversized reply fails its call only; the next packet is fine.
    let big = reply(
        157,
        1,
        Status::Ok,
        &crate::qemu::AgentReply(Some("x".repeat(100))),
    );
    let mut input = big;
    input.extend(reply(157, 2, Status::Ok, &LibVersion(2)));
    c.handle_input(t0, &input);
    let ev = events(&mut c);
    assert!(matches!(
        reply_of(&ev[0]).result,
        Err(ReplyError::TooLarge { len: 136, max: 64 })
    ));
    assert!(reply_of(&ev[1]).result.is_ok());
    // A length below the header size closes the connection.
    c.start_call(t0, &ConnectGetLibVersion).unwrap();
    c.handle_input(t0, &[0, 0, 0, 5, 0]);
    let ev = events(&mut c);
    assert!(matches!(
        reply_of(&ev[0]).result,
        Err(ReplyError::Closed(_))
    ));
    assert_eq!(
        ev[1],
        Event::Closed(CloseReason::Framing(FrameError::TooShort { len: 5 }))
    );
}

#[test]
fn an_oversized_non_reply_keeps_the_call_in_flight() {
    // Found by the fuzzer: an oversized event carrying serial 1 used to free call 1's slot.
    let t0 = Instant::now();
    let mut c = Connection::new(Config::default().with_max_packet_len(64), t0);
    c.start_call(t0, &ConnectGetLibVersion).unwrap();
    let mut big = reply(157, 1, Status::Ok, &[0u8; 64].as_slice());
    big[19] = 2; // VIR_NET_MESSAGE
    c.handle_input(t0, &big);
    assert!(matches!(
        events(&mut c)[..],
        [Event::ProtocolError(ProtocolError::Oversized(_))]
    ));
    assert_eq!(c.calls_in_flight(), 1);
}

#[test]
fn eof_mid_packet_is_truncation() {
    let t0 = Instant::now();
    let mut c = conn(t0);
    c.handle_input(t0, &server_ping()[..10]);
    c.handle_eof();
    assert_eq!(c.close_reason(), Some(&CloseReason::Truncated));
    let mut d = conn(t0);
    d.handle_eof();
    assert_eq!(d.close_reason(), Some(&CloseReason::Eof));
    d.close();
    assert_eq!(d.close_reason(), Some(&CloseReason::Eof));
}

fn agent_event() -> Vec<u8> {
    let msg = AgentLifecycleEvent {
        callback_id: 1,
        dom: Domain {
            name: "vm".into(),
            uuid: Uuid([3; 16]),
            id: 2,
        },
        state: 1,
        reason: 2,
    };
    let h = Header {
        program: REMOTE_PROGRAM,
        version: 1,
        procedure: 348,
        kind: MessageType::Message,
        serial: 0,
        status: Status::Ok,
    };
    encode_with(&h, &msg, MAX_PACKET_LEN).unwrap().to_vec()
}

#[test]
fn events_are_decoded_and_bounded() {
    let t0 = Instant::now();
    let mut c = Connection::new(Config::default().with_max_queued_events(2), t0);
    let one = agent_event();
    c.handle_input(t0, &one.repeat(3));
    assert_eq!(c.dropped_events(), 1);
    let ev = events(&mut c);
    assert_eq!(ev.len(), 2);
    assert!(
        matches!(&ev[0], Event::DomainEvent(DomainEvent::AgentLifecycle(a)) if a.is_connected())
    );
    // A truncated known event is a typed protocol error.
    let mut bad = one;
    bad.truncate(40);
    bad[3] = 40;
    c.handle_input(t0, &bad);
    assert!(matches!(
        events(&mut c)[..],
        [Event::ProtocolError(ProtocolError::MalformedEvent {
            procedure: 348,
            ..
        })]
    ));
}

#[test]
fn replies_with_fds() {
    let t0 = Instant::now();
    let mut c = conn(t0);
    c.start_call(t0, &ConnectGetLibVersion).unwrap();
    c.start_call(t0, &ConnectGetLibVersion).unwrap();
    let mut zero = reply(157, 1, Status::Ok, &(0u32, LibVersion(5)));
    zero[19] = 5;
    let mut two = reply(157, 2, Status::Ok, &2u32);
    two[19] = 5;
    c.handle_input(t0, &[zero, two].concat());
    let ev = events(&mut c);
    assert_eq!(
        reply_of(&ev[0]).decode::<ConnectGetLibVersion>().unwrap(),
        LibVersion(5)
    );
    assert!(matches!(
        reply_of(&ev[1]).result,
        Err(ReplyError::FdsNotSupported { count: 2 })
    ));
}

impl XdrEncode for &[u8] {
    fn encode(&self, e: &mut crate::xdr::Encoder<'_>) -> Result<(), crate::xdr::XdrError> {
        e.opaque_fixed(self);
        Ok(())
    }
}

impl<A: XdrEncode, B: XdrEncode> XdrEncode for (A, B) {
    fn encode(&self, e: &mut crate::xdr::Encoder<'_>) -> Result<(), crate::xdr::XdrError> {
        self.0.encode(e)?;
        self.1.encode(e)
    }
}

#[test]
fn serials_wrap_and_skip_calls_in_flight() {
    let t0 = Instant::now();
    let mut c = conn(t0);
    c.next_serial = u32::MAX;
    let call = ConnectGetLibVersion;
    assert_eq!(c.start_call(t0, &call), Ok(Serial(u32::MAX)));
    assert_eq!(c.start_call(t0, &call), Ok(Serial(0)));
    // u32::MAX and 0 are still in flight.
    c.next_serial = u32::MAX;
    assert_eq!(c.start_call(t0, &call), Ok(Serial(1)));
    let mut z = Connection::new(Config::default().with_first_serial(0), t0);
    assert_eq!(z.start_call(t0, &call), Ok(Serial(0)));
}

#[test]
fn oversized_arguments_are_refused() {
    let t0 = Instant::now();
    let mut c = Connection::new(Config::default().with_max_packet_len(40), t0);
    let r = c.start_call(t0, &ConnectOpen::new("qemu:///system"));
    assert!(matches!(r, Err(CallError::Encode(_))));
    assert_eq!(c.calls_in_flight(), 0);
    assert!(c.poll_transmit().is_none());
}

/// A server byte stream: replies for serials 1..=4, pings, events, noise-free.
fn server_stream() -> impl Strategy<Value = Vec<u8>> {
    let item = prop_oneof![
        (1u32..=4).prop_map(|s| reply(157, s, Status::Ok, &LibVersion(u64::from(s)))),
        Just(server_ping()),
        Just(agent_event()),
        (1u32..=4).prop_map(|s| reply(
            157,
            s,
            Status::Error,
            &LibvirtError::new(ErrorCode::NO_DOMAIN, ErrorDomain::QEMU, "gone")
        )),
    ];
    proptest::collection::vec(item, 0..10).prop_map(|v| v.concat())
}

fn run(bytes: &[u8], cuts: &[usize]) -> (Vec<Event>, Vec<Bytes>) {
    let t0 = Instant::now();
    let mut c = conn(t0);
    for _ in 0..4 {
        c.start_call(t0, &ConnectGetLibVersion).unwrap();
    }
    transmits(&mut c);
    let mut last = 0;
    let mut points: Vec<usize> = cuts.iter().map(|p| p % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    let mut sent = Vec::new();
    for p in points {
        c.handle_input(t0, &bytes[last..p]);
        last = p;
        sent.extend(transmits(&mut c));
    }
    (events(&mut c), sent)
}

proptest! {
    #[test]
    fn any_split_gives_the_same_events(
        bytes in server_stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..6),
    ) {
        let (whole_events, _) = run(&bytes, &[]);
        let (split_events, _) = run(&bytes, &cuts);
        prop_assert_eq!(whole_events, split_events);
    }
}
