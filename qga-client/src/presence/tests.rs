//! The QMP peer here is a scripted fake over `tokio::io::duplex`, not QEMU: it sends
//! `VSERPORT_CHANGE` (and closes) exactly when a test says so, which a real guest cannot
//! be made to do on cue. The real thing is exercised in `tests/vm.rs`.

use super::*;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use qga_proto::qga::GuestPing;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

const T: Duration = Duration::from_secs(5);

enum Script {
    Event { id: &'static str, open: bool },
    Close,
}

/// A fake QMP monitor: greeting, qmp_capabilities, `qom-get` (channel0 → qga0),
/// `query-chardev` (frontend-open from `open`), events on demand.
async fn fake_qmp(
    stream: DuplexStream,
    open: Arc<AtomicBool>,
    mut script: mpsc::UnboundedReceiver<Script>,
) {
    let (read, mut write) = tokio::io::split(stream);
    let mut lines = BufReader::new(read).lines();
    let greeting = r#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"#;
    write
        .write_all(format!("{greeting}\r\n").as_bytes())
        .await
        .unwrap();
    loop {
        let out = tokio::select! {
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { return };
                let req: Value = serde_json::from_str(&line).unwrap();
                let id = req["id"].clone();
                let args = &req["arguments"];
                let body = match req["execute"].as_str().unwrap() {
                    "qmp_capabilities" => json!({"return": {}}),
                    "qom-get" if args["path"] == "/machine/peripheral/channel0"
                        && args["property"] == "chardev" => json!({"return": "qga0"}),
                    "qom-get" => json!({"error": {"class": "DeviceNotFound", "desc": "no such device"}}),
                    "query-chardev" => json!({"return": [
                        {"frontend-open": true, "filename": "unix:/t/qmp.sock,server=on", "label": "qmp0"},
                        {"frontend-open": open.load(Ordering::SeqCst), "filename": "unix:/t/qga.sock,server=on", "label": "qga0"},
                    ]}),
                    other => panic!("unexpected {other}"),
                };
                let mut body = body;
                body["id"] = id;
                body.to_string()
            }
            step = script.recv() => match step {
                Some(Script::Event { id, open: o }) => {
                    if id == "channel0" {
                        open.store(o, Ordering::SeqCst);
                    }
                    json!({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "VSERPORT_CHANGE",
                           "data": {"id": id, "open": o}}).to_string()
                }
                Some(Script::Close) | None => return,
            },
        };
        write
            .write_all(format!("{out}\r\n").as_bytes())
            .await
            .unwrap();
    }
}

struct Fixture {
    qmp: QmpClient,
    open: Arc<AtomicBool>,
    script: mpsc::UnboundedSender<Script>,
}

impl Fixture {
    async fn new(open: bool) -> Self {
        let (ours, theirs) = tokio::io::duplex(64 * 1024);
        let open = Arc::new(AtomicBool::new(open));
        let (script, rx) = mpsc::unbounded_channel();
        tokio::spawn(fake_qmp(theirs, Arc::clone(&open), rx));
        let qmp = QmpClient::from_stream(ours, T).await.unwrap();
        Self { qmp, open, script }
    }

    fn event(&self, id: &'static str, open: bool) {
        self.script.send(Script::Event { id, open }).unwrap();
    }
}

/// A fake qemu-ga: answers guest-sync-delimited (with 0xFF) and, unless `silent`,
/// guest-ping; counts the syncs.
async fn fake_qga(stream: DuplexStream, syncs: Arc<AtomicU32>, silent: Arc<AtomicBool>) {
    let (mut read, mut write) = tokio::io::split(stream);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = read.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend(chunk[..n].iter().filter(|b| **b != 0xFF));
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let req: Value = serde_json::from_slice(&line).unwrap();
            let mut out = Vec::new();
            match req["execute"].as_str().unwrap() {
                "guest-sync-delimited" => {
                    syncs.fetch_add(1, Ordering::SeqCst);
                    out.push(0xFF);
                    out.extend(
                        json!({"return": req["arguments"]["id"]})
                            .to_string()
                            .bytes(),
                    );
                }
                "guest-ping" if !silent.load(Ordering::SeqCst) => {
                    out.extend(json!({"return": {}, "id": req["id"]}).to_string().bytes());
                }
                _ => continue,
            }
            out.push(b'\n');
            write.write_all(&out).await.unwrap();
        }
    }
}

fn qga_client() -> (Client, Arc<AtomicU32>, Arc<AtomicBool>) {
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let syncs = Arc::new(AtomicU32::new(0));
    let silent = Arc::new(AtomicBool::new(false));
    tokio::spawn(fake_qga(theirs, Arc::clone(&syncs), Arc::clone(&silent)));
    let client = Client::builder().default_timeout(T).from_stream(ours);
    (client, syncs, silent)
}

