//! Whether the guest agent is connected right now, from QMP, without waiting for a timeout.

use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use qga_proto::qmp::{KnownEvent, QueryChardev};
use qga_proto::{Command, RawCommand};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::qmp::{EventStream, QmpClient};

/// The device id QEMU users and libvirt give the agent's `virtserialport` (`channel0`).
pub const DEFAULT_AGENT_DEVICE_ID: &str = "channel0";

/// What [`AgentPresence`] knows at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresenceState {
    /// The guest side of the agent's port is open: qemu-ga is running.
    pub connected: bool,
    /// `VSERPORT_CHANGE` events seen for the port since the watch started. One event may stand
    /// for several changes (see [`AgentPresence`]); an event that repeats the current
    /// state still means the agent closed and reopened the port.
    pub changes: u64,
    /// The QMP connection closed (QEMU exited): `connected` is false from then on.
    pub qmp_closed: bool,
}

/// Watches QMP for the guest agent's port opening and closing.
///
/// QEMU knows whether the guest side of the agent's virtio-serial port is open: qemu-ga opens
/// it when it starts and the guest kernel closes it when qemu-ga exits or dies. QMP reports it
/// in `query-chardev` (`frontend-open` of the port's chardev) and announces every change with
/// `VSERPORT_CHANGE {"id": <device id>, "open": bool}`. The agent's host socket cannot tell:
/// a dead agent is silence, not EOF, so a [`Client`] alone learns of it only when a call
/// times out. This type takes the initial state from `query-chardev`, then follows the events
/// in a background task.
///
/// # Limits
///
/// - QEMU rate-limits `VSERPORT_CHANGE` to one per second per port and keeps only the latest
///   of those held back. A close and reopen within that second can arrive as a single
///   `open: true` (counted in [`PresenceState::changes`] all the same), and the reported state
///   may trail the real one by up to a second.
/// - "Connected" means qemu-ga has the port open, not that it answers: a hung agent, or
///   another host client (libvirt) holding the socket, still looks connected. The client's
///   deadlines remain the last word.
///
/// Dropping it stops the background task and the tasks started by [`attach`](Self::attach).
///
/// ```no_run
/// # async fn demo() -> Result<(), qga_client::Error> {
/// use std::time::Duration;
/// use qga_client::{AgentPresence, Client, QmpClient, call_if_present};
/// use qga_client::proto::qga::GuestPing;
///
/// let qmp = QmpClient::connect("/run/vm/qmp.sock", Duration::from_secs(5)).await?;
/// let presence = AgentPresence::new(&qmp).await?;
/// let client = Client::connect("/run/vm/qga.sock").await?;
/// presence.attach(&client); // resync after every agent restart
/// match call_if_present(&client, &presence, &GuestPing).await {
///     Err(e @ qga_client::Error::NotConnected) => println!("{e}"), // at once, no timeout
///     other => println!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AgentPresence {
    qmp: QmpClient,
    device_id: String,
    chardev: String,
    state: Arc<watch::Sender<PresenceState>>,
    watcher: JoinHandle<()>,
    attached: StdMutex<Vec<JoinHandle<()>>>,
}

impl AgentPresence {
    /// Watches the port with device id [`DEFAULT_AGENT_DEVICE_ID`].
    ///
    /// # Errors
    ///
    /// As for [`with_device`](Self::with_device).
    pub async fn new(qmp: &QmpClient) -> Result<Self> {
        Self::with_device(qmp, DEFAULT_AGENT_DEVICE_ID).await
    }

