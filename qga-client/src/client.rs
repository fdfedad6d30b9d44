//! The QGA client's public call surface: typed and raw calls, deadlines, sync.
//!
//! The connection state machine is in `conn`, the settings and the builder in `config`.

mod config;
mod conn;
#[cfg(feature = "libvirt")]
mod libvirt;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use qga_proto::message::Reply;
use qga_proto::{Command, RawCommand, encode_raw_request, encode_request};
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;
use tokio::time::Instant;

pub use self::config::{ClientBuilder, Config};
use self::conn::{Conn, Sent};
use crate::error::{Error, ProtocolError, Result};
use crate::transport::{Stream, Transport};

/// A QGA client. Cheap to clone; clones share one connection and take turns on it.
///
/// [`with_deadline`](Self::with_deadline) gives a handle on the same connection whose every
/// call ends by a deadline: one bound for a whole job of several calls.
///
/// See the [crate documentation](crate) for the behaviour on timeouts and cancellation.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    /// No call of this handle ends later than this ([`Client::with_deadline`]).
    deadline: Option<Instant>,
}

struct Shared {
    config: Config,
    transport: Option<Transport>,
    conn: Mutex<Conn>,
    /// Events skipped on the channel (qemu-ga sends none; a hostile guest may).
    events_skipped: AtomicU64,
    /// The libvirt transport: calls go through libvirt, `conn` stays unused.
    #[cfg(feature = "libvirt")]
    libvirt: Option<crate::libvirt::Target>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("transport", &self.shared.transport)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder with the default [`Config`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connects to the UNIX socket at `path` with the default configuration.
    ///
    /// # Errors
    ///
    /// See [`ClientBuilder::connect`].
    pub async fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().connect(path).await
    }

    fn new(config: Config, stream: Option<Box<dyn Stream>>, transport: Option<Transport>) -> Self {
        let conn = Conn::new(stream, config.max_message_len);
        Self {
            shared: Arc::new(Shared {
                transport,
                conn: Mutex::new(conn),
                config,
                events_skipped: AtomicU64::new(0),
                #[cfg(feature = "libvirt")]
                libvirt: None,
            }),
            deadline: None,
        }
    }

    /// The largest file chunk one read may bring, and one write may carry, on this client's
    /// transport.
    pub(crate) fn max_chunks(&self) -> (usize, usize) {
        #[cfg(feature = "libvirt")]
        if self.shared.libvirt.is_some() {
            return (
                crate::libvirt::MAX_READ_CHUNK,
                crate::libvirt::MAX_WRITE_CHUNK,
            );
        }
        (usize::MAX, usize::MAX)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Where this client connects, if it was created from a byte-stream transport (`None` for
    /// a stream given directly and for the libvirt transport).
    pub fn transport(&self) -> Option<&Transport> {
        self.shared.transport.as_ref()
    }

    /// A handle on the same connection whose every call ends by `deadline` at the latest:
    /// each call gets `min(now + its own timeout, deadline)`. That holds for the helpers too,
    /// whatever calls they make (exec polling, each file chunk and the read-back,
    /// set_user_password, fsfreeze, shutdown, info...), for waiting on the connection while
    /// another caller uses it, for reconnecting and for the handshake. Cheap: one `Arc` clone.
    ///
    /// A call that runs out at the deadline fails with [`Error::Timeout`] whose `after` is the
    /// time it actually had; one that starts after the deadline fails at once, sending
    /// nothing. [`exec`](Self::exec) gives [`Error::ExecTimeout`] with the pid when the
    /// program outlives the deadline ([`ExecRequest::timeout`](crate::ExecRequest::timeout)
    /// stays the program's own limit; the smaller one wins).
    ///
    /// On a handle that already has a deadline, the earlier of the two is kept. The filesystem
    /// thaw that a [`FreezeGuard`](crate::FreezeGuard) runs in the background when dropped is
    /// not bound by it.
    ///
    /// ```no_run
    /// # async fn demo(client: qga_client::Client) -> Result<(), qga_client::Error> {
    /// use std::time::Duration;
    /// use tokio::time::Instant;
    ///
    /// // The whole request, however many calls it takes, within 10 s.
    /// let guest = client.with_deadline(Instant::now() + Duration::from_secs(10));
    /// guest.write_file("/etc/motd", b"hello\n").await?;
    /// guest.exec(qga_client::ExecRequest::new("sync")).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            deadline: Some(self.deadline.map_or(deadline, |d| d.min(deadline))),
        }
    }

    /// How many `{"event": ...}` messages arrived on this connection in place of replies and
    /// were skipped (qemu-ga sends none; a guest that does is misbehaving).
    pub fn skipped_events(&self) -> u64 {
        self.shared.events_skipped.load(Ordering::Relaxed)
    }