#[tokio::test(start_paused = true)]
async fn initial_state_comes_from_query_chardev_via_qom() {
    for open in [true, false] {
        let f = Fixture::new(open).await;
        let p = AgentPresence::new(&f.qmp).await.unwrap();
        assert_eq!(p.device_id(), "channel0");
        assert_eq!(p.chardev(), "qga0");
        assert_eq!(p.is_connected(), open);
        assert_eq!(
            p.state(),
            PresenceState {
                connected: open,
                changes: 0,
                qmp_closed: false
            }
        );
    }
    let f = Fixture::new(true).await;
    let err = AgentPresence::with_device(&f.qmp, "nosuch")
        .await
        .unwrap_err();
    assert_eq!(err.agent_error().unwrap().class.as_str(), "DeviceNotFound");
    let err = AgentPresence::with_chardev(&f.qmp, "channel0", "nosuch")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    let p = AgentPresence::with_chardev(&f.qmp, "channel0", "qga0")
        .await
        .unwrap();
    assert!(p.is_connected());
}

#[tokio::test(start_paused = true)]
async fn events_for_the_port_change_the_state() {
    let f = Fixture::new(true).await;
    let p = AgentPresence::new(&f.qmp).await.unwrap();
    p.wait_connected(T).await.unwrap();
    let err = p
        .wait_disconnected(Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    f.event("channel1", false); // another port
    f.event("channel0", false);
    p.wait_disconnected(T).await.unwrap();
    assert_eq!(p.state().changes, 1, "the other port's event was counted");
    let err = p.wait_connected(Duration::from_secs(1)).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    f.event("channel0", true);
    p.wait_connected(T).await.unwrap();
    // A repeat of the current state (a coalesced close and reopen) still counts.
    f.event("channel0", true);
    let mut rx = p.subscribe();
    rx.wait_for(|s| s.changes == 3).await.unwrap();
    assert!(p.is_connected());

    // refresh() asks QEMU again.
    f.open.store(false, Ordering::SeqCst);
    assert!(!p.refresh().await.unwrap());
    assert!(!p.is_connected());
}

#[tokio::test(start_paused = true)]
async fn qmp_eof_means_not_connected() {
    let f = Fixture::new(true).await;
    let p = AgentPresence::new(&f.qmp).await.unwrap();
    f.script.send(Script::Close).unwrap();
    p.wait_disconnected(T).await.unwrap();
    assert!(p.state().qmp_closed);
    assert!(p.wait_connected(T).await.unwrap_err().is_closed());
}

#[tokio::test(start_paused = true)]
async fn call_if_present_fails_fast() {
    let f = Fixture::new(false).await;
    let p = AgentPresence::new(&f.qmp).await.unwrap();
    let (client, syncs, silent) = qga_client();
    let start = tokio::time::Instant::now();
    let err = call_if_present(&client, &p, &GuestPing).await.unwrap_err();
    assert!(matches!(err, Error::NotConnected), "{err:?}");
    assert_eq!(err.to_string(), "the guest agent is not connected");
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(syncs.load(Ordering::SeqCst), 0, "nothing may be sent");

    f.event("channel0", true);
    p.wait_connected(T).await.unwrap();
    call_if_present(&client, &p, &GuestPing).await.unwrap();

    // In flight when the agent goes away: NotConnected at the event, not at the deadline.
    silent.store(true, Ordering::SeqCst);
    let start = tokio::time::Instant::now();
    let call = call_if_present(&client, &p, &GuestPing);
    let disconnect = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.event("channel0", false);
    };
    let (result, ()) = tokio::join!(call, disconnect);
    assert!(matches!(result, Err(Error::NotConnected)), "{result:?}");
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(1),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn attach_forces_a_resync_after_each_change() {
    let f = Fixture::new(true).await;
    let p = AgentPresence::new(&f.qmp).await.unwrap();
    let (client, syncs, _) = qga_client();
    p.attach(&client);
    client.ping().await.unwrap();
    client.ping().await.unwrap();
    assert_eq!(syncs.load(Ordering::SeqCst), 1);
    f.event("channel0", false);
    f.event("channel0", true);
    p.subscribe().wait_for(|s| s.changes == 2).await.unwrap();
    // Paused time advances only once every task is idle: the attach task has run.
    tokio::time::sleep(Duration::from_millis(10)).await;
    client.ping().await.unwrap();
    assert_eq!(syncs.load(Ordering::SeqCst), 2);
    client.ping().await.unwrap();
    assert_eq!(syncs.load(Ordering::SeqCst), 2);
}
