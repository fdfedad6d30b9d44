//! QMP client: greeting, negotiation, id-routed commands from concurrent callers, events.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use qga_proto::codec::{Frame, FrameDecoder};
use qga_proto::message::{Greeting, QmpMessage, Reply};
use qga_proto::qmp::{QmpCapabilities, TimedEvent};
use qga_proto::{Command, RawCommand, encode_raw_request, encode_request};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{Mutex, broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::{Error, ProtocolError, Result};
use crate::io::{Incoming, read_frame};
use crate::transport::{Stream, Transport};

/// Events kept for a subscriber that falls behind.
const EVENT_BUFFER: usize = 1024;

/// Initial size of a request's buffer.
const REQUEST_CAPACITY: usize = 256;

/// A QMP client. Cheap to clone; clones share the connection. Commands from several tasks may
/// be in flight at once: replies are routed by id.
#[derive(Clone)]
pub struct QmpClient {
    shared: Arc<QmpShared>,
}

struct QmpShared {
    writer: Mutex<Writer>,
    pending: Arc<StdMutex<Pending>>,
    /// Weak, so that the stream ends when the reader task (the only strong sender) ends.
    events: broadcast::WeakSender<TimedEvent>,
    next_id: AtomicU64,
    greeting: Greeting,
    timeout: Duration,
    reader: JoinHandle<()>,
}

impl Drop for QmpShared {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The write side. `dirty` is set while a request is being written: a call dropped or timed
/// out mid-write leaves a partial request in QEMU's parser, which the next write resets with
/// `0xFF` (QEMU answers that with an id-less error, which the reader drops).
struct Writer {
    half: WriteHalf<Box<dyn Stream>>,
    dirty: bool,
}

#[derive(Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Bytes>>,
    closed: bool,
}

impl std::fmt::Debug for QmpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QmpClient")
            .field("version", &self.shared.greeting.qmp.version)
            .finish_non_exhaustive()
    }
}

/// A subscription to QMP events. Events from before the subscription are not seen: subscribe
/// before sending the command that causes the event (QEMU may send the event before the reply).
#[derive(Debug)]
pub struct EventStream {
    rx: broadcast::Receiver<TimedEvent>,
}

impl EventStream {
    /// The next event, or `None` once the connection closed. A subscriber that fell more than
    /// 1024 events behind skips the oldest ones (logged).
    pub async fn next(&mut self) -> Option<TimedEvent> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "QMP event subscriber fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Waits for the first event that `matches` accepts.
    ///
    /// # Errors
    ///
    /// [`Error::QmpTimeout`] when none came within `timeout`; [`Error::Closed`] when the
    /// connection closed first.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&TimedEvent) -> bool,
    ) -> Result<TimedEvent> {
        let wait = async {
            while let Some(event) = self.next().await {
                if matches(&event) {
                    return Ok(event);
                }
            }
            Err(Error::Closed)
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or_else(|_| {
                Err(Error::QmpTimeout {
                    what: "an event".into(),
                    after: timeout,
                })
            })
    }

    /// Waits for the next event named `name` (`"SHUTDOWN"`).
    ///
    /// # Errors
    ///
    /// As for [`wait_for`](Self::wait_for).
    pub async fn wait_named(&mut self, name: &str, timeout: Duration) -> Result<TimedEvent> {
        self.wait_for(timeout, |e| e.name == name).await
    }
}

impl QmpClient {
    /// Connects to a QMP socket, reads the greeting and negotiates capabilities (none are
    /// enabled), all within `timeout`, which also becomes the default deadline of commands.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] naming the path, [`Error::QmpTimeout`], [`Error::Protocol`] when the
    /// first message is not a greeting, or [`Error::Agent`] when negotiation fails.
    pub async fn connect(path: impl AsRef<Path>, timeout: Duration) -> Result<Self> {
        let transport = Transport::unix(path);
        let stream = transport.connect(timeout).await?;
        Self::from_stream(stream, timeout).await
    }