    /// The deadline of this handle, if it came from [`with_deadline`](Self::with_deadline).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The same connection without this handle's deadline: for work that must outlive the
    /// call that started it (a thaw after a timed-out freeze).
    pub(crate) fn without_deadline(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            deadline: None,
        }
    }

    /// The deadline of a call that starts at `now` with `timeout`, and the time that leaves
    /// it: `timeout`, or less when this handle's deadline comes first.
    pub(crate) fn bound(&self, now: Instant, timeout: Duration) -> (Instant, Duration) {
        let own = later(now, timeout);
        match self.deadline {
            Some(deadline) if deadline < own => (deadline, deadline.saturating_duration_since(now)),
            _ => (own, timeout),
        }
    }

    /// True when this handle's deadline has passed at `now`: a call must not start.
    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now)
    }

    /// Calls a typed command with its default timeout (and this handle's deadline).
    ///
    /// Commands that send no reply on success return the empty value once the grace period
    /// passed without an error reply.
    ///
    /// # Errors
    ///
    /// [`Error::Agent`] with the agent's class and description; [`Error::Timeout`];
    /// [`Error::Closed`]; [`Error::Decode`] when the reply does not fit the response type;
    /// [`Error::Protocol`] when the peer broke the protocol (the next call resyncs).
    pub async fn call<C: Command>(&self, command: &C) -> Result<C::Response> {
        let timeout = self.shared.config.timeout_for(C::NAME, C::LONG_RUNNING);
        self.call_timeout(command, timeout).await
    }

    /// Calls a typed command with an explicit timeout covering everything: waiting for other
    /// callers, reconnecting, synchronising and the command itself. This handle's deadline
    /// ([`with_deadline`](Self::with_deadline)) still applies when it comes first.
    ///
    /// # Errors
    ///
    /// As for [`call`](Self::call).
    pub async fn call_timeout<C: Command>(
        &self,
        command: &C,
        timeout: Duration,
    ) -> Result<C::Response> {
        self.transact(
            C::NAME,
            C::SUCCESS_RESPONSE,
            false,
            timeout,
            |id, out| encode_request(command, id, out),
            |reply, id| match reply {
                Some(bytes) => decode_reply::<C::Response>(C::NAME, bytes, id),
                None => no_reply_value::<C::Response>(C::NAME),
            },
        )
        .await
    }

    /// Calls any command by name, with any JSON arguments, and returns the `return` value as
    /// JSON. Uses the deadline configured for that name.
    ///
    /// A raw command is assumed to reply. Send the no-reply commands (guest-shutdown,
    /// guest-suspend-*) as typed commands.
    ///
    /// # Errors
    ///
    /// As for [`call`](Self::call).
    pub async fn call_raw(&self, command: &RawCommand) -> Result<serde_json::Value> {
        let timeout = self.shared.config.timeout_for(&command.name, false);
        self.call_raw_timeout(command, timeout).await
    }

    /// [`call_raw`](Self::call_raw) with an explicit timeout (and this handle's deadline).
    ///
    /// # Errors
    ///
    /// As for [`call`](Self::call).
    pub async fn call_raw_timeout(
        &self,
        command: &RawCommand,
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        self.transact(
            &command.name,
            true,
            true,
            timeout,
            |id, out| encode_raw_request(command, id, out),
            |reply, id| match reply {
                Some(bytes) => decode_reply::<serde_json::Value>(&command.name, bytes, id),
                None => Ok(serde_json::Value::Null),
            },
        )
        .await
    }

    /// Synchronises now (connecting first if needed), within the default timeout (and this
    /// handle's deadline). Over libvirt there is nothing to do: libvirt synchronises with the
    /// agent itself.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`], [`Error::Timeout`] or [`Error::Closed`].
    pub async fn sync(&self) -> Result<()> {
        let now = Instant::now();
        let (deadline, after) = self.bound(now, self.shared.config.default_timeout);
        let timed_out = || Error::Timeout {
            command: "guest-sync-delimited".into(),
            after,
        };
        if self.expired(now) {
            return Err(timed_out());
        }
        #[cfg(feature = "libvirt")]
        if self.shared.libvirt.is_some() {
            // libvirt synchronises with the agent itself.
            return Ok(());
        }
        let work = async {
            let mut conn = self.shared.conn.lock().await;
            conn.synced = false;
            conn.ensure_ready(&self.shared, deadline).await
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(timed_out()),
        }
    }

    /// Forgets that the channel is in sync, so that the next call resynchronises first: for a
    /// caller that learnt out of band (QMP `VSERPORT_CHANGE`) that the agent restarted.
    pub async fn mark_unsynced(&self) {
        self.shared.conn.lock().await.synced = false;
    }

    /// Closes the connection. A client created from a path connects again on the next call.
    pub async fn disconnect(&self) {
        let mut conn = self.shared.conn.lock().await;
        conn.close();
    }

    /// True while a connection is open (it may still be out of sync). For the libvirt
    /// transport: while the connection to libvirt is open.
    pub async fn is_connected(&self) -> bool {
        #[cfg(feature = "libvirt")]
        if let Some(target) = &self.shared.libvirt {
            return target.conn.is_connected();
        }
        self.shared.conn.lock().await.stream.is_some()
    }

    /// One exchange: `raw` commands go to the agent as they are on every transport (over
    /// libvirt, typed ones may be served by a dedicated libvirt call instead).
    #[allow(clippy::too_many_arguments)]
    async fn transact<R>(
        &self,
        command: &str,
        expects_reply: bool,
        raw: bool,
        timeout: Duration,
        encode: impl FnOnce(Option<u64>, &mut BytesMut) -> serde_json::Result<()>,
        decode: impl Fn(Option<&[u8]>, Option<u64>) -> Result<R>,
    ) -> Result<R> {
        let now = Instant::now();
        let (deadline, after) = self.bound(now, timeout);
        if self.expired(now) {
            tracing::debug!(command, "deadline passed before the guest agent call");
            return Err(Error::Timeout {
                command: command.to_owned(),
                after,
            });
        }
        let shared = &*self.shared;
        #[cfg(feature = "libvirt")]
        if let Some(target) = &shared.libvirt {
            let work = crate::libvirt::transact(
                target,
                &shared.config,
                command,
                raw,
                expects_reply,
                deadline,
                after,
                encode,
                decode,
            );
            return match tokio::time::timeout_at(deadline, work).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::debug!(
                        command,
                        ?after,
                        "guest agent call through libvirt timed out"
                    );
                    Err(Error::Timeout {
                        command: command.to_owned(),
                        after,
                    })
                }
            };
        }
        #[cfg(not(feature = "libvirt"))]
        let _ = raw;
        let work = async {
            let mut conn = shared.conn.lock().await;
            conn.ensure_ready(shared, deadline).await?;
            let id = conn.prepare(shared, encode)?;
            let mut sent = conn.send(shared, expects_reply, deadline).await;
            if let Sent::Failed { unsent: true, .. } = sent
                && shared.transport.is_some()
            {
                // The idle connection was dead (the agent restarted) before we could tell.
                tracing::debug!("guest agent connection was closed; reconnecting");
                conn.ensure_ready(shared, deadline).await?;
                sent = conn.send(shared, expects_reply, deadline).await;
            }
            conn.release_request();
            loop {
                match sent {
                    Sent::Reply(bytes) => {
                        let result = decode(Some(&bytes), id);
                        // qemu-ga sends no events on its channel, but a hostile guest may:
                        // one is skipped (counted) and the real reply read after it. Checked
                        // only when the reply does not decode, so it costs nothing otherwise.
                        if matches!(result, Err(Error::Decode { .. })) && is_event(&bytes) {
                            let skipped = shared.events_skipped.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(
                                command,
                                skipped = skipped + 1,
                                "skipped an event on the guest agent channel"
                            );
                            sent = conn.next_reply().await;
                            continue;
                        }
                        if !matches!(result, Err(Error::Protocol(_))) {
                            conn.mark_synced();
                        }
                        return result;
                    }
                    Sent::NoReply => return decode(None, id),
                    Sent::Failed { error, .. } => return Err(error),
                }
            }
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!(command, ?after, "guest agent call timed out");
                Err(Error::Timeout {
                    command: command.to_owned(),
                    after,
                })
            }
        }
    }
}

