//! One connection to the daemon: the socket, virt-proto's [`Connection`] that it feeds, and
//! the opening sequence (authentication, `CONNECT_OPEN`, event registration).

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use virt_proto::packet::KEEPALIVE_PROGRAM;
use virt_proto::remote::connect::{
    AuthList, AuthPolkit, AuthType, ConnectGetLibVersion, ConnectOpen, ConnectSupportsFeature,
    Flag, LibVersion,
};
use virt_proto::remote::event::{ConnectDomainEventCallbackRegisterAny, event_id};
use virt_proto::{
    Call, CloseReason, Config, Connection, ErrorCode, ErrorDomain, Event, LibvirtError, ReplyError,
};

use super::config::LibvirtConfig;
use super::state::Shared;
use crate::error::{Error, Result};

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

/// The clock virt-proto runs on: tokio's, so that paused test time applies to it too.
pub(crate) fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// An open connection to the daemon.
pub(crate) struct Session {
    pub(crate) conn: Connection,
    pub(crate) reader: OwnedReadHalf,
    /// Packets to the writer task, which writes them in order; it drops its end when the
    /// socket fails.
    pub(crate) writer: mpsc::UnboundedSender<Bytes>,
    writer_task: JoinHandle<()>,
    pub(crate) buf: Box<[u8]>,
    /// `CONNECT_GET_LIB_VERSION`, if the daemon answered it.
    pub(crate) lib_version: Option<LibVersion>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.writer_task.abort();
    }
}

async fn write_loop(mut socket: OwnedWriteHalf, mut packets: mpsc::UnboundedReceiver<Bytes>) {
    while let Some(packet) = packets.recv().await {
        if let Err(e) = socket.write_all(&packet).await {
            tracing::debug!(error = %e, "writing to libvirt failed");
            return;
        }
    }
}

/// Whether a packet is a keepalive message with `procedure` (1 ping, 2 pong).
fn is_keepalive(packet: &[u8], procedure: u8) -> bool {
    packet.len() == 28
        && packet[4..8] == KEEPALIVE_PROGRAM.to_be_bytes()
        && packet[12..16] == [0, 0, 0, procedure]
}