    /// Like [`connect`](Self::connect), over an existing stream.
    ///
    /// # Errors
    ///
    /// As for `connect`.
    pub async fn from_stream(stream: impl Stream, timeout: Duration) -> Result<Self> {
        let stream: Box<dyn Stream> = Box::new(stream);
        let deadline = crate::client::later(Instant::now(), timeout);
        let (mut read, write) = tokio::io::split(stream);
        let mut decoder = FrameDecoder::new();
        let mut rbuf = BytesMut::new();
        let greeting = tokio::time::timeout_at(deadline, async {
            match read_frame(&mut read, &mut decoder, &mut rbuf).await? {
                Incoming::Frame(Frame::Message(bytes)) => match QmpMessage::from_slice(&bytes) {
                    Ok(QmpMessage::Greeting(g)) => Ok(g),
                    _ => Err(Error::Protocol(ProtocolError::NoGreeting)),
                },
                Incoming::Eof => Err(Error::Closed),
                Incoming::Frame(Frame::Sentinel) | Incoming::BadFrame(_) => {
                    Err(Error::Protocol(ProtocolError::NoGreeting))
                }
            }
        })
        .await
        .map_err(|_| Error::QmpTimeout {
            what: "the greeting".into(),
            after: timeout,
        })??;
        let pending = Arc::new(StdMutex::new(Pending::default()));
        let (sender, _) = broadcast::channel(EVENT_BUFFER);
        let events = sender.downgrade();
        let reader = tokio::spawn(read_loop(read, decoder, rbuf, Arc::clone(&pending), sender));
        let client = Self {
            shared: Arc::new(QmpShared {
                writer: Mutex::new(Writer {
                    half: write,
                    dirty: false,
                }),
                pending,
                events,
                next_id: AtomicU64::new(1),
                greeting,
                timeout,
                reader,
            }),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        client
            .call_timeout(&QmpCapabilities::default(), remaining)
            .await?;
        Ok(client)
    }

    /// The greeting QEMU sent.
    pub fn greeting(&self) -> &Greeting {
        &self.shared.greeting
    }

    /// A new event subscription.
    pub fn subscribe(&self) -> EventStream {
        let rx = match self.shared.events.upgrade() {
            Some(sender) => sender.subscribe(),
            // Closed: a receiver whose sender is already gone ends at once.
            None => broadcast::channel(1).1,
        };
        EventStream { rx }
    }

    /// True once the connection closed.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.pending).closed
    }

    /// Calls a typed command with the default deadline.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`] with QEMU's error, [`Error::QmpTimeout`], [`Error::Closed`],
    /// [`Error::Decode`].
    pub async fn call<C: Command>(&self, command: &C) -> Result<C::Response> {
        self.call_timeout(command, self.shared.timeout).await
    }

    /// Calls a typed command with an explicit deadline.
    ///
    /// # Errors
    ///
    /// As for [`call`](Self::call).
    pub async fn call_timeout<C: Command>(
        &self,
        command: &C,
        timeout: Duration,
    ) -> Result<C::Response> {
        let bytes = self
            .transact(C::NAME, timeout, |id, out| {
                encode_request(command, Some(id), out)
            })
            .await?;
        decode::<C::Response>(C::NAME, &bytes)
    }

    /// Calls any command by name with any arguments; returns the `return` value as JSON.
    ///
    /// # Errors
    ///
    /// As for [`call`](Self::call).
    pub async fn call_raw(&self, command: &RawCommand) -> Result<serde_json::Value> {
        let bytes = self
            .transact(&command.name, self.shared.timeout, |id, out| {
                encode_raw_request(command, Some(id), out)
            })
            .await?;
        decode::<serde_json::Value>(&command.name, &bytes)
    }

