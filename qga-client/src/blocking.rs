//! The blocking client: the same client as [`Client`](crate::Client), on one thread, with
//! no async runtime.
//!
//! [`Client`] talks to qemu-ga over std's [`UnixStream`]. Every call blocks in `write` and
//! `read` with the socket's kernel timeouts set from the call's deadline, so a call is two
//! system calls and no more (the async client's wait goes through `epoll`). It shares every
//! decision with the async client: the `guest-sync-delimited` handshake on connect and after
//! anything that leaves the channel in doubt (a timeout, a reply it could not read, a wrong
//! id, a command that sends no reply), the id check, the skipping of events a hostile guest
//! puts in place of replies, the errors ([`Error`] with the same variants and
//! predicates), and the helpers' logic: exec polling, chunked file transfer with its bound and
//! verification, the password checks, the fsfreeze guard.
//!
//! Deadlines work as in the async client: a default timeout per command ([`Config`]; one
//! option sets them all: [`ClientBuilder::timeout`]), a per-call override
//! ([`Client::call_timeout`]), and one deadline for a whole job ([`Client::with_deadline`]),
//! which bounds waiting for the connection while another thread uses it too. Clones share one
//! connection and take turns on it.
//!
//! Threads: none, except that a [`FreezeGuard`] keeps one to thaw the guest at the end of its
//! hold time, and a freeze that timed out thaws from one (a guest must not stay frozen).
//!
//! ```no_run
//! # fn demo() -> Result<(), qga_client::Error> {
//! use std::time::{Duration, Instant};
//! use qga_client::ExecRequest;
//! use qga_client::blocking::Client;
//!
//! let client = Client::builder()
//!     .timeout(Duration::from_secs(3))
//!     .connect("/run/qemu-server/100.qga")?;
//! client.ping()?;
//! // Everything below, the exec polling included, within 10 s in all.
//! let guest = client.with_deadline(Instant::now() + Duration::from_secs(10));
//! guest.write_file("/tmp/hello", b"hello\n")?;
//! let out = guest.exec(ExecRequest::new("cat").arg("/tmp/hello"))?;
//! print!("{}", String::from_utf8_lossy(&out.stdout));
//! # Ok(()) }
//! ```

mod conn;
mod file;
mod fsfreeze;
mod helpers;
mod slot;
mod socket;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use qga_proto::{Command, RawCommand, encode_raw_request, encode_request};

use self::conn::Conn;
pub use self::fsfreeze::FreezeGuard;
use self::slot::Slot;
use self::socket::Socket;
use crate::error::{Error, Result};
use crate::logic::config::Config;
use crate::logic::conn::{Sent, Settled};
use crate::logic::{deadline, reply};

/// A blocking QGA client. Cheap to clone; clones share one connection and take turns on it.
///
/// See the [module documentation](self).
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    /// No call of this handle ends later than this ([`Client::with_deadline`]).
    deadline: Option<Instant>,
}

pub(crate) struct Shared {
    config: Config,
    /// Where to connect again after the agent closed the connection.
    path: Option<PathBuf>,
    conn: Slot<Conn>,
    /// Events skipped on the channel (qemu-ga sends none; a hostile guest may).
    events_skipped: AtomicU64,
    /// Guest file handles that a transfer cut short by its deadline could not close: closed
    /// by the next call, within its own deadline.
    orphans: std::sync::Mutex<Vec<i64>>,
}

/// One call's deadline and what to say when it passes.
pub(crate) struct Call<'a> {
    command: &'a str,
    deadline: Instant,
    /// How long the call had.
    after: Duration,
}

impl Call<'_> {
    fn timed_out(&self) -> Error {
        tracing::debug!(command = self.command, after = ?self.after, "guest agent call timed out");
        Error::Timeout {
            command: self.command.to_owned(),
            after: self.after,
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("blocking::Client")
            .field("path", &self.path())
            .field("deadline", &self.deadline())
            .field("skipped_events", &self.skipped_events())
            .finish()
    }
}

/// Builds a blocking [`Client`]: [`timeout`](Self::timeout) for the one setting most callers
/// need, [`config`](Self::config) for all of them.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ClientBuilder {
    config: Config,
}

