//! The libvirt transport against a scripted libvirtd on a UNIX socket (built from virt-proto's
//! own types): what a real daemon cannot be made to do on cue. Agent lifecycle events sent
//! exactly when wanted, replies held back, the connection cut, calls counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qga_client::Error;
use qga_client::libvirt::{AgentState, KeepaliveConfig, LibvirtConnection, proto as vp};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::UnixListener;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use vp::packet::{Header, MAX_PACKET_LEN, MessageType, REMOTE_PROGRAM, Status, encode_with};
use vp::remote::connect::{AuthListReply, AuthType, Flag, LibVersion};
use vp::remote::event::{AgentLifecycleEvent, agent_state};
use vp::remote::proc;
use vp::xdr::{XdrEncode, from_slice};
use vp::{Domain, ErrorCode, ErrorDomain, LibvirtError, PacketDecoder, Uuid};

fn dom(i: u8) -> Domain {
    Domain {
        name: format!("vm{i}"),
        uuid: Uuid([i; 16]),
        id: i32::from(i),
    }
}

/// What the test tells the fake daemon.
enum Cue {
    AgentEvent(Domain, bool),
    /// Close the current connection.
    Hangup,
}

/// The fake's shared state.
#[derive(Default)]
struct Script {
    /// GET_TIME calls received.
    get_time_calls: Mutex<u32>,
    /// While set, GET_TIME replies wait for `release`.
    hold: Mutex<bool>,
    release: Notify,
    /// Connections accepted.
    connections: Mutex<u32>,
}

struct Fake {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    script: Arc<Script>,
    cues: mpsc::UnboundedSender<Cue>,
}

fn reply<T: XdrEncode>(call: &Header, body: &T) -> bytes::Bytes {
    let h = Header {
        kind: MessageType::Reply,
        ..*call
    };
    encode_with(&h, body, MAX_PACKET_LEN).unwrap()
}

fn error(call: &Header, code: ErrorCode, text: &str) -> bytes::Bytes {
    let h = Header {
        kind: MessageType::Reply,
        status: Status::Error,
        ..*call
    };
    encode_with(
        &h,
        &LibvirtError::new(code, ErrorDomain::QEMU, text),
        MAX_PACKET_LEN,
    )
    .unwrap()
}

fn lookup(found: Option<Domain>, call: &Header) -> bytes::Bytes {
    match found {
        Some(d) => reply(call, &d),
        None => error(call, ErrorCode::NO_DOMAIN, "Domain not found"),
    }
}

impl Fake {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("libvirt-sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let script = Arc::new(Script::default());
        let (cues, mut rx) = mpsc::unbounded_channel::<Cue>();
        let s = Arc::clone(&script);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                *s.connections.lock().unwrap() += 1;
                if !serve(stream, Arc::clone(&s), &mut rx).await {
                    return;
                }
            }
        });
        Self {
            _dir: dir,
            socket,
            script,
            cues,
        }
    }

    async fn connect(&self) -> LibvirtConnection {
        LibvirtConnection::builder()
            .socket(&self.socket)
            .max_calls_in_flight(2)
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(100))
            .keepalive(Some(KeepaliveConfig {
                interval: Duration::from_secs(60),
                count: 5,
            }))
            .connect()
            .await
            .unwrap()
    }

    fn get_time_calls(&self) -> u32 {
        *self.script.get_time_calls.lock().unwrap()
    }

    fn hold(&self, on: bool) {
        *self.script.hold.lock().unwrap() = on;
        if !on {
            self.script.release.notify_waiters();
        }
    }
}

/// Serves one connection; false when the test is over (the cue channel closed).
async fn serve(
    stream: tokio::net::UnixStream,
    s: Arc<Script>,
    cues: &mut mpsc::UnboundedReceiver<Cue>,
) -> bool {
    let (mut rd, wr) = stream.into_split();
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let send = |packet: bytes::Bytes| {
        let wr = Arc::clone(&wr);
        async move {
            let _ = wr.lock().await.write_all(&packet).await;
        }
    };
    let mut decoder = PacketDecoder::new();
    let mut buf = vec![0u8; 65536];
    let callbacks: Arc<Mutex<HashMap<i32, i32>>> = Arc::default();
    loop {
        tokio::select! {
            n = rd.read(&mut buf) => {
                let n = n.unwrap_or(0);
                if n == 0 {
                    return true;
                }
                let mut data = &buf[..n];
                while let Ok(Some(p)) = decoder.decode(&mut data) {
                    let h = p.header;
                    if h.kind != MessageType::Call {
                        continue; // pongs and pings need nothing here
                    }
                    let out = match h.procedure {
                        proc::AUTH_LIST => reply(&h, &AuthListReply { types: vec![AuthType::None] }),
                        proc::CONNECT_SUPPORTS_FEATURE => reply(&h, &Flag(true)),
                        proc::CONNECT_OPEN => reply(&h, &()),
                        proc::CONNECT_GET_LIB_VERSION => reply(&h, &LibVersion(9_000_000)),
                        proc::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY => {
                            let id: i32 = from_slice(&p.payload[..4]).unwrap();
                            let n = callbacks.lock().unwrap().len() as i32 + 1;
                            callbacks.lock().unwrap().insert(id, n);
                            reply(&h, &n)
                        }
                        proc::DOMAIN_LOOKUP_BY_NAME => {
                            let name = String::from_utf8_lossy(&p.payload[4..]).into_owned();
                            let found = (1..=3).map(dom).find(|d| name.starts_with(&d.name));
                            lookup(found, &h)
                        }
                        proc::DOMAIN_LOOKUP_BY_UUID => {
                            let u: Uuid = from_slice(&p.payload).unwrap();
                            lookup((1..=3).map(dom).find(|d| d.uuid == u), &h)
                        }
                        proc::DOMAIN_GET_TIME => {
                            *s.get_time_calls.lock().unwrap() += 1;
                            let answer = reply(&h, &vp::remote::guest::GuestTime { seconds: 1, nseconds: 0 });
                            let s = Arc::clone(&s);
                            let send = send(answer);
                            tokio::spawn(async move {
                                loop {
                                    let released = s.release.notified();
                                    if !*s.hold.lock().unwrap() {
                                        break;
                                    }
                                    released.await;
                                }
                                send.await;
                            });
                            continue;
                        }
                        _ => error(&h, ErrorCode::NO_SUPPORT, "not in this script"),
                    };
                    send(out).await;
                }
            }
            cue = cues.recv() => match cue {
                None => return false,
                Some(Cue::Hangup) => return true,
                Some(Cue::AgentEvent(d, up)) => {
                    let event = AgentLifecycleEvent {
                        callback_id: 1,
                        dom: d,
                        state: if up { agent_state::CONNECTED } else { agent_state::DISCONNECTED },
                        reason: 2,
                    };
                    let h = Header {
                        program: REMOTE_PROGRAM,
                        version: 1,
                        procedure: proc::DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE,
                        kind: MessageType::Message,
                        serial: 0,
                        status: Status::Ok,
                    };
                    send(encode_with(&h, &event, MAX_PACKET_LEN).unwrap()).await;
                }
            },
        }
    }
}

