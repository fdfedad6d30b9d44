//! A scripted fake qemu-ga: the test decides, step by step, what the client reads.
//!
//! A scripted fake peer is right for faults a real one cannot produce on demand: garbage and
//! stale replies of any size before the sync sentinel, a reply written one byte at a time,
//! silence, a reset in the middle of a reply, floods without a newline, wrong ids,
//! unsolicited bytes, a short write, an agent that answers the handshake and then goes quiet
//! until a deadline passes. Everything a real agent does belongs in tests against the real
//! qemu-ga ([`QemuGa`](crate::QemuGa)) or the VM ([`vm`](crate::vm)); do not script what
//! you can ask the real one for.
//!
//! [`FakeAgent`] reads what the client sends with the real decoder
//! ([`FrameDecoder`]) and panics on anything a correct client never sends (bad framing, a
//! request that is not JSON, an unexpected command where the script names one), so a
//! misbehaving client fails the test that runs the script. It works over any byte stream:
//!
//! - [`FakeAgent::duplex`]: one end of a `tokio::io::duplex` pipe (the other end goes to
//!   [`ClientBuilder::from_stream`](qga_client::ClientBuilder::from_stream)); [`pair`] does
//!   both (feature `client`, on by default);
//! - [`FakeAgent::listen`]: a UNIX socket at a path, for code that connects by path (a
//!   daemon's config pointing at a guest socket); [`FakeAgentListener::serve_one`] runs a
//!   script on the first connection in a spawned task.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use qga_testing::fake;
//! use serde_json::json;
//!
//! let (client, mut agent) = fake::pair(qga_client::Client::builder());
//! let script = tokio::spawn(async move {
//!     agent.sync().await; // 0xFF + guest-sync-delimited, answered as qemu-ga does
//!     agent.serve("guest-get-host-name", json!({"host-name": "vm1"})).await;
//! });
//! assert_eq!(client.hostname().await.unwrap(), "vm1");
//! script.await.unwrap();
//! # }
//! ```
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use qga_proto::codec::{Frame, FrameDecoder};
use qga_proto::message::IncomingRequest;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// Bytes the in-memory pipe of [`FakeAgent::duplex`] holds before a writer waits (1 MiB).
pub const DUPLEX_BUFFER: usize = 1 << 20;

/// What qemu-ga answers to the `0xFF` of a `guest-sync-delimited` request: it reads the byte
/// as a JSON parse error before the request itself (protocol notes, section 8).
pub const STRAY_SENTINEL_ERROR: &[u8] =
    b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, stray '\\uFFFD'\"}}\n";

/// What the fake agent read from the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// A `0xFF` sync sentinel.
    Sentinel,
    /// A request.
    Request(IncomingRequest),
}

/// A scripted fake qemu-ga on a byte stream `S`. See the [module documentation](self).
#[derive(Debug)]
pub struct FakeAgent<S = DuplexStream> {
    io: S,
    decoder: FrameDecoder,
    buf: BytesMut,
}

/// A client over an in-memory pipe, and the fake agent on its other end.
#[cfg(feature = "client")]
pub fn pair(builder: qga_client::ClientBuilder) -> (qga_client::Client, FakeAgent) {
    let (theirs, agent) = FakeAgent::duplex();
    (builder.from_stream(theirs), agent)
}

impl FakeAgent<DuplexStream> {
    /// A fake agent on one end of a `tokio::io::duplex` pipe of [`DUPLEX_BUFFER`] bytes;
    /// returns the other end, for the client.
    pub fn duplex() -> (DuplexStream, Self) {
        let (theirs, ours) = tokio::io::duplex(DUPLEX_BUFFER);
        (theirs, Self::new(ours))
    }
}