impl ClientBuilder {
    /// One timeout for everything: sets [`Config::default_timeout`],
    /// [`Config::long_timeout`] and [`Config::connect_timeout`] to `t`. For a bound on a
    /// whole job of several calls, use [`Client::with_deadline`].
    pub fn timeout(mut self, t: Duration) -> Self {
        let c = &mut self.config;
        (c.default_timeout, c.long_timeout, c.connect_timeout) = (t, t, t);
        self
    }

    /// Replaces the whole configuration (fill in the fields to change, with
    /// `..Config::default()` for the rest).
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Connects to the UNIX socket at `path` and synchronises, all within the default timeout.
    /// The client connects again to the same path by itself if the connection is closed later.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] naming the path, or [`Error::Timeout`] when the agent does not
    /// answer the handshake.
    pub fn connect(self, path: impl AsRef<Path>) -> Result<Client> {
        let client = Client::new(self.config, None, Some(path.as_ref().to_owned()));
        client.sync()?;
        Ok(client)
    }

    /// A client over a connected socket (one end of `UnixStream::pair`, ...). It
    /// synchronises on the first call and cannot reconnect: once the socket closes, calls
    /// fail with [`Error::Closed`].
    pub fn from_stream(self, stream: UnixStream) -> Client {
        Client::new(self.config, Some(Socket::new(stream)), None)
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
    pub fn connect(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder().connect(path)
    }

    fn new(config: Config, stream: Option<Socket>, path: Option<PathBuf>) -> Self {
        let shared = Shared {
            conn: Slot::new(Conn::new(stream, config.max_message_len)),
            config,
            path,
            orphans: std::sync::Mutex::default(),
            events_skipped: AtomicU64::default(),
        };
        let shared = Arc::new(shared);
        Self {
            shared,
            deadline: None,
        }
    }

    /// A handle on the same connection whose every call ends by `deadline` at the latest:
    /// each call gets `min(now + its own timeout, deadline)`, the helpers' calls too (exec
    /// polling, each file chunk and the read-back, ...), and so do waiting for the
    /// connection while another thread uses it, reconnecting and the handshake.
    ///
    /// A call that runs out at the deadline fails with [`Error::Timeout`] whose `after` is
    /// the time it had; one that starts after the deadline fails at once, sending nothing.
    /// [`exec`](Self::exec) gives [`Error::ExecTimeout`] with the pid when the program
    /// outlives it. On a handle that already has a deadline, the earlier one is kept.
    pub fn with_deadline(&self, deadline: Instant) -> Self {
        let deadline = Some(deadline::earlier(self.deadline, deadline));
        Self {
            deadline,
            ..self.clone()
        }
    }

    /// The socket path this client connects to, if it was made from one.
    pub fn path(&self) -> Option<&Path> {
        self.shared.path.as_deref()
    }

    /// The deadline of this handle, if it came from [`with_deadline`](Self::with_deadline).
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The same connection without this handle's deadline.
    fn without_deadline(&self) -> Self {
        let deadline = None;
        Self {
            deadline,
            ..self.clone()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// How many `{"event": ...}` messages arrived on this connection in place of replies and
    /// were skipped (qemu-ga sends none; a guest that does is misbehaving).
    pub fn skipped_events(&self) -> u64 {
        self.shared.events_skipped.load(Ordering::Relaxed)
    }

    /// A call of `command` that starts now with `timeout`, bound by this handle's deadline.
    fn start<'a>(&self, command: &'a str, timeout: Duration) -> Result<Call<'a>> {
        let now = Instant::now();
        let (deadline, after) = deadline::bound(self.deadline, now, timeout);
        let call = Call {
            command,
            deadline,
            after,
        };
        if deadline::expired(self.deadline, now) {
            tracing::debug!(command, "deadline passed before the guest agent call");
            return Err(call.timed_out());
        }
        Ok(call)
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
    pub fn call<C: Command>(&self, command: &C) -> Result<C::Response> {
        let timeout = self.shared.config.timeout_for(C::NAME, C::LONG_RUNNING);
        self.call_timeout(command, timeout)
    }

    /// Calls a typed command with an explicit timeout covering everything: waiting for other
    /// callers, reconnecting, synchronising and the command itself. This handle's deadline
    /// still applies when it comes first.
    ///
    /// # Errors
    ///
    /// As for [`call`](Self::call).
    pub fn call_timeout<C: Command>(&self, command: &C, timeout: Duration) -> Result<C::Response> {
        let call = self.start(C::NAME, timeout)?;
        let encode = |id, out: &mut BytesMut| encode_request(command, id, out);
        self.transact(&call, C::SUCCESS_RESPONSE, encode, reply::typed::<C>)
    }

    /// Calls any command by name, with any JSON arguments, and returns the `return` value as
    /// JSON, with the timeout configured for that name. A raw command is assumed to reply.
    ///
    /// # Errors
    ///
    /// As for [`call`](Self::call).
    pub fn call_raw(&self, command: &RawCommand) -> Result<serde_json::Value> {
        let timeout = self.shared.config.timeout_for(&command.name, false);
        self.call_raw_timeout(command, timeout)
    }

    /// [`call_raw`](Self::call_raw) with an explicit timeout (and this handle's deadline).
    ///
    /// # Errors
    ///
    /// As for [`call`](Self::call).
    pub fn call_raw_timeout(
        &self,
        command: &RawCommand,
        timeout: Duration,
    ) -> Result<serde_json::Value> {
        let call = self.start(&command.name, timeout)?;
        let encode = |id, out: &mut BytesMut| encode_raw_request(command, id, out);
        self.transact(&call, true, encode, reply::raw(&command.name))
    }

    /// Synchronises now (connecting first if needed), within the default timeout (and this
    /// handle's deadline).
    ///
    /// # Errors
    ///
    /// [`Error::Connect`], [`Error::Timeout`] or [`Error::Closed`].
    pub fn sync(&self) -> Result<()> {
        let call = self.start("guest-sync-delimited", self.shared.config.default_timeout)?;
        let mut conn = self.take(&call)?;
        conn.synced = false;
        conn.ensure_ready(&self.shared, &call)
    }

    /// Forgets that the channel is in sync, so that the next call resynchronises first.
    pub fn mark_unsynced(&self) {
        if let Some(mut conn) = self.shared.conn.take(far()) {
            conn.synced = false;
        }
    }

    /// Closes the connection. A client made from a path connects again on the next call.
    pub fn disconnect(&self) {
        if let Some(mut conn) = self.shared.conn.take(far()) {
            conn.close();
        }
    }

    /// True while a connection is open (it may still be out of sync).
    pub fn is_connected(&self) -> bool {
        self.shared
            .conn
            .take(far())
            .is_some_and(|conn| conn.stream.is_some())
    }

    /// The connection, waiting for another caller until the call's deadline.
    fn take(&self, call: &Call<'_>) -> Result<slot::Taken<'_, Conn>> {
        self.shared
            .conn
            .take(call.deadline)
            .ok_or_else(|| call.timed_out())
    }

    fn transact<R>(
        &self,
        call: &Call<'_>,
        expects_reply: bool,
        encode: impl FnOnce(Option<u64>, &mut BytesMut) -> serde_json::Result<()>,
        decode: impl Fn(Option<&[u8]>, Option<u64>) -> Result<R>,
    ) -> Result<R> {
        let shared = &*self.shared;
        self.close_orphans(call);
        let mut conn = self.take(call)?;
        conn.ensure_ready(shared, call)?;
        let id = conn.prepare(shared.config.request_ids, encode)?;
        let mut sent = conn.send(&shared.config, call, expects_reply);
        if let Sent::Failed { unsent: true, .. } = sent
            && shared.path.is_some()
        {
            // The idle connection was dead (the agent restarted) before we could tell.
            tracing::debug!("guest agent connection was closed; reconnecting");
            conn.ensure_ready(shared, call)?;
            sent = conn.send(&shared.config, call, expects_reply);
        }
        conn.release_request();
        loop {
            match conn.settle(call.command, sent, id, &decode, &shared.events_skipped) {
                Settled::Done(result) => return result,
                Settled::ReadAnother => sent = conn.next_reply(call),
            }
        }
    }

    /// Closes the guest file handles that earlier transfers left open, within `call`'s
    /// deadline; what cannot be closed now is left for the next call.
    fn close_orphans(&self, call: &Call<'_>) {
        let orphans = {
            let mut list = self
                .shared
                .orphans
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if list.is_empty() {
                return;
            }
            std::mem::take(&mut *list)
        };
        let left = call.deadline.saturating_duration_since(Instant::now());
        for handle in orphans {
            self.close_handle(handle, left);
        }
    }
}

/// A deadline far enough away to mean "wait for the connection however long the call that
/// holds it takes" (that call has its own deadline).
fn far() -> Instant {
    deadline::later(Instant::now(), Duration::MAX)
}
