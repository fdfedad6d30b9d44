//! What is known about each domain's agent, kept current by the driver from events and call
//! outcomes, and the public types that describe domains.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Semaphore, watch};
use virt_proto::remote::domain::DomainState;
use virt_proto::remote::event::{DomainEvent, lifecycle};
use virt_proto::{Domain, Uuid};

/// A domain as the caller names it: by UUID (a Nova instance id is the domain's UUID) or by
/// name. [`DomainRef::parse`] takes either.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainRef {
    /// `DOMAIN_LOOKUP_BY_UUID`.
    Uuid(Uuid),
    /// `DOMAIN_LOOKUP_BY_NAME`.
    Name(String),
}

impl DomainRef {
    /// A UUID in its usual forms (with or without hyphens, either case), else a name.
    pub fn parse(text: &str) -> Self {
        match Uuid::parse(text) {
            Some(uuid) => Self::Uuid(uuid),
            None => Self::Name(text.to_owned()),
        }
    }
}

impl std::fmt::Display for DomainRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Uuid(u) => write!(f, "{u}"),
            Self::Name(n) => write!(f, "'{n}'"),
        }
    }
}

impl From<&str> for DomainRef {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

impl From<String> for DomainRef {
    fn from(text: String) -> Self {
        Self::parse(&text)
    }
}

impl From<Uuid> for DomainRef {
    fn from(uuid: Uuid) -> Self {
        Self::Uuid(uuid)
    }
}

/// Whether a domain's guest agent is connected, as far as libvirt has told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentState {
    /// The agent has its channel open (an agent lifecycle event, the channel state in the live
    /// XML, or a call that succeeded).
    Connected,
    /// The agent is not connected (an event, the live XML, or libvirt's "not connected"):
    /// calls fail at once with [`Error::NotConnected`](crate::Error::NotConnected).
    Disconnected,
    /// Nothing known yet (no event since the connection to libvirt was opened): calls are
    /// sent and their outcome tells.
    Unknown,
}

impl AgentState {
    /// `connected`, `disconnected` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Unknown => "unknown",
        }
    }
}

/// A running domain and its agent, from [`LibvirtConnection::running_domains`](super::LibvirtConnection::running_domains).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainStatus {
    /// The domain's name (`instance-0000002a` on Nova).
    pub name: String,
    /// The domain's UUID (the Nova instance id).
    pub uuid: Uuid,
    /// The running domain's id.
    pub id: i32,
    /// Its state (running, paused, ...).
    pub state: DomainState,
    /// Its agent.
    pub agent: AgentState,
}

/// One domain's entry: its agent state and the lock that keeps one agent call at a time in
/// libvirt.
#[derive(Debug)]
pub(crate) struct Slot {
    agent: watch::Sender<AgentState>,
    /// Held from sending an agent call until libvirt has answered it (also after the caller
    /// gave up).
    pub(crate) permit: Arc<Semaphore>,
}

impl Slot {
    fn new() -> Self {
        Self {
            agent: watch::Sender::new(AgentState::Unknown),
            permit: Arc::new(Semaphore::new(1)),
        }
    }

    pub(crate) fn agent(&self) -> AgentState {
        *self.agent.borrow()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<AgentState> {
        self.agent.subscribe()
    }

    /// An event: always the latest word.
    pub(crate) fn set(&self, state: AgentState) {
        self.agent
            .send_if_modified(|s| std::mem::replace(s, state) != state);
    }

    /// Knowledge from a call's outcome or the XML: it never overrides what an event said.
    pub(crate) fn learn(&self, state: AgentState) {
        self.agent.send_if_modified(|s| {
            let newer = match (*s, state) {
                (AgentState::Unknown, _) => true,
                // libvirt said "not connected": that is current.
                (AgentState::Connected, AgentState::Disconnected) => true,
                _ => false,
            };
            if newer {
                *s = state;
            }
            newer
        });
    }
}

/// State shared by the driver and every handle.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    domains: Mutex<HashMap<Uuid, Arc<Slot>>>,
    /// Sessions opened so far (the first is 1).
    pub(crate) generation: AtomicU64,
    /// A session is open now.
    pub(crate) connected: AtomicBool,
    /// The daemon accepted our event registrations in the current session.
    pub(crate) events: AtomicBool,
    /// `CONNECT_GET_LIB_VERSION` of the latest session (0: unknown).
    pub(crate) lib_version: AtomicU64,
    pub(crate) pings_sent: AtomicU64,
    pub(crate) pongs_sent: AtomicU64,
    pub(crate) domain_events: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// A session was opened: counts it and notes the daemon's version.
    pub(crate) fn session_opened(&self, lib_version: Option<u64>) -> u64 {
        if let Some(v) = lib_version {
            self.lib_version.store(v, Ordering::Relaxed);
        }
        self.connected.store(true, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The entry of `uuid`, created when needed.
    pub(crate) fn slot(&self, uuid: Uuid) -> Arc<Slot> {
        Arc::clone(
            lock(&self.domains)
                .entry(uuid)
                .or_insert_with(|| Arc::new(Slot::new())),
        )
    }

    /// A new session: whatever was known may have changed unseen.
    pub(crate) fn forget_all(&self) {
        let domains = lock(&self.domains);
        for slot in domains.values() {
            slot.set(AgentState::Unknown);
        }
    }

    /// Applies a domain event.
    pub(crate) fn apply(&self, event: &DomainEvent) {
        self.domain_events.fetch_add(1, Ordering::Relaxed);
        match event {
            DomainEvent::AgentLifecycle(e) => {
                let state = if e.is_connected() {
                    AgentState::Connected
                } else {
                    AgentState::Disconnected
                };
                tracing::debug!(domain = %e.dom.name, uuid = %e.dom.uuid, state = state.as_str(), reason = e.reason, "guest agent lifecycle event");
                self.slot(e.dom.uuid).set(state);
            }
            DomainEvent::Lifecycle(e) => {
                let gone = e.is_stop() || e.event == lifecycle::UNDEFINED;
                if gone || e.event == lifecycle::STARTED {
                    // A domain that just started has no agent yet; one that stopped has none.
                    tracing::debug!(domain = %e.dom.name, event = e.event, "domain lifecycle event");
                    self.stopped_or_started(&e.dom, gone);
                }
            }
            _ => {}
        }
    }

    fn stopped_or_started(&self, dom: &Domain, gone: bool) {
        let mut domains = lock(&self.domains);
        match domains.get(&dom.uuid) {
            // Nobody uses the entry of a domain that went away: forget it, or the map would
            // grow with every instance the host ever ran.
            Some(slot) if gone && Arc::strong_count(slot) == 1 => {
                domains.remove(&dom.uuid);
            }
            Some(slot) => slot.set(AgentState::Disconnected),
            None => {}
        }
    }
}
