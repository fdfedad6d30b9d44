//! [`LibvirtConnection`]: the shared handle on one connection to the daemon.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use virt_proto::remote::connect::LibVersion;
use virt_proto::remote::domain::{
    ConnectListAllDomains, DomainGetState, DomainGetXmlDesc, DomainLookupByName,
    DomainLookupByUuid, list_flags,
};
use virt_proto::{Call, CloseReason, Domain, ReplyError, Uuid, xdr};

use super::config::{
    LIBVIRTD_SOCKET, LibvirtBuilder, LibvirtConfig, SOCKET_CANDIDATES, default_socket,
};
use super::driver::{Driver, Observe, Request, RpcError};
use super::errors::call_error;
use super::session::Session;
use super::state::{AgentState, DomainRef, DomainStatus, Shared, Slot};
use crate::client::{Client, ClientBuilder};
use crate::error::{Error, Result};

/// One connection to libvirtd (or virtqemud), shared by every guest's [`Client`]. Cheap to
/// clone; the connection closes when the last clone and the last client made from it are
/// dropped. See the [module documentation](super).
#[derive(Clone)]
pub struct LibvirtConnection {
    inner: Arc<Inner>,
}

struct Inner {
    config: LibvirtConfig,
    socket: PathBuf,
    tx: mpsc::UnboundedSender<Request>,
    shared: Arc<Shared>,
    driver: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The driver sees its channel close, says CONNECT_CLOSE and ends; it is only aborted
        // if it is still reconnecting (nothing to close politely then).
        if !self.shared.connected.load(Ordering::Relaxed) {
            self.driver.abort();
        }
    }
}

impl std::fmt::Debug for LibvirtConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LibvirtConnection")
            .field("socket", &self.inner.socket)
            .field("uri", &self.inner.config.uri)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// Counters of a [`LibvirtConnection`], for logs, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibvirtStats {
    /// Sessions opened: 1 after connecting, one more after each reconnect.
    pub sessions: u64,
    /// A session is open now.
    pub connected: bool,
    /// Whether the daemon accepted the domain event registrations (agent presence follows
    /// events).
    pub events: bool,
    /// Domain events received.
    pub domain_events: u64,
    /// Keepalive pings we sent (after `interval` of silence).
    pub pings_sent: u64,
    /// Keepalive pongs we sent (answers to the daemon's pings).
    pub pongs_sent: u64,
}

impl LibvirtConnection {
    /// A builder with the defaults.
    pub fn builder() -> LibvirtBuilder {
        LibvirtBuilder::default()
    }