/// `now + after`, or far in the future when that overflows (a caller's `Duration::MAX`): a
/// timeout too long to represent means "no timeout", never a panic.
pub(crate) fn later(now: Instant, after: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(after)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// Whether a message that is not a reply is an event (`{"event": ...}` without `return` or
/// `error`).
fn is_event(bytes: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Shape {
        event: Option<serde::de::IgnoredAny>,
        #[serde(rename = "return")]
        ret: Option<serde::de::IgnoredAny>,
        error: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Shape>(bytes)
        .is_ok_and(|s| s.event.is_some() && s.ret.is_none() && s.error.is_none())
}

/// Decodes a reply and checks the echoed id. A missing id is accepted (replies are
/// correlated by order after a sync; old agents do not echo); a different one is not.
fn decode_reply<T: DeserializeOwned>(command: &str, bytes: &[u8], id: Option<u64>) -> Result<T> {
    let reply = Reply::<T>::from_slice(bytes).map_err(|source| Error::Decode {
        command: command.to_owned(),
        source,
    })?;
    if let (Some(expected), Some(got)) = (id, reply.id())
        && got.as_u64() != Some(expected)
    {
        return Err(Error::Protocol(ProtocolError::IdMismatch {
            expected,
            got: got.clone(),
        }));
    }
    reply.into_result().map_err(|error| Error::Agent {
        command: command.to_owned(),
        error,
    })
}

/// The value of a command that did not reply (its response type is `Empty`).
fn no_reply_value<T: DeserializeOwned>(command: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::Object(serde_json::Map::new())).map_err(|e| {
        Error::Decode {
            command: command.to_owned(),
            source: e.into(),
        }
    })
}
