//! The sans-IO connection: calls out, packets in, replies routed by serial, keepalive.
//!
//! [`Connection`] performs no IO and reads no clock. The driver (a tokio task or a blocking
//! loop) owns the socket and does, in any order:
//!
//! - [`Connection::start_call`] to queue a call; it returns the call's [`Serial`];
//! - [`Connection::poll_transmit`] until `None`, writing each packet to the socket;
//! - [`Connection::handle_input`] with whatever bytes were read, then
//!   [`Connection::poll_event`] until `None`;
//! - [`Connection::poll_timeout`] to learn when to wake up, and [`Connection::handle_timeout`]
//!   when that time has come (keepalive pings, call deadlines);
//! - [`Connection::handle_eof`] when the socket reports end of file.
//!
//! Everything is bounded: calls in flight ([`Config::with_max_calls_in_flight`]), queued
//! events ([`Config::with_max_queued_events`]; beyond it server events and protocol errors are
//! dropped and counted, replies never are), and the receive buffer
//! ([`Config::with_max_packet_len`]). A dropped call ([`Connection::cancel`]) keeps its slot
//! until its reply arrives, which is then discarded, so a late reply is never mistaken for an
//! unknown one.

mod config;
mod dispatch;
mod event;
mod keepalive;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};

pub use config::Config;
pub use event::{CallError, CloseReason, Event, ProtocolError, Reply, ReplyError, Serial};
pub use keepalive::KeepaliveConfig;

use crate::call::Call;
use crate::codec::{FrameError, PacketDecoder};
use crate::error::LibvirtError;
use crate::packet::{
    Header, KEEPALIVE_PROGRAM, KEEPALIVE_PROTOCOL_VERSION, MessageType, Packet, Status,
    encode_packet,
};
use crate::remote::event::DomainEvent;
use crate::xdr::from_slice;
use keepalive::{Action, Keepalive};

#[derive(Debug, Clone)]
struct Pending {
    program: u32,
    procedure: i32,
    deadline: Option<Instant>,
    /// Cancelled or timed out: the reply is swallowed when it comes.
    abandoned: bool,
}

/// A libvirt RPC client connection, without IO. See the [module docs](self).
#[derive(Debug)]
pub struct Connection {
    config: Config,
    decoder: PacketDecoder,
    next_serial: u32,
    pending: HashMap<u32, Pending>,
    /// Packets to write, each marked whether it is a pong.
    transmit: VecDeque<(Bytes, bool)>,
    events: VecDeque<Event>,
    keepalive: Keepalive,
    pong_queued: bool,
    closed: Option<CloseReason>,
    dropped_events: u64,
}

impl Connection {
    /// A new connection; `now` starts the keepalive clock.
    #[must_use]
    pub fn new(config: Config, now: Instant) -> Self {
        Self {
            decoder: PacketDecoder::with_max_packet_len(config.max_packet_len),
            keepalive: Keepalive::new(config.keepalive, now),
            next_serial: config.first_serial,
            config,
            pending: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            pong_queued: false,
            closed: None,
            dropped_events: 0,
        }
    }

    /// Queues `call` with its default deadline ([`Call::TIMEOUT`]).
    ///
    /// # Errors
    ///
    /// [`CallError`]: closed, too many calls in flight, or arguments that break a limit.
    pub fn start_call<C: Call>(&mut self, now: Instant, call: &C) -> Result<Serial, CallError> {
        self.start_call_with_timeout(now, call, Some(C::TIMEOUT))
    }

    /// Queues `call`, failing it with [`ReplyError::TimedOut`] if no reply arrives within
    /// `timeout` (`None`: wait for ever).
    ///
    /// # Errors
    ///
    /// See [`Connection::start_call`].
    pub fn start_call_with_timeout<C: Call>(
        &mut self,
        now: Instant,
        call: &C,
        timeout: Option<Duration>,
    ) -> Result<Serial, CallError> {
        let serial = self.reserve()?;
        let packet = call.encode_packet(serial, self.config.max_packet_len)?;
        Ok(self.queue(now, serial, C::PROGRAM, C::PROCEDURE, packet, timeout))
    }

