//! The QGA client: connection, handshake, deadlines and typed calls.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use qga_proto::codec::{DEFAULT_MAX_MESSAGE_LEN, Frame, FrameDecoder};
use qga_proto::message::Reply;
use qga_proto::sync::{Handshake, Progress};
use qga_proto::{Command, RawCommand, encode_raw_request, encode_request};
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, ProtocolError, Result};
use crate::io::{Incoming, Probe, exchange, probe, read_frame, shrink_idle};
use crate::transport::{Stream, Transport};

/// Client settings. Build one with [`Client::builder`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Deadline of a call unless the command has its own (5 s).
    pub default_timeout: Duration,
    /// Deadline of long-running commands: fsfreeze and fstrim (60 s).
    pub long_timeout: Duration,
    /// Deadlines by command name, over both defaults.
    pub command_timeouts: HashMap<String, Duration>,
    /// Bound on connecting the socket (5 s).
    pub connect_timeout: Duration,
    /// While synchronising, a new `guest-sync-delimited` with a fresh id is sent this often
    /// (2 s): a dying agent may have swallowed the previous one.
    pub sync_retry_interval: Duration,
    /// How long a command that sends no reply on success (guest-shutdown) waits for an error
    /// reply before it counts as accepted (1 s).
    pub no_reply_grace: Duration,
    /// Bound on one incoming message (72 MiB, enough for a 48 MiB guest-file-read).
    pub max_message_len: usize,
    /// Send an `id` with each request and check the echo (true). Replies are correlated by
    /// order after a sync in any case, so agents that do not echo ids still work; a reply with
    /// a different id is a protocol error.
    pub request_ids: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(5),
            long_timeout: Duration::from_secs(60),
            command_timeouts: HashMap::new(),
            connect_timeout: Duration::from_secs(5),
            sync_retry_interval: Duration::from_secs(2),
            no_reply_grace: Duration::from_secs(1),
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            request_ids: true,
        }
    }
}

impl Config {
    /// The deadline a command gets by default.
    pub fn timeout_for(&self, command: &str, long_running: bool) -> Duration {
        match self.command_timeouts.get(command) {
            Some(t) => *t,
            None if long_running => self.long_timeout,
            None => self.default_timeout,
        }
    }
}

/// Builds a [`Client`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ClientBuilder {
    config: Config,
}

impl ClientBuilder {
    /// Sets [`Config::default_timeout`].
    pub fn default_timeout(mut self, t: Duration) -> Self {
        self.config.default_timeout = t;
        self
    }

    /// Sets [`Config::long_timeout`].
    pub fn long_timeout(mut self, t: Duration) -> Self {
        self.config.long_timeout = t;
        self
    }

    /// Sets the deadline of one command by name.
    pub fn command_timeout(mut self, command: impl Into<String>, t: Duration) -> Self {
        self.config.command_timeouts.insert(command.into(), t);
        self
    }

    /// Sets [`Config::connect_timeout`].
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.config.connect_timeout = t;
        self
    }

    /// Sets [`Config::sync_retry_interval`].
    pub fn sync_retry_interval(mut self, t: Duration) -> Self {
        self.config.sync_retry_interval = t;
        self
    }

    /// Sets [`Config::no_reply_grace`].
    pub fn no_reply_grace(mut self, t: Duration) -> Self {
        self.config.no_reply_grace = t;
        self
    }

    /// Sets [`Config::max_message_len`].
    pub fn max_message_len(mut self, len: usize) -> Self {
        self.config.max_message_len = len;
        self
    }

    /// Sets [`Config::request_ids`].
    pub fn request_ids(mut self, on: bool) -> Self {
        self.config.request_ids = on;
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Connects to the UNIX socket at `path` and synchronises, all within the default timeout.
    /// The client reconnects to the same path by itself if the connection is closed later.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] naming the path, or [`Error::Timeout`] when the agent does not answer
    /// the handshake.
    pub async fn connect(self, path: impl AsRef<Path>) -> Result<Client> {
        self.connect_transport(Transport::unix(path)).await
    }

    /// Like [`connect`](Self::connect), for any [`Transport`].
    ///
    /// # Errors
    ///
    /// As for `connect`.
    pub async fn connect_transport(self, transport: Transport) -> Result<Client> {
        let client = Client::new(self.config, None, Some(transport));
        client.sync().await?;
        Ok(client)
    }

    /// A client over an existing stream (a socket, `tokio::io::duplex`, ...). It synchronises
    /// on the first call. It cannot reconnect: once the stream closes, calls fail with
    /// [`Error::Closed`].
    pub fn from_stream(self, stream: impl Stream) -> Client {
        Client::new(self.config, Some(Box::new(stream)), None)
    }
}