    pub(super) async fn open(config: LibvirtConfig) -> Result<Self> {
        let Some(socket) = config.socket.clone().or_else(default_socket) else {
            return Err(Error::Connect {
                path: PathBuf::from(LIBVIRTD_SOCKET),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "no libvirt socket: none of {} exists",
                        SOCKET_CANDIDATES.join(", ")
                    ),
                ),
            });
        };
        let shared = Arc::new(Shared::default());
        let session = Session::open(&config, &socket, &shared).await?;
        shared.session_opened(session.lib_version.map(|v| v.0));
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = Driver::new(config.clone(), socket.clone(), Arc::clone(&shared), rx);
        let driver = tokio::spawn(driver.run(session));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                socket,
                tx,
                shared,
                driver,
            }),
        })
    }

    /// The socket this connection uses.
    pub fn socket_path(&self) -> &Path {
        &self.inner.socket
    }

    /// Whether a session is open now (false while reconnecting).
    pub fn is_connected(&self) -> bool {
        self.inner.shared.connected.load(Ordering::Relaxed)
    }

    /// The daemon's libvirt version, `(major, minor, release)`, when it said.
    pub fn lib_version(&self) -> Option<(u64, u64, u64)> {
        match self.inner.shared.lib_version.load(Ordering::Relaxed) {
            0 => None,
            v => Some(LibVersion(v).parts()),
        }
    }

    /// The counters.
    pub fn stats(&self) -> LibvirtStats {
        let s = &self.inner.shared;
        LibvirtStats {
            sessions: s.generation.load(Ordering::Relaxed),
            connected: s.connected.load(Ordering::Relaxed),
            events: s.events.load(Ordering::Relaxed),
            domain_events: s.domain_events.load(Ordering::Relaxed),
            pings_sent: s.pings_sent.load(Ordering::Relaxed),
            pongs_sent: s.pongs_sent.load(Ordering::Relaxed),
        }
    }

    /// A client for `domain` (a name or a UUID) with the default client settings; see
    /// [`ClientBuilder::connect_libvirt`].
    ///
    /// # Errors
    ///
    /// As for [`ClientBuilder::connect_libvirt`].
    pub async fn client(&self, domain: impl Into<DomainRef>) -> Result<Client> {
        ClientBuilder::default().connect_libvirt(self, domain).await
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    pub(crate) fn call_timeout(&self) -> Duration {
        self.inner.config.call_timeout
    }

    /// Sends `call` through the driver and waits for its reply (no deadline here: the caller
    /// bounds it).
    pub(crate) async fn send<C: Call>(
        &self,
        call: &C,
        timeout: Option<Duration>,
        permit: Option<OwnedSemaphorePermit>,
        observe: Observe,
    ) -> std::result::Result<C::Reply, RpcError> {
        let args = xdr::to_vec(call).map_err(|e| RpcError::Encode(format!("{}: {e}", C::NAME)))?;
        let (reply, rx) = oneshot::channel();
        let request = Request {
            program: C::PROGRAM,
            version: C::VERSION,
            procedure: C::PROCEDURE,
            args,
            timeout,
            reply,
            permit,
            observe,
        };
        let gone = || RpcError::Reply(ReplyError::Closed(CloseReason::Local));
        self.inner.tx.send(request).map_err(|_| gone())?;
        let payload = rx.await.map_err(|_| gone())??;
        C::decode_reply(&payload).map_err(|e| RpcError::Reply(ReplyError::Malformed(e)))
    }

    /// A call that does not reach a guest, within `timeout` (waiting for a slot or a
    /// reconnect included).
    pub(crate) async fn rpc<C: Call>(&self, call: &C, timeout: Duration) -> Result<C::Reply> {
        let work = self.send(call, Some(timeout), None, Observe::Nothing);
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(call_error(C::NAME, timeout, e)),
            Err(_) => Err(Error::Timeout {
                command: C::NAME.to_owned(),
                after: timeout,
            }),
        }
    }

    /// Finds a domain by name or UUID.
    ///
    /// # Errors
    ///
    /// [`Error::DomainNotFound`] naming it; [`Error::Timeout`] or [`Error::Libvirt`].
    pub async fn lookup(&self, domain: &DomainRef) -> Result<Domain> {
        self.lookup_within(domain, self.call_timeout()).await
    }

    pub(crate) async fn lookup_within(
        &self,
        domain: &DomainRef,
        timeout: Duration,
    ) -> Result<Domain> {
        let found = match domain {
            DomainRef::Uuid(uuid) => self.rpc(&DomainLookupByUuid { uuid: *uuid }, timeout).await,
            DomainRef::Name(name) => {
                let call = DomainLookupByName { name: name.clone() };
                self.rpc(&call, timeout).await
            }
        };
        match found {
            Err(e)
                if e.libvirt_error()
                    .is_some_and(virt_proto::LibvirtError::is_no_domain) =>
            {
                Err(Error::DomainNotFound {
                    domain: domain.to_string(),
                })
            }
            other => other,
        }
    }

    /// The agent state of `domain`: what events and calls said, or else the channel state in
    /// its live XML (`DOMAIN_GET_XML_DESC`, which does not reach the guest).
    ///
    /// # Errors
    ///
    /// As for [`lookup`](Self::lookup).
    pub async fn agent_state(&self, domain: &DomainRef) -> Result<AgentState> {
        let dom = self.lookup(domain).await?;
        self.agent_state_of(dom).await
    }

    async fn agent_state_of(&self, dom: Domain) -> Result<AgentState> {
        let slot: Arc<Slot> = self.shared().slot(dom.uuid);
        if slot.agent() != AgentState::Unknown {
            return Ok(slot.agent());
        }
        let call = DomainGetXmlDesc { dom, flags: 0 };
        let timeout = self.call_timeout();
        let work = self.send(
            &call,
            Some(timeout),
            None,
            Observe::ChannelXml(Arc::clone(&slot)),
        );
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(_)) => Ok(slot.agent()),
            Ok(Err(e)) => Err(call_error(DomainGetXmlDesc::NAME, timeout, e)),
            Err(_) => Err(Error::Timeout {
                command: DomainGetXmlDesc::NAME.to_owned(),
                after: timeout,
            }),
        }
    }

    /// Follows the agent state of the domain with this UUID (updated by events and calls).
    pub fn watch_agent(&self, uuid: Uuid) -> watch::Receiver<AgentState> {
        self.shared().slot(uuid).subscribe()
    }

    /// Every active domain (running or paused) with its state and its agent's, for a host
    /// listing. The agent state comes from events and earlier calls, or the live XML; the
    /// guests are not contacted.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] or [`Error::Libvirt`]. A domain that stops while it is listed is
    /// left out.
    pub async fn running_domains(&self) -> Result<Vec<DomainStatus>> {
        let timeout = self.call_timeout();
        let list = self
            .rpc(&ConnectListAllDomains::new(list_flags::ACTIVE), timeout)
            .await?;
        let mut out = Vec::with_capacity(list.domains.len());
        for dom in list.domains {
            let state = match self
                .rpc(
                    &DomainGetState {
                        dom: dom.clone(),
                        flags: 0,
                    },
                    timeout,
                )
                .await
            {
                Ok(s) => s.state,
                Err(e)
                    if e.libvirt_error()
                        .is_some_and(virt_proto::LibvirtError::is_no_domain) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let agent = match self.agent_state_of(dom.clone()).await {
                Ok(a) => a,
                Err(e)
                    if e.libvirt_error()
                        .is_some_and(virt_proto::LibvirtError::is_no_domain) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            out.push(DomainStatus {
                name: dom.name,
                uuid: dom.uuid,
                id: dom.id,
                state,
                agent,
            });
        }
        Ok(out)
    }
}