    async fn transact(
        &self,
        command: &str,
        timeout: Duration,
        encode: impl FnOnce(u64, &mut BytesMut) -> serde_json::Result<()>,
    ) -> Result<Bytes> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        // Room for any argument-less command and its id, so that encoding does not regrow.
        let mut out = BytesMut::with_capacity(REQUEST_CAPACITY);
        encode(id, &mut out)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode the arguments: {e}")))?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.shared.pending);
            if pending.closed {
                return Err(Error::Closed);
            }
            pending.waiting.insert(id, tx);
        }
        // Removes the entry however this call ends (reply, timeout, dropped future).
        let _cleanup = RemoveOnDrop {
            pending: &self.shared.pending,
            id,
        };
        let work = async {
            {
                let mut writer = self.shared.writer.lock().await;
                if writer.dirty {
                    writer.half.write_all(&[qga_proto::codec::SENTINEL]).await?;
                }
                writer.dirty = true;
                writer.half.write_all(&out).await?;
                writer.half.flush().await?;
                writer.dirty = false;
            }
            rx.await.map_err(|_| Error::Closed)
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::QmpTimeout {
                what: command.to_owned(),
                after: timeout,
            }),
        }
    }
}

struct RemoveOnDrop<'a> {
    pending: &'a StdMutex<Pending>,
    id: u64,
}

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        lock(self.pending).waiting.remove(&self.id);
    }
}

fn lock(m: &StdMutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    // A panic while holding this lock cannot leave `Pending` inconsistent: take it anyway.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn decode<T: DeserializeOwned>(command: &str, bytes: &[u8]) -> Result<T> {
    Reply::<T>::from_slice(bytes)
        .map_err(|source| Error::Decode {
            command: command.to_owned(),
            source,
        })?
        .into_result()
        .map_err(|error| Error::Agent {
            command: command.to_owned(),
            error,
        })
}

/// Reads messages until EOF: replies go to their caller by id, events to subscribers.
async fn read_loop(
    mut read: ReadHalf<Box<dyn Stream>>,
    mut decoder: FrameDecoder,
    mut rbuf: BytesMut,
    pending: Arc<StdMutex<Pending>>,
    events: broadcast::Sender<TimedEvent>,
) {
    #[derive(Deserialize)]
    struct Route {
        #[serde(default)]
        id: Option<serde_json::Value>,
        #[serde(default)]
        event: Option<IgnoredAny>,
    }
    loop {
        match read_frame(&mut read, &mut decoder, &mut rbuf).await {
            Ok(Incoming::Frame(Frame::Message(bytes))) => {
                let Ok(route) = serde_json::from_slice::<Route>(&bytes) else {
                    tracing::warn!("undecodable message from QMP; ignored");
                    continue;
                };
                if route.event.is_some() {
                    match serde_json::from_slice::<qga_proto::message::Event>(&bytes) {
                        // No subscriber is not an error.
                        Ok(event) => drop(events.send(TimedEvent::from(event))),
                        Err(e) => tracing::warn!(error = %e, "malformed QMP event; ignored"),
                    }
                    continue;
                }
                let waiter = route
                    .id
                    .as_ref()
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|id| lock(&pending).waiting.remove(&id));
                match waiter {
                    Some(tx) => drop(tx.send(bytes)),
                    None => tracing::debug!("QMP reply nobody waits for; dropped"),
                }
            }
            Ok(Incoming::Frame(Frame::Sentinel)) => {
                tracing::warn!("unexpected 0xFF from QMP; ignored");
            }
            Ok(Incoming::BadFrame(e)) => {
                tracing::warn!(error = %e, "bad framing from QMP; skipped");
            }
            Ok(Incoming::Eof) => break,
            Err(e) => {
                tracing::debug!(error = %e, "QMP connection failed");
                break;
            }
        }
    }
    let mut pending = lock(&pending);
    pending.closed = true;
    // Dropping the senders wakes every caller with Closed.
    pending.waiting.clear();
}