/// A QGA client. Cheap to clone; clones share one connection and take turns on it.
///
/// See the [crate documentation](crate) for the behaviour on timeouts and cancellation.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    config: Config,
    transport: Option<Transport>,
    conn: Mutex<Conn>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("transport", &self.shared.transport)
            .finish_non_exhaustive()
    }
}

/// The connection state, behind the client's lock.
struct Conn {
    stream: Option<Box<dyn Stream>>,
    decoder: FrameDecoder,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// True only between a completed exchange and the start of the next one: a call that does
    /// not finish (timeout, dropped future, error) leaves it false, and the next call resyncs.
    synced: bool,
    next_id: u64,
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
        let decoder = FrameDecoder::with_max_message_len(config.max_message_len);
        Self {
            shared: Arc::new(Shared {
                transport,
                conn: Mutex::new(Conn {
                    stream,
                    decoder,
                    rbuf: BytesMut::new(),
                    wbuf: BytesMut::new(),
                    synced: false,
                    next_id: fastrand::u64(1..1 << 32),
                }),
                config,
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Where this client connects, if it was created from a transport.
    pub fn transport(&self) -> Option<&Transport> {
        self.shared.transport.as_ref()
    }

    /// Calls a typed command with its default deadline.
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

    /// Calls a typed command with an explicit deadline covering everything: waiting for other
    /// callers, reconnecting, synchronising and the command itself.
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

    /// [`call_raw`](Self::call_raw) with an explicit deadline.
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
            timeout,
            |id, out| encode_raw_request(command, id, out),
            |reply, id| match reply {
                Some(bytes) => decode_reply::<serde_json::Value>(&command.name, bytes, id),
                None => Ok(serde_json::Value::Null),
            },
        )
        .await
    }

    /// Synchronises now (connecting first if needed), within the default timeout.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`], [`Error::Timeout`] or [`Error::Closed`].
    pub async fn sync(&self) -> Result<()> {
        let timeout = self.shared.config.default_timeout;
        let deadline = Instant::now() + timeout;
        let work = async {
            let mut conn = self.shared.conn.lock().await;
            conn.synced = false;
            conn.ensure_ready(&self.shared, deadline).await
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                command: "guest-sync-delimited".into(),
                after: timeout,
            }),
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

    /// True while a connection is open (it may still be out of sync).
    pub async fn is_connected(&self) -> bool {
        self.shared.conn.lock().await.stream.is_some()
    }

    async fn transact<R>(
        &self,
        command: &str,
        expects_reply: bool,
        timeout: Duration,
        encode: impl FnOnce(Option<u64>, &mut BytesMut) -> serde_json::Result<()>,
        decode: impl FnOnce(Option<&[u8]>, Option<u64>) -> Result<R>,
    ) -> Result<R> {
        let deadline = Instant::now() + timeout;
        let shared = &*self.shared;
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
            // A large request (a file chunk) must not pin its buffer to an idle connection.
            conn.wbuf.clear();
            shrink_idle(&mut conn.wbuf);
            match sent {
                Sent::Reply(bytes) => {
                    let result = decode(Some(&bytes), id);
                    if !matches!(result, Err(Error::Protocol(_))) {
                        conn.synced = true;
                        shrink_idle(&mut conn.rbuf);
                    }
                    result
                }
                Sent::NoReply => decode(None, id),
                Sent::Failed { error, .. } => Err(error),
            }
        };
        match tokio::time::timeout_at(deadline, work).await {
            Ok(result) => result,
            Err(_) => {
                tracing::debug!(command, ?timeout, "guest agent call timed out");
                Err(Error::Timeout {
                    command: command.to_owned(),
                    after: timeout,
                })
            }
        }
    }
}