    /// Watches the `virtserialport` with this device id (`-device virtserialport,id=...`, the
    /// `id` of its `VSERPORT_CHANGE` events).
    ///
    /// The port's chardev (whose `frontend-open` gives the initial state) is read from the
    /// device's QOM property: `qom-get /machine/peripheral/<id> chardev`. Matching
    /// `query-chardev` entries by name or path would be a guess (libvirt calls the chardev of
    /// `channel0` `charchannel0`, plain QEMU users anything they like); QOM asks QEMU.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`] from QEMU when there is no such device (`DeviceNotFound`) or it has
    /// no chardev property; else as for [`with_chardev`](Self::with_chardev).
    pub async fn with_device(qmp: &QmpClient, device_id: &str) -> Result<Self> {
        let path = format!("/machine/peripheral/{device_id}");
        let value = qmp
            .call_raw(
                &RawCommand::new("qom-get").with_arguments(serde_json::json!({
                    "path": path,
                    "property": "chardev",
                })),
            )
            .await?;
        let Some(chardev) = value.as_str().filter(|s| !s.is_empty()) else {
            return Err(Error::InvalidArgument(format!(
                "device {device_id} has no chardev (qom-get returned {value})"
            )));
        };
        Self::with_chardev(qmp, device_id, chardev).await
    }

    /// Watches the port with this device id whose chardev has this label (the `id=` of its
    /// `-chardev`), without asking QOM.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `query-chardev` lists no such chardev; QMP errors as
    /// for [`QmpClient::call`].
    pub async fn with_chardev(qmp: &QmpClient, device_id: &str, chardev: &str) -> Result<Self> {
        // Subscribe first: a change after the query then arrives as an event. Events already
        // reflected in the query are harmless to apply again (they carry the state itself).
        let events = qmp.subscribe();
        let connected = frontend_open(qmp, chardev).await?;
        let state = Arc::new(watch::Sender::new(PresenceState {
            connected,
            changes: 0,
            qmp_closed: false,
        }));
        let watcher = tokio::spawn(follow(events, device_id.to_owned(), Arc::clone(&state)));
        tracing::debug!(
            device_id,
            chardev,
            connected,
            "watching guest agent presence"
        );
        Ok(Self {
            qmp: qmp.clone(),
            device_id: device_id.to_owned(),
            chardev: chardev.to_owned(),
            state,
            watcher,
            attached: StdMutex::new(Vec::new()),
        })
    }

    /// The port's device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The label of the port's chardev.
    pub fn chardev(&self) -> &str {
        &self.chardev
    }

    /// True while the agent has its port open, as far as QMP has said.
    pub fn is_connected(&self) -> bool {
        self.state.borrow().connected
    }

    /// The current state.
    pub fn state(&self) -> PresenceState {
        *self.state.borrow()
    }

    /// A receiver that sees every update (each event, each refresh).
    pub fn subscribe(&self) -> watch::Receiver<PresenceState> {
        self.state.subscribe()
    }

    /// Asks `query-chardev` again and stores the answer; returns whether the agent is
    /// connected. Not needed in normal operation: the events keep the state current.
    ///
    /// # Errors
    ///
    /// As for [`with_chardev`](Self::with_chardev).
    pub async fn refresh(&self) -> Result<bool> {
        let connected = frontend_open(&self.qmp, &self.chardev).await?;
        self.state.send_if_modified(|s| {
            let modified = s.connected != connected && !s.qmp_closed;
            if modified {
                s.connected = connected;
            }
            modified
        });
        Ok(self.is_connected())
    }

