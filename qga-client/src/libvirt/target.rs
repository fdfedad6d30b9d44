//! The domain behind a libvirt [`Client`](crate::Client): its identity, its agent state, and
//! the path of one agent call.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use virt_proto::{Call, Domain, ReplyError};

use super::connection::LibvirtConnection;
use super::driver::{Observe, RpcError};
use super::errors::agent_error;
use super::state::{AgentState, DomainRef, Slot};
use crate::error::{Error, Result};

/// A domain as a client uses it.
pub(crate) struct Target {
    pub(crate) conn: LibvirtConnection,
    /// As the caller named it.
    pub(crate) domain: DomainRef,
    resolved: Mutex<Resolved>,
}

#[derive(Clone)]
struct Resolved {
    dom: Domain,
    slot: Arc<Slot>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("domain", &self.domain)
            .field("socket", &self.conn.socket_path())
            .finish_non_exhaustive()
    }
}

/// How one agent call is made.
pub(crate) struct CallOptions {
    /// The QGA command the caller asked for (for errors).
    pub(crate) command: String,
    pub(crate) deadline: Instant,
    /// The time the call had (for [`Error::Timeout`]).
    pub(crate) after: Duration,
    /// The agent sends no reply on success: its going away is not a failure.
    pub(crate) no_reply: bool,
}

impl Target {
    /// Looks `domain` up within `timeout`.
    pub(crate) async fn resolve(
        conn: &LibvirtConnection,
        domain: DomainRef,
        timeout: Duration,
    ) -> Result<Self> {
        let dom = conn.lookup_within(&domain, timeout).await?;
        let slot = conn.shared().slot(dom.uuid);
        Ok(Self {
            conn: conn.clone(),
            domain,
            resolved: Mutex::new(Resolved { dom, slot }),
        })
    }

    fn current(&self) -> Resolved {
        self.resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The agent state as far as known.
    pub(crate) fn agent(&self) -> AgentState {
        self.current().slot.agent()
    }

    /// Looks the domain up again (it may have been recreated under the same name).
    pub(crate) async fn refresh(&self, deadline: Instant) -> Result<()> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let dom = self.conn.lookup_within(&self.domain, timeout).await?;
        let slot = self.conn.shared().slot(dom.uuid);
        *self
            .resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Resolved { dom, slot };
        Ok(())
    }

    /// One call that libvirt answers through the agent: fails at once when the agent is
    /// known to be down, waits for the domain's previous call to finish in libvirt, and ends
    /// with [`Error::NotConnected`] when the agent goes away meanwhile. `make` builds the call
    /// for the domain and the time left.
    pub(crate) async fn agent_call<C: Call>(
        &self,
        options: &CallOptions,
        make: impl Fn(&Domain, Duration) -> C,
    ) -> Result<C::Reply> {
        let mut looked_up_again = false;
        loop {
            let Resolved { dom, slot } = self.current();
            let mut presence = slot.subscribe();
            if *presence.borrow_and_update() == AgentState::Disconnected {
                return Err(Error::NotConnected);
            }
            let permit = Arc::clone(&slot.permit)
                .acquire_owned()
                .await
                .map_err(|_| Error::Closed)?;
            if *presence.borrow_and_update() == AgentState::Disconnected {
                return Err(Error::NotConnected);
            }
            let left = options.deadline.saturating_duration_since(Instant::now());
            let call = make(&dom, left);
            let sent = self.conn.send(
                &call,
                None,
                Some(permit),
                Observe::AgentCall(Arc::clone(&slot)),
            );
            let result = if options.no_reply {
                sent.await
            } else {
                let gone = presence.wait_for(|s| *s == AgentState::Disconnected);
                tokio::select! {
                    biased;
                    result = sent => result,
                    _ = gone => {
                        tracing::debug!(command = options.command, "guest agent disconnected during the call");
                        return Err(Error::NotConnected);
                    }
                }
            };
            match result {
                Ok(reply) => return Ok(reply),
                Err(RpcError::Reply(ReplyError::Libvirt(e)))
                    if e.is_no_domain() && !looked_up_again =>
                {
                    // The domain may have been recreated (a new UUID under the same name).
                    looked_up_again = true;
                    self.refresh(options.deadline).await?;
                }
                Err(e) => {
                    return Err(agent_error(
                        &options.command,
                        C::NAME,
                        &self.domain,
                        options.after,
                        e,
                    ));
                }
            }
        }
    }
}