impl Conn {
    fn close(&mut self) {
        self.stream = None;
        self.synced = false;
        self.rbuf = BytesMut::new();
        self.decoder = FrameDecoder::with_max_message_len(self.decoder.max_message_len());
    }

    /// Makes sure there is a connection and it is in sync.
    async fn ensure_ready(&mut self, shared: &Shared, deadline: Instant) -> Result<()> {
        if self.synced
            && let Some(stream) = self.stream.as_mut()
        {
            // Bytes left after the last reply, or arriving since, were not asked for.
            let leftover = self
                .rbuf
                .iter()
                .any(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
            let state = if leftover {
                Probe::Unsolicited
            } else {
                probe(stream.as_mut(), &mut self.rbuf).await
            };
            match state {
                Probe::Quiet => return Ok(()),
                Probe::Unsolicited => {
                    tracing::debug!("unsolicited bytes from the guest agent; resynchronising");
                    self.synced = false;
                }
                Probe::Eof => {
                    tracing::debug!("guest agent closed the idle connection");
                    self.close();
                }
                Probe::Failed(e) => {
                    tracing::debug!(error = %e, "guest agent connection failed while idle");
                    self.close();
                }
            }
        }
        if self.stream.is_none() {
            let Some(transport) = &shared.transport else {
                return Err(Error::Closed);
            };
            let stream = transport.connect(shared.config.connect_timeout).await?;
            tracing::debug!(transport = %transport.describe(), "connected to the guest agent");
            self.stream = Some(stream);
            self.synced = false;
        }
        if !self.synced {
            self.resync(shared, deadline).await?;
        }
        Ok(())
    }

    /// The `guest-sync-delimited` handshake, resent with a fresh id every
    /// `sync_retry_interval` until `deadline` (enforced by the caller's timeout).
    async fn resync(&mut self, shared: &Shared, deadline: Instant) -> Result<()> {
        enum Outcome {
            Synced { attempts: u32, stale: u64 },
            Eof,
            Failed(std::io::Error),
        }
        let outcome = {
            let Self {
                stream,
                decoder,
                rbuf,
                ..
            } = self;
            let Some(stream) = stream.as_mut() else {
                return Err(Error::Closed);
            };
            let mut attempts = 0u32;
            loop {
                attempts += 1;
                let mut handshake = Handshake::start(fastrand::u64(1..), decoder);
                // Bytes already buffered are stale: they go with everything up to the sentinel.
                if handshake.advance(decoder, rbuf) == Progress::Synced {
                    // Impossible: the request has not been sent yet.
                    continue;
                }
                let request = handshake.request();
                let mut written = 0;
                let retry_at = deadline.min(Instant::now() + shared.config.sync_retry_interval);
                let attempt = async {
                    loop {
                        let frame =
                            match exchange(stream.as_mut(), &request, &mut written, decoder, rbuf)
                                .await?
                            {
                                Incoming::Frame(frame) => Ok(frame),
                                Incoming::BadFrame(e) => Err(e),
                                Incoming::Eof => return Ok(false),
                            };
                        if handshake.handle(frame, decoder) == Progress::Synced {
                            return Ok::<bool, std::io::Error>(true);
                        }
                    }
                };
                match tokio::time::timeout_at(retry_at, attempt).await {
                    Ok(Ok(true)) => {
                        break Outcome::Synced {
                            attempts,
                            stale: handshake.stale_replies(),
                        };
                    }
                    Ok(Ok(false)) => break Outcome::Eof,
                    Ok(Err(e)) => break Outcome::Failed(e),
                    Err(_) => {
                        tracing::debug!(attempts, "no answer to guest-sync-delimited yet");
                        if Instant::now() >= deadline {
                            // The caller's timeout ends this call; do not spin until then.
                            tokio::time::sleep_until(deadline + Duration::from_millis(1)).await;
                        }
                    }
                }
            }
        };
        match outcome {
            Outcome::Synced { attempts, stale } => {
                tracing::debug!(
                    attempts,
                    stale_sync_replies = stale,
                    "synchronised with the guest agent"
                );
                shrink_idle(&mut self.rbuf);
                self.synced = true;
                Ok(())
            }
            Outcome::Eof => {
                self.close();
                Err(Error::Closed)
            }
            Outcome::Failed(e) => {
                self.close();
                Err(io_error(e))
            }
        }
    }

    /// Encodes the request into the write buffer; returns its id.
    fn prepare(
        &mut self,
        shared: &Shared,
        encode: impl FnOnce(Option<u64>, &mut BytesMut) -> serde_json::Result<()>,
    ) -> Result<Option<u64>> {
        let id = shared.config.request_ids.then(|| {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            id
        });
        self.wbuf.clear();
        encode(id, &mut self.wbuf)
            .map_err(|e| Error::InvalidArgument(format!("cannot encode the arguments: {e}")))?;
        Ok(id)
    }

    /// Sends the prepared request on a synchronised connection and reads its reply.
    async fn send(&mut self, shared: &Shared, expects_reply: bool, deadline: Instant) -> Sent {
        // From here until the reply is read, the channel is in doubt.
        self.synced = false;
        let Self {
            stream,
            decoder,
            rbuf,
            wbuf,
            ..
        } = self;
        let Some(stream) = stream.as_mut() else {
            return Sent::Failed {
                error: Error::Closed,
                unsent: true,
            };
        };
        let mut written = 0;
        let incoming = if expects_reply {
            exchange(stream.as_mut(), wbuf, &mut written, decoder, rbuf).await
        } else {
            // No reply on success: send, then wait a grace period for an error reply.
            let sent = async {
                stream.write_all(wbuf).await?;
                stream.flush().await
            };
            if let Err(e) = sent.await {
                self.close();
                return Sent::Failed {
                    error: io_error(e),
                    unsent: false,
                };
            }
            written = wbuf.len();
            let grace = deadline.min(Instant::now() + shared.config.no_reply_grace);
            let wait = read_frame(stream.as_mut(), decoder, rbuf);
            match tokio::time::timeout_at(grace, wait).await {
                Ok(incoming) => incoming,
                // Accepted. The channel stays unsynced: a late error reply must not be taken
                // as the answer to the next command.
                Err(_) => return Sent::NoReply,
            }
        };
        let sent_all = written == wbuf.len();
        let failed = |error| Sent::Failed {
            error,
            unsent: false,
        };
        match incoming {
            Ok(Incoming::Frame(Frame::Message(bytes))) if sent_all => Sent::Reply(bytes),
            Ok(Incoming::Frame(Frame::Message(_))) => {
                failed(Error::Protocol(ProtocolError::EarlyReply))
            }
            Ok(Incoming::Frame(Frame::Sentinel)) => {
                failed(Error::Protocol(ProtocolError::UnexpectedSentinel))
            }
            Ok(Incoming::BadFrame(e)) => {
                tracing::warn!(error = %e, "bad framing from the guest agent");
                failed(Error::Protocol(ProtocolError::Frame(e)))
            }
            Ok(Incoming::Eof) if !expects_reply && sent_all => {
                // The guest went away after taking the command: that is success.
                self.close();
                Sent::NoReply
            }
            Ok(Incoming::Eof) => {
                self.close();
                failed(Error::Closed)
            }
            Err(e) => {
                self.close();
                let error = io_error(e);
                // Nothing reached the peer: the request can go again on a new connection.
                let unsent = written == 0 && error.is_closed();
                Sent::Failed { error, unsent }
            }
        }
    }
}

/// How sending a request ended.
enum Sent {
    Reply(bytes::Bytes),
    NoReply,
    Failed {
        error: Error,
        /// True when not one byte of the request was written.
        unsent: bool,
    },
}

/// A broken pipe or reset is the peer closing, not a mysterious IO error.
fn io_error(e: std::io::Error) -> Error {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match e.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof => Error::Closed,
        _ => Error::Io(e),
    }
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

#[cfg(test)]
mod tests;
