//! The task that owns the connection to the daemon: it sends the calls of every handle, routes
//! the replies back by serial, applies domain events, and reconnects with backoff.
//!
//! It never blocks on a caller: replies go through oneshot channels, and a caller that gave up
//! before its call was sent is skipped. A call that was sent stays in flight until the daemon
//! answers it, holding its domain's permit (libvirt is still running it).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::time::Instant;
use virt_proto::remote::connect::ConnectClose;
use virt_proto::remote::domain::DomainGetXmlDesc;
use virt_proto::remote::domain_xml::{ChannelState, agent_channel_state};
use virt_proto::{Call as _, CallError, Event, ReplyError, Serial};

use super::config::LibvirtConfig;
use super::errors::is_agent_gone;
use super::session::{Session, now, sleep_until};
use super::state::{AgentState, Shared, Slot};

/// How long a closing connection waits for libvirt's answer to `CONNECT_CLOSE`.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a call has no reply, as the driver reports it.
#[derive(Debug)]
pub(crate) enum RpcError {
    /// The daemon's answer, or why there is none.
    Reply(ReplyError),
    /// The arguments could not be encoded (they break a limit of the `.x` files).
    Encode(String),
}

/// What the driver learns from a reply, in the order of the daemon's messages (so that an
/// event that came after the reply is never overwritten by it).
pub(crate) enum Observe {
    Nothing,
    /// An agent call: success means the agent is there; "not connected" that it is not.
    AgentCall(Arc<Slot>),
    /// `DOMAIN_GET_XML_DESC`: the channel state.
    ChannelXml(Arc<Slot>),
}

/// A call from a handle.
pub(crate) struct Request {
    pub(crate) program: u32,
    pub(crate) version: u32,
    pub(crate) procedure: i32,
    pub(crate) args: Vec<u8>,
    /// virt-proto's deadline for the reply (`None`: until the daemon answers).
    pub(crate) timeout: Option<Duration>,
    pub(crate) reply: oneshot::Sender<Result<Bytes, RpcError>>,
    /// The domain's permit, held until the daemon answered.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    pub(crate) observe: Observe,
}

struct Pending {
    reply: oneshot::Sender<Result<Bytes, RpcError>>,
    _permit: Option<OwnedSemaphorePermit>,
    observe: Observe,
}

pub(crate) struct Driver {
    pub(crate) config: LibvirtConfig,
    pub(crate) socket: PathBuf,
    pub(crate) shared: Arc<Shared>,
    pub(crate) rx: mpsc::UnboundedReceiver<Request>,
    waiting: VecDeque<Request>,
    pending: HashMap<Serial, Pending>,
    dropped_events: u64,
}

impl Driver {
    pub(crate) fn new(
        config: LibvirtConfig,
        socket: PathBuf,
        shared: Arc<Shared>,
        rx: mpsc::UnboundedReceiver<Request>,
    ) -> Self {
        Self {
            config,
            socket,
            shared,
            rx,
            waiting: VecDeque::new(),
            pending: HashMap::new(),
            dropped_events: 0,
        }
    }

    /// Serves `first`, then reconnects whenever the connection is lost, until every handle is
    /// gone.
    pub(crate) async fn run(mut self, first: Session) {
        let mut session = Some(first);
        let mut first = true;
        loop {
            if let Some(s) = session.take() {
                // The first session was counted by whoever opened it.
                if !std::mem::take(&mut first) {
                    let generation = self.shared.session_opened(s.lib_version.map(|v| v.0));
                    tracing::debug!(socket = %self.socket.display(), generation, "libvirt session open");
                }
                let alive = self.serve(s).await;
                self.shared.connected.store(false, Ordering::Relaxed);
                self.shared.forget_all();
                if !alive {
                    return;
                }
            }
            let mut backoff = self.config.reconnect_min;
            let mut attempts = 0u32;
            loop {
                if !self.idle_for(backoff).await {
                    return;
                }
                attempts += 1;
                match Session::open(&self.config, &self.socket, &self.shared).await {
                    Ok(s) => {
                        tracing::info!(socket = %self.socket.display(), attempts, "reconnected to libvirt");
                        session = Some(s);
                        break;
                    }
                    Err(e) => {
                        let error = super::errors::chain(&e);
                        if attempts == 1 {
                            tracing::warn!(socket = %self.socket.display(), %error, "cannot reconnect to libvirt; retrying with backoff");
                        } else {
                            tracing::debug!(attempts, %error, "libvirt reconnect failed");
                        }
                        backoff = (backoff * 2).min(self.config.reconnect_max);
                    }
                }
            }
        }
    }

    /// Waits `pause` while taking requests; false when every handle is gone.
    async fn idle_for(&mut self, pause: Duration) -> bool {
        let until = Instant::now() + pause;
        loop {
            // Callers that gave up while we were disconnected: their calls are never sent.
            self.waiting.retain(|r| !r.reply.is_closed());
            tokio::select! {
                () = tokio::time::sleep_until(until) => return true,
                request = self.rx.recv() => match request {
                    Some(r) => self.waiting.push_back(r),
                    None => return false,
                },
            }
        }
    }