    /// Queues a call with already-encoded arguments.
    ///
    /// # Errors
    ///
    /// See [`Connection::start_call`].
    pub fn start_raw_call(
        &mut self,
        now: Instant,
        program: u32,
        version: u32,
        procedure: i32,
        args: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Serial, CallError> {
        let serial = self.reserve()?;
        let header = Header::call(program, version, procedure, serial);
        let packet = encode_packet(&header, args, self.config.max_packet_len)?;
        Ok(self.queue(now, serial, program, procedure, packet, timeout))
    }

    /// Checks that a call may start and picks its serial.
    fn reserve(&mut self) -> Result<u32, CallError> {
        if let Some(reason) = &self.closed {
            return Err(CallError::Closed(reason.clone()));
        }
        if self.pending.len() >= self.config.max_calls_in_flight {
            return Err(CallError::TooManyCalls {
                limit: self.config.max_calls_in_flight,
            });
        }
        // Serials count up and wrap, skipping any still in flight (there are fewer than
        // u32::MAX of those, so this ends).
        loop {
            let serial = self.next_serial;
            self.next_serial = self.next_serial.wrapping_add(1);
            if !self.pending.contains_key(&serial) {
                return Ok(serial);
            }
        }
    }

    fn queue(
        &mut self,
        now: Instant,
        serial: u32,
        program: u32,
        procedure: i32,
        packet: Bytes,
        timeout: Option<Duration>,
    ) -> Serial {
        self.transmit.push_back((packet, false));
        let pending = Pending {
            program,
            procedure,
            deadline: timeout.and_then(|t| now.checked_add(t)),
            abandoned: false,
        };
        self.pending.insert(serial, pending);
        Serial(serial)
    }

    /// Stops waiting for `serial`: no event will be reported for it. Returns false if it is not
    /// in flight. The slot is freed when the (discarded) reply arrives.
    pub fn cancel(&mut self, serial: Serial) -> bool {
        match self.pending.get_mut(&serial.0) {
            Some(p) if !p.abandoned => {
                p.abandoned = true;
                true
            }
            _ => false,
        }
    }

    /// Starts sending keepalive pings, once the server has said it supports them
    /// ([`crate::remote::connect::ConnectSupportsFeature::KEEPALIVE`]). Returns false if the
    /// configuration disables keepalive.
    pub fn enable_keepalive(&mut self) -> bool {
        self.closed.is_none() && self.keepalive.enable()
    }

    /// Whether keepalive pings are being sent.
    #[must_use]
    pub fn is_keepalive_enabled(&self) -> bool {
        self.keepalive.is_enabled()
    }

    /// The next packet to write, whole. Write them in the order returned.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let (packet, is_pong) = self.transmit.pop_front()?;
        if is_pong {
            self.pong_queued = false;
        }
        Some(packet)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Connection::handle_timeout`] should next be called, if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let calls = self
            .pending
            .values()
            .filter(|p| !p.abandoned)
            .filter_map(|p| p.deadline);
        calls.chain(self.keepalive.deadline()).min()
    }

    /// Runs the timers: sends a keepalive ping or declares the connection dead, and fails the
    /// calls whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        let mut expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| !p.abandoned && p.deadline.is_some_and(|d| d <= now))
            .map(|(&s, _)| s)
            .collect();
        expired.sort_unstable();
        for serial in expired {
            if let Some(p) = self.pending.get_mut(&serial) {
                p.abandoned = true;
                let (program, procedure) = (p.program, p.procedure);
                self.push_reply(serial, program, procedure, Err(ReplyError::TimedOut));
            }
        }
        match self.keepalive.on_timeout(now) {
            Action::None => {}
            Action::SendPing => self.transmit.push_back((crate::keepalive::ping(), false)),
            Action::Dead => self.close_with(CloseReason::KeepaliveTimeout),
        }
    }

    /// Feeds bytes read from the socket. Whole packets are handled at once; a partial one is
    /// kept (up to the packet limit) for the next call.
    pub fn handle_input(&mut self, now: Instant, mut data: &[u8]) {
        while self.closed.is_none() {
            match self.decoder.decode(&mut data) {
                Ok(None) => break,
                Ok(Some(packet)) => self.handle_packet(now, packet),
                Err(FrameError::TooLarge { len, max, header }) => {
                    self.keepalive.received(now);
                    self.handle_oversized(len, max, header);
                }
                // A length too small for a header: the stream cannot be trusted any more.
                Err(e) => self.close_with(CloseReason::Framing(e)),
            }
        }
    }

    /// The socket reached end of file.
    pub fn handle_eof(&mut self) {
        let reason = if self.decoder.is_idle() {
            CloseReason::Eof
        } else {
            CloseReason::Truncated
        };
        self.close_with(reason);
    }

    /// Closes the connection locally (after sending [`crate::remote::connect::ConnectClose`],
    /// ideally): every call in flight fails with [`ReplyError::Closed`].
    pub fn close(&mut self) {
        self.close_with(CloseReason::Local);
    }

    /// Why the connection is closed, if it is.
    #[must_use]
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.closed.as_ref()
    }

    /// Whether the connection is closed.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Calls waiting for a reply, cancelled ones included.
    #[must_use]
    pub fn calls_in_flight(&self) -> usize {
        self.pending.len()
    }

    /// Events dropped because the event queue was full.
    #[must_use]
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events
    }

    /// Bytes held for a partial packet.
    #[must_use]
    pub fn buffered_len(&self) -> usize {
        self.decoder.buffered_len()
    }

    /// Events waiting to be polled.
    #[must_use]
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    fn close_with(&mut self, reason: CloseReason) {
        if self.closed.is_some() {
            return;
        }
        let mut serials: Vec<u32> = self.pending.keys().copied().collect();
        serials.sort_unstable();
        for serial in serials {
            if let Some(p) = self.pending.remove(&serial) {
                if !p.abandoned {
                    let err = ReplyError::Closed(reason.clone());
                    self.push(Event::Reply(Reply {
                        serial: Serial(serial),
                        program: p.program,
                        procedure: p.procedure,
                        result: Err(err),
                    }));
                }
            }
        }
        self.transmit.clear();
        self.pong_queued = false;
        self.push(match reason {
            CloseReason::KeepaliveTimeout => Event::KeepaliveTimeout,
            ref other => Event::Closed(other.clone()),
        });
        self.closed = Some(reason);
    }

    /// Queues an event; replies and close events always, others while there is room.
    fn push(&mut self, event: Event) {
        let droppable = matches!(event, Event::DomainEvent(_) | Event::ProtocolError(_));
        if droppable && self.events.len() >= self.config.max_queued_events {
            self.dropped_events += 1;
        } else {
            self.events.push_back(event);
        }
    }

    fn push_reply(
        &mut self,
        serial: u32,
        program: u32,
        procedure: i32,
        result: Result<Bytes, ReplyError>,
    ) {
        self.push(Event::Reply(Reply {
            serial: Serial(serial),
            program,
            procedure,
            result,
        }));
    }
}

#[cfg(test)]
mod tests;