    /// Returns once the agent is connected (at once if it is).
    ///
    /// # Errors
    ///
    /// [`Error::QmpTimeout`] when it did not connect within `timeout`; [`Error::Closed`]
    /// when the QMP connection closed first.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.subscribe();
        let wait = rx.wait_for(|s| s.connected || s.qmp_closed);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(s)) if s.connected => Ok(()),
            Ok(_) => Err(Error::Closed),
            Err(_) => Err(Error::QmpTimeout {
                what: format!("the guest agent to open port {}", self.device_id),
                after: timeout,
            }),
        }
    }

    /// Returns once the agent is not connected (at once if it is not, or if the QMP
    /// connection closed).
    ///
    /// # Errors
    ///
    /// [`Error::QmpTimeout`] when it stayed connected for `timeout`.
    pub async fn wait_disconnected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.subscribe();
        let wait = rx.wait_for(|s| !s.connected);
        match tokio::time::timeout(timeout, wait).await {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::QmpTimeout {
                what: format!("the guest agent to close port {}", self.device_id),
                after: timeout,
            }),
        }
    }

    /// Marks `client` unsynced ([`Client::mark_unsynced`]) on every event for the port, so
    /// that its next call starts with a fresh handshake. Holds a clone of the client until
    /// this watcher is dropped.
    pub fn attach(&self, client: &Client) {
        let client = client.clone();
        let mut rx = self.subscribe();
        let task = tokio::spawn(async move {
            let mut seen = rx.borrow_and_update().changes;
            while rx.changed().await.is_ok() {
                let changes = rx.borrow_and_update().changes;
                if changes != seen {
                    seen = changes;
                    // Waits for a call in flight to finish; that call resyncs anyway if it
                    // fails.
                    client.mark_unsynced().await;
                    tracing::debug!("guest agent port changed; client marked unsynced");
                }
            }
        });
        let mut attached = self
            .attached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        attached.retain(|t| !t.is_finished());
        attached.push(task);
    }
}

impl Drop for AgentPresence {
    fn drop(&mut self) {
        self.watcher.abort();
        let attached = self
            .attached
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for task in attached.drain(..) {
            task.abort();
        }
    }
}

/// Calls `command` only if `presence` says the agent is connected, and gives up as soon as it
/// disconnects while the call is in flight: a caller that would rather fail fast than wait
/// for the call's deadline.
///
/// A command that sends no reply on success (guest-shutdown) is not cut short by the
/// disconnect it causes. As with any dropped call, a request already sent may still run in
/// the guest, and the client resynchronises before its next call.
///
/// # Errors
///
/// [`Error::NotConnected`] at once when the agent is absent or when it goes away during the
/// call; else as for [`Client::call`].
pub async fn call_if_present<C: Command>(
    client: &Client,
    presence: &AgentPresence,
    command: &C,
) -> Result<C::Response> {
    let mut rx = presence.subscribe();
    if !rx.borrow_and_update().connected {
        return Err(Error::NotConnected);
    }
    if !C::SUCCESS_RESPONSE {
        return client.call(command).await;
    }
    let gone = async {
        if rx.wait_for(|s| !s.connected).await.is_err() {
            // The watcher is gone (cannot happen while `presence` is borrowed): never fire.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        biased;
        result = client.call(command) => result,
        () = gone => {
            tracing::debug!(command = C::NAME, "guest agent disconnected during the call");
            Err(Error::NotConnected)
        }
    }
}

/// `frontend-open` of one chardev.
async fn frontend_open(qmp: &QmpClient, chardev: &str) -> Result<bool> {
    let chardevs = qmp.call(&QueryChardev).await?;
    chardevs
        .iter()
        .find(|c| c.label == chardev)
        .map(|c| c.frontend_open)
        .ok_or_else(|| Error::InvalidArgument(format!("query-chardev lists no chardev {chardev}")))
}

/// Applies the port's events until the QMP connection closes.
async fn follow(
    mut events: EventStream,
    device_id: String,
    state: Arc<watch::Sender<PresenceState>>,
) {
    while let Some(event) = events.next().await {
        if let KnownEvent::VserportChange(change) = event.event
            && change.id == device_id
        {
            tracing::debug!(device_id, open = change.open, "guest agent port changed");
            state.send_modify(|s| {
                s.connected = change.open;
                s.changes += 1;
            });
        }
    }
    tracing::debug!(
        device_id,
        "QMP connection closed; guest agent presence unknown"
    );
    state.send_modify(|s| {
        s.connected = false;
        s.qmp_closed = true;
    });
}

#[cfg(test)]
mod tests {
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
}