async fn wait_agent(libvirt: &LibvirtConnection, uuid: Uuid, state: AgentState) {
    let mut rx = libvirt.watch_agent(uuid);
    tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| *s == state))
        .await
        .expect("agent state")
        .unwrap();
}

#[tokio::test]
async fn the_agent_event_makes_calls_fail_at_once_and_recover() {
    let fake = Fake::start().await;
    let libvirt = fake.connect().await;
    let client = libvirt.client("vm1").await.unwrap();
    client.ping().await.unwrap();
    assert_eq!(client.libvirt_agent_state(), Some(AgentState::Connected));
    fake.cues.send(Cue::AgentEvent(dom(1), false)).unwrap();
    wait_agent(&libvirt, dom(1).uuid, AgentState::Disconnected).await;
    let calls = fake.get_time_calls();
    let t = Instant::now();
    assert!(matches!(client.ping().await, Err(Error::NotConnected)));
    assert!(t.elapsed() < Duration::from_millis(20), "{:?}", t.elapsed());
    assert_eq!(fake.get_time_calls(), calls, "nothing was sent");
    // Another domain is not affected.
    libvirt.client("vm2").await.unwrap().ping().await.unwrap();
    fake.cues.send(Cue::AgentEvent(dom(1), true)).unwrap();
    wait_agent(&libvirt, dom(1).uuid, AgentState::Connected).await;
    client.ping().await.unwrap();
}

#[tokio::test]
async fn a_call_in_flight_ends_when_the_agent_goes_and_its_domain_waits_for_libvirt() {
    let fake = Fake::start().await;
    let libvirt = fake.connect().await;
    let client = libvirt.client("vm1").await.unwrap();
    fake.hold(true);
    let pending = tokio::spawn({
        let c = client.clone();
        async move { c.ping().await }
    });
    while fake.get_time_calls() == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fake.cues.send(Cue::AgentEvent(dom(1), false)).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(r, Err(Error::NotConnected)), "{r:?}");
    // The agent is back, but libvirt still runs the first call: the next waits for it (one
    // agent call per domain in libvirt), within its own deadline.
    fake.cues.send(Cue::AgentEvent(dom(1), true)).unwrap();
    wait_agent(&libvirt, dom(1).uuid, AgentState::Connected).await;
    let short = client.with_deadline(Instant::now() + Duration::from_millis(200));
    assert!(short.ping().await.unwrap_err().is_timeout());
    assert_eq!(fake.get_time_calls(), 1, "the second call was not sent");
    fake.hold(false);
    client.ping().await.unwrap();
    assert_eq!(fake.get_time_calls(), 2);
}

#[tokio::test]
async fn calls_beyond_the_in_flight_limit_wait_on_our_side() {
    let fake = Fake::start().await;
    let libvirt = fake.connect().await;
    fake.hold(true);
    let mut tasks = Vec::new();
    for i in 1..=3 {
        let client = libvirt.client(format!("vm{i}")).await.unwrap();
        tasks.push(tokio::spawn(async move { client.ping().await }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(fake.get_time_calls(), 2, "max_calls_in_flight(2)");
    fake.hold(false);
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(fake.get_time_calls(), 3);
}

#[tokio::test]
async fn reconnects_after_the_daemon_hangs_up() {
    let fake = Fake::start().await;
    let libvirt = fake.connect().await;
    let client = libvirt.client("vm1").await.unwrap();
    client.ping().await.unwrap();
    fake.cues.send(Cue::Hangup).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while libvirt.stats().sessions < 2 {
        assert!(Instant::now() < deadline, "{:?}", libvirt.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client.ping().await.unwrap();
    assert_eq!(*fake.script.connections.lock().unwrap(), 2);
    assert!(libvirt.stats().connected && libvirt.stats().events);
    let e = libvirt.client("vm9").await.unwrap_err();
    assert!(
        matches!(e, Error::DomainNotFound { ref domain } if domain == "'vm9'"),
        "{e:?}"
    );
}