impl FakeAgent<UnixStream> {
    /// Listens on a UNIX socket at `path` (which must not exist); accept clients with
    /// [`FakeAgentListener::accept`] or [`FakeAgentListener::serve_one`]. Must be called
    /// within a tokio runtime.
    ///
    /// # Errors
    ///
    /// When the socket cannot be bound.
    pub fn listen(path: impl AsRef<Path>) -> io::Result<FakeAgentListener> {
        let path = path.as_ref().to_owned();
        let listener = UnixListener::bind(&path)?;
        Ok(FakeAgentListener { listener, path })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FakeAgent<S> {
    /// A fake agent on an existing stream.
    pub fn new(io: S) -> Self {
        Self {
            io,
            decoder: FrameDecoder::new(),
            buf: BytesMut::new(),
        }
    }

    /// The stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Gives the stream back (bytes read but not yet returned by [`next`](Self::next) are
    /// lost).
    pub fn into_inner(self) -> S {
        self.io
    }

    /// The next sentinel or request, or `None` once the client has closed the stream.
    ///
    /// # Panics
    ///
    /// When the client sent bad framing or a message that is not a request.
    pub async fn next(&mut self) -> Option<Seen> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Frame::Sentinel)) => return Some(Seen::Sentinel),
                Ok(Some(Frame::Message(m))) => {
                    let request = serde_json::from_slice(&m).unwrap_or_else(|e| {
                        panic!("the client sent a message that is not a request ({e})")
                    });
                    return Some(Seen::Request(request));
                }
                Ok(None) => {}
                Err(e) => panic!("the client sent bad framing: {e}"),
            }
            if self.io.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    /// The next request.
    ///
    /// # Panics
    ///
    /// On a sentinel or end of stream instead.
    pub async fn request(&mut self) -> IncomingRequest {
        match self.next().await {
            Some(Seen::Request(r)) => r,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    /// The next request, which must be the command `name`.
    ///
    /// # Panics
    ///
    /// When it is another command, or no request.
    pub async fn expect(&mut self, name: &str) -> IncomingRequest {
        let r = self.request().await;
        assert_eq!(r.command(), Some(name), "unexpected request {r:?}");
        r
    }

    /// Reads `0xFF` + `guest-sync-delimited` and returns the sync id.
    ///
    /// # Panics
    ///
    /// When the client sent anything else.
    pub async fn expect_sync(&mut self) -> u64 {
        let first = self.next().await;
        assert!(
            matches!(first, Some(Seen::Sentinel)),
            "expected the sync sentinel first, got {first:?}"
        );
        let r = self.expect("guest-sync-delimited").await;
        r.arguments
            .as_ref()
            .and_then(|a| a["id"].as_u64())
            .unwrap_or_else(|| panic!("guest-sync-delimited without an integer id: {r:?}"))
    }

    /// Answers a sync as qemu-ga does: [`STRAY_SENTINEL_ERROR`], then
    /// [`sentinel_and_sync_reply`](Self::sentinel_and_sync_reply).
    pub async fn answer_sync(&mut self, id: u64) {
        self.reply_bytes(STRAY_SENTINEL_ERROR).await;
        self.sentinel_and_sync_reply(id).await;
    }

    /// Writes `0xFF` then `{"return": id}` (in two writes).
    pub async fn sentinel_and_sync_reply(&mut self, id: u64) {
        self.reply_bytes(&[0xFF]).await;
        self.reply_bytes(format!("{{\"return\": {id}}}\n").as_bytes())
            .await;
    }

    /// [`expect_sync`](Self::expect_sync) and [`answer_sync`](Self::answer_sync).
    pub async fn sync(&mut self) {
        let id = self.expect_sync().await;
        self.answer_sync(id).await;
    }

    /// Answers `request` with `{"return": value}`, echoing its id.
    pub async fn reply(&mut self, request: &IncomingRequest, value: Value) {
        let mut reply = json!({ "return": value });
        if let Some(id) = &request.id {
            reply["id"] = id.clone();
        }
        self.reply_bytes(format!("{reply}\n").as_bytes()).await;
    }

    /// Answers `request` with `{"error": {"class", "desc"}}`, echoing its id.
    pub async fn reply_error(&mut self, request: &IncomingRequest, class: &str, desc: &str) {
        let mut reply = json!({ "error": { "class": class, "desc": desc } });
        if let Some(id) = &request.id {
            reply["id"] = id.clone();
        }
        self.reply_bytes(format!("{reply}\n").as_bytes()).await;
    }

    /// Answers the next request, which must be `name`, with `value`; returns the request.
    ///
    /// # Panics
    ///
    /// As for [`expect`](Self::expect).
    pub async fn serve(&mut self, name: &str, value: Value) -> IncomingRequest {
        let r = self.expect(name).await;
        self.reply(&r, value).await;
        r
    }

    /// Writes raw bytes: garbage, a stale or cut-short reply, a flood, anything.
    ///
    /// # Panics
    ///
    /// When the stream fails (the client went away).
    pub async fn reply_bytes(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.expect("write to the client");
        self.io.flush().await.expect("flush to the client");
    }

    /// Writes `bytes` one byte per write, letting the client run between them.
    ///
    /// # Panics
    ///
    /// As for [`reply_bytes`](Self::reply_bytes).
    pub async fn write_slowly(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.reply_bytes(std::slice::from_ref(b)).await;
            tokio::task::yield_now().await;
        }
    }

    /// Goes silent: reads and drops everything the client sends, answers nothing, returns
    /// once the client closes the stream.
    pub async fn ignore_until_closed(&mut self) {
        while self.next().await.is_some() {}
    }

    /// Closes the stream (the client sees end of stream, or a reset mid-reply).
    pub async fn close(mut self) {
        let _ = self.io.shutdown().await;
    }
}

/// A UNIX socket that fake agents are served on. Removes the socket file when dropped.
#[derive(Debug)]
pub struct FakeAgentListener {
    listener: UnixListener,
    path: PathBuf,
}

impl FakeAgentListener {
    /// The socket path to give the code under test.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next client.
    ///
    /// # Errors
    ///
    /// When accepting fails.
    pub async fn accept(&self) -> io::Result<FakeAgent<UnixStream>> {
        let (stream, _) = self.listener.accept().await?;
        Ok(FakeAgent::new(stream))
    }

    /// Spawns a task that accepts one client and runs `script` on it; the socket is removed
    /// when the script returns. Await the handle to see the script's panics.
    pub fn serve_one<F, Fut>(self, script: F) -> JoinHandle<Fut::Output>
    where
        F: FnOnce(FakeAgent<UnixStream>) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        tokio::spawn(async move {
            let agent = self.accept().await.expect("accept a client");
            let out = script(agent).await;
            drop(self);
            out
        })
    }
}

impl Drop for FakeAgentListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