impl Session {
    /// Connects to `socket` and opens the session, all within the connect timeout.
    pub(crate) async fn open(
        config: &LibvirtConfig,
        socket: &Path,
        shared: &Shared,
    ) -> Result<Self> {
        let deadline = Instant::now() + config.connect_timeout;
        let connect = tokio::net::UnixStream::connect(socket);
        let stream = match tokio::time::timeout_at(deadline, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(Error::Connect {
                    path: socket.to_owned(),
                    source,
                });
            }
            Err(_) => {
                return Err(Error::Connect {
                    path: socket.to_owned(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connect timed out after {:?}", config.connect_timeout),
                    ),
                });
            }
        };
        let (reader, writer) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let conn_config = Config::default()
            .with_keepalive(config.keepalive)
            // The driver keeps to `max_calls_in_flight` itself; this is only a backstop.
            .with_max_calls_in_flight(config.max_calls_in_flight.saturating_mul(4).max(16));
        let mut session = Self {
            conn: Connection::new(conn_config, now()),
            reader,
            writer: tx,
            writer_task: tokio::spawn(write_loop(writer, rx)),
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            lib_version: None,
        };
        let after = config.connect_timeout;
        session.authenticate(shared, deadline, after).await?;
        let keepalive = session
            .rpc(shared, &ConnectSupportsFeature::KEEPALIVE, deadline, after)
            .await?;
        if keepalive.0 {
            session.conn.enable_keepalive();
        }
        session
            .rpc(shared, &ConnectOpen::new(&config.uri), deadline, after)
            .await?;
        session.lib_version = session
            .rpc(shared, &ConnectGetLibVersion, deadline, after)
            .await
            .ok();
        let mut events = true;
        for id in [event_id::AGENT_LIFECYCLE, event_id::LIFECYCLE] {
            let register = ConnectDomainEventCallbackRegisterAny {
                event_id: id,
                dom: None,
            };
            if let Err(e) = session.rpc(shared, &register, deadline, after).await {
                tracing::warn!(error = %super::errors::chain(&e), event_id = id, "libvirt refused the domain event registration; guest agent presence is learnt from calls only");
                events = false;
            }
        }
        shared.events.store(events, Ordering::Relaxed);
        Ok(session)
    }

    async fn authenticate(
        &mut self,
        shared: &Shared,
        deadline: Instant,
        after: Duration,
    ) -> Result<()> {
        let offered = self.rpc(shared, &AuthList, deadline, after).await?.types;
        if offered.is_empty() || offered.contains(&AuthType::None) {
            return Ok(());
        }
        if offered.contains(&AuthType::Polkit) {
            // polkit decides by the peer's credentials on the socket: root is allowed.
            let Flag(complete) = self.rpc(shared, &AuthPolkit, deadline, after).await?;
            if complete {
                return Ok(());
            }
            return Err(refused(
                AuthPolkit::NAME,
                ErrorCode::AUTH_FAILED,
                "polkit did not complete the authentication",
            ));
        }
        Err(refused(
            AuthList::NAME,
            ErrorCode::AUTH_UNAVAILABLE,
            &format!(
                "the daemon offers only {offered:?} authentication; this client does `none` and \
                 polkit (a local UNIX socket)"
            ),
        ))
    }

    /// Hands every packet virt-proto wants sent to the writer task.
    pub(crate) fn flush(&mut self, shared: &Shared) {
        while let Some(packet) = self.conn.poll_transmit() {
            if is_keepalive(&packet, 1) {
                shared.pings_sent.fetch_add(1, Ordering::Relaxed);
            } else if is_keepalive(&packet, 2) {
                shared.pongs_sent.fetch_add(1, Ordering::Relaxed);
            }
            if self.writer.send(packet).is_err() {
                self.conn.close();
            }
        }
    }

    /// Feeds the outcome of one read to the connection.
    pub(crate) fn on_read(&mut self, read: std::io::Result<usize>) {
        match read {
            Ok(0) => self.conn.handle_eof(),
            Ok(n) => self.conn.handle_input(now(), &self.buf[..n]),
            Err(e) => {
                tracing::debug!(error = %e, "reading from libvirt failed");
                self.conn.close();
            }
        }
    }

    /// One call during the opening, before the driver takes over: waits for its reply,
    /// answering keepalive pings meanwhile.
    async fn rpc<C: Call>(
        &mut self,
        shared: &Shared,
        call: &C,
        deadline: Instant,
        after: Duration,
    ) -> Result<C::Reply> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let serial = self
            .conn
            .start_call_with_timeout(now(), call, Some(timeout))
            .map_err(|e| call_refused(C::NAME, e))?;
        loop {
            self.flush(shared);
            while let Some(event) = self.conn.poll_event() {
                match event {
                    Event::Reply(reply) if reply.serial == serial => {
                        return reply.decode::<C>().map_err(|error| match error {
                            ReplyError::TimedOut => Error::Timeout {
                                command: C::NAME.to_owned(),
                                after,
                            },
                            error => Error::Libvirt {
                                procedure: C::NAME,
                                error,
                            },
                        });
                    }
                    Event::DomainEvent(e) => shared.apply(&e),
                    _ => {}
                }
            }
            let wake = self.conn.poll_timeout().map(Instant::from_std);
            tokio::select! {
                read = self.reader.read(&mut self.buf) => self.on_read(read),
                () = sleep_until(wake) => self.conn.handle_timeout(now()),
            }
        }
    }
}

/// Sleeps until `at`, or for ever.
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// An error of our own making, shaped like one from the daemon.
fn refused(procedure: &'static str, code: ErrorCode, message: &str) -> Error {
    Error::Libvirt {
        procedure,
        error: ReplyError::Libvirt(Box::new(LibvirtError::new(
            code,
            ErrorDomain::REMOTE,
            message,
        ))),
    }
}

/// A call the connection would not start.
pub(crate) fn call_refused(procedure: &'static str, e: virt_proto::CallError) -> Error {
    match e {
        virt_proto::CallError::Closed(reason) => Error::Libvirt {
            procedure,
            error: ReplyError::Closed(reason),
        },
        virt_proto::CallError::Encode(e) => {
            Error::InvalidArgument(format!("cannot encode {procedure}: {e}"))
        }
        // Too many calls in flight: the driver keeps below the limit.
        _ => Error::Libvirt {
            procedure,
            error: ReplyError::Closed(CloseReason::Local),
        },
    }
}