    /// Runs one session until it closes (true) or every handle is gone (false).
    async fn serve(&mut self, mut s: Session) -> bool {
        loop {
            self.deliver(&mut s);
            self.start_waiting(&mut s);
            s.flush(&self.shared);
            if let Some(reason) = s.conn.close_reason() {
                tracing::warn!(socket = %self.socket.display(), reason = %reason, "connection to libvirt lost");
                // The calls in flight have been failed; their replies were delivered above.
                self.deliver(&mut s);
                self.pending.clear();
                return true;
            }
            let wake = s.conn.poll_timeout().map(Instant::from_std);
            tokio::select! {
                read = tokio::io::AsyncReadExt::read(&mut s.reader, &mut s.buf) => s.on_read(read),
                request = self.rx.recv() => match request {
                    Some(r) => self.waiting.push_back(r),
                    None => {
                        close_politely(&mut s, &self.shared).await;
                        return false;
                    }
                },
                () = sleep_until(wake) => s.conn.handle_timeout(now()),
                () = s.writer.closed() => s.conn.close(),
            }
        }
    }

    fn start_waiting(&mut self, s: &mut Session) {
        while !s.conn.is_closed() && s.conn.calls_in_flight() < self.config.max_calls_in_flight {
            let Some(request) = self.waiting.pop_front() else {
                return;
            };
            if request.reply.is_closed() {
                continue;
            }
            let started = s.conn.start_raw_call(
                now(),
                request.program,
                request.version,
                request.procedure,
                &request.args,
                request.timeout,
            );
            match started {
                Ok(serial) => {
                    self.pending.insert(
                        serial,
                        Pending {
                            reply: request.reply,
                            _permit: request.permit,
                            observe: request.observe,
                        },
                    );
                }
                Err(CallError::Encode(e)) => {
                    let _ = request.reply.send(Err(RpcError::Encode(e.to_string())));
                }
                // Full or closed: it waits for a free slot or the next session.
                Err(_) => {
                    self.waiting.push_front(request);
                    return;
                }
            }
        }
    }

    fn deliver(&mut self, s: &mut Session) {
        while let Some(event) = s.conn.poll_event() {
            match event {
                Event::Reply(reply) => {
                    let Some(p) = self.pending.remove(&reply.serial) else {
                        continue;
                    };
                    self.observe(&p.observe, &reply.result);
                    // The caller may have given up: the reply is dropped.
                    let _ = p.reply.send(reply.result.map_err(RpcError::Reply));
                }
                Event::DomainEvent(e) => self.shared.apply(&e),
                Event::ProtocolError(e) => {
                    tracing::debug!(error = %super::errors::chain(&e), "unexpected packet from libvirt");
                }
                Event::KeepaliveTimeout => {
                    tracing::warn!("libvirt stopped answering keepalive pings");
                }
                _ => {}
            }
        }
        let dropped = s.conn.dropped_events();
        if dropped != self.dropped_events {
            self.dropped_events = dropped;
            tracing::warn!(
                dropped,
                "domain events were dropped; guest agent states reset"
            );
            self.shared.forget_all();
        }
    }

    fn observe(&self, observe: &Observe, result: &Result<Bytes, ReplyError>) {
        let events = self.shared.events.load(Ordering::Relaxed);
        match (observe, result) {
            (Observe::AgentCall(slot), Ok(_)) => slot.learn(AgentState::Connected),
            (Observe::AgentCall(slot), Err(ReplyError::Libvirt(e)))
                if events && is_agent_gone(e) =>
            {
                slot.learn(AgentState::Disconnected);
            }
            (Observe::ChannelXml(slot), Ok(payload)) => {
                let Ok(xml) = DomainGetXmlDesc::decode_reply(payload) else {
                    return;
                };
                match agent_channel_state(&xml.0) {
                    Some(ChannelState::Connected) => slot.learn(AgentState::Connected),
                    Some(ChannelState::Disconnected) if events => {
                        slot.learn(AgentState::Disconnected);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

/// Every handle is gone: `CONNECT_CLOSE`, as virsh ends its sessions (libvirtd otherwise logs
/// an error for the connection's end of file), waiting at most a second for the answer.
async fn close_politely(s: &mut Session, shared: &Shared) {
    let Ok(serial) = s
        .conn
        .start_call_with_timeout(now(), &ConnectClose, Some(CLOSE_WAIT))
    else {
        return;
    };
    s.flush(shared);
    let until = Instant::now() + CLOSE_WAIT;
    while !s.conn.is_closed() {
        while let Some(event) = s.conn.poll_event() {
            if matches!(&event, Event::Reply(r) if r.serial == serial) {
                return;
            }
        }
        tokio::select! {
            read = tokio::io::AsyncReadExt::read(&mut s.reader, &mut s.buf) => s.on_read(read),
            () = tokio::time::sleep_until(until) => return,
        }
        s.flush(shared);
    }
}
