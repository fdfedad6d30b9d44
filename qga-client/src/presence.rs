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
mod tests;
