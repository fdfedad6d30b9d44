//! The libvirt transport's side of [`Client`]: construction and accessors.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::sync::Mutex;

use super::conn::Conn;
use super::{Client, Config, Shared};
use crate::libvirt::{AgentState, DomainRef, LibvirtConnection, Target};

impl Client {
    /// A client whose calls go through libvirt to `target`'s agent.
    pub(crate) fn with_libvirt(config: Config, target: Target) -> Self {
        let conn = Conn::new(None, config.max_message_len);
        Self {
            shared: Arc::new(Shared {
                transport: None,
                conn: Mutex::new(conn),
                config,
                events_skipped: AtomicU64::new(0),
                libvirt: Some(target),
            }),
            deadline: None,
        }
    }

    /// The domain this client reaches through libvirt, as it was named (libvirt transport).
    pub fn libvirt_domain(&self) -> Option<&DomainRef> {
        self.shared.libvirt.as_ref().map(|t| &t.domain)
    }

    /// The libvirt connection this client uses (libvirt transport).
    pub fn libvirt_connection(&self) -> Option<&LibvirtConnection> {
        self.shared.libvirt.as_ref().map(|t| &t.conn)
    }

    /// The domain's agent state as far as libvirt has told (libvirt transport; `None` for
    /// the other transports, where [`AgentPresence`](crate::AgentPresence) tells).
    pub fn libvirt_agent_state(&self) -> Option<AgentState> {
        self.shared.libvirt.as_ref().map(Target::agent)
    }
}
