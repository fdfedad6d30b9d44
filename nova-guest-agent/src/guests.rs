//! The guests of this host: one cached [`qga_client::Client`] per agent socket (or per
//! libvirt domain, all on one shared libvirt connection), one operation at a time per guest
//! (in arrival order), many guests in parallel under a global bound.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qga_client::proto::qga::GuestOsInfo;
use qga_client::{AgentPresence, Client, QmpClient, Transport};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::{Config, TransportKind};
use crate::error::{ApiError, ErrorCode};
use crate::libvirt::Libvirt;
use crate::ops::Target;

/// What the agent knows about a guest's operating system (asked once per connection
/// identity, then cached).
#[derive(Debug, Clone)]
pub struct GuestOs {
    /// `guest-get-osinfo`, when the agent has it.
    pub info: Option<GuestOsInfo>,
    /// True for Windows guests.
    pub windows: bool,
}

/// The state behind a guest's lock.
#[derive(Default)]
pub struct GuestState {
    client: Option<Client>,
    /// The timeout the client was built with (a reload may change it).
    client_timeout: Duration,
    /// (device, inode) of the socket when the client was made, or (libvirt) the domain's id:
    /// a new socket or domain id (the VM was restarted or rebuilt) drops the client and the
    /// cached OS.
    identity: Option<(u64, u64)>,
    os: Option<GuestOs>,
    /// Whether guest-exec is enabled (asked once per connection identity).
    can_exec: Option<bool>,
    /// QEMU's view of the guest agent (with `qmp_socket_path_template`), and the QMP
    /// connection it follows.
    presence: Option<(AgentPresence, QmpClient)>,
}

/// One guest: its lock (tokio's mutex is fair, so operations run in arrival order) and how
/// many requests wait for it.
pub struct Slot {
    path: PathBuf,
    /// Reached through libvirt: `path` is a key, not a socket.
    libvirt: bool,
    state: tokio::sync::Mutex<GuestState>,
    last_used: Mutex<std::time::Instant>,
    /// Requests between arriving and finishing (the one running included).
    queued: AtomicUsize,
}

/// A place in a guest's queue, given back on drop (also when the request is cancelled).
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The cache of guests.
#[derive(Default)]
pub struct Guests {
    slots: Mutex<HashMap<PathBuf, Arc<Slot>>>,
    /// The libvirt connection (`transport = libvirt`).
    pub libvirt: Libvirt,
}

/// A guest during an operation: its client, and its OS on demand.
pub struct Guest<'a> {
    state: &'a mut GuestState,
    /// The connected client, bounded by the operation's deadline: every call and helper on it
    /// (exec polling, file chunks, the handshake) ends by then.
    pub client: Client,
    /// The same connection without the deadline, for clean-up that must outlive the
    /// operation (removing a temporary file after a cut-off write); give each call its own
    /// short timeout.
    pub unbounded: Client,
}

impl Guest<'_> {
    /// Whether the guest agent runs programs (guest-exec enabled), asked once and cached.
    ///
    /// # Errors
    ///
    /// Transport errors and timeouts.
    pub async fn can_exec(&mut self) -> Result<bool, qga_client::Error> {
        if let Some(can) = self.state.can_exec {
            return Ok(can);
        }
        let info = self.client.info().await?;
        let can = info
            .supported_commands
            .iter()
            .any(|c| c.name == "guest-exec" && c.enabled);
        self.state.can_exec = Some(can);
        Ok(can)
    }

    /// The guest's OS, asked once and cached. An agent without guest-get-osinfo counts as
    /// Linux.
    ///
    /// # Errors
    ///
    /// Transport errors and timeouts.
    pub async fn os(&mut self) -> Result<GuestOs, qga_client::Error> {
        if let Some(os) = &self.state.os {
            return Ok(os.clone());
        }
        let os = match self.client.osinfo().await {
            Ok(info) => GuestOs {
                windows: info.is_windows(),
                info: Some(info),
            },
            Err(e) if e.agent_error().is_some() => GuestOs {
                info: None,
                windows: false,
            },
            Err(e) => return Err(e),
        };
        self.state.os = Some(os.clone());
        Ok(os)
    }
}

/// Where an operation was when its deadline passed.
#[derive(Clone, Copy)]
enum Phase {
    /// Waiting for the operations before it on this guest.
    Guest,
    /// Waiting for a host-wide operation slot.
    Permit,
    /// Talking to the guest agent.
    Agent,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Guests {
    /// Number of cached clients (each holds at most one open connection).
    pub fn connections(&self) -> usize {
        lock(&self.slots).len()
    }

    fn slot(&self, path: &Path, libvirt: bool) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        slots
            .entry(path.to_owned())
            .or_insert_with(|| {
                Arc::new(Slot {
                    path: path.to_owned(),
                    libvirt,
                    state: tokio::sync::Mutex::new(GuestState::default()),
                    last_used: Mutex::new(std::time::Instant::now()),
                    queued: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Drops the slot of a socket that is gone, unless a request still holds it.
    fn forget(&self, path: &Path) {
        let mut slots = lock(&self.slots);
        if slots.get(path).is_some_and(|s| Arc::strong_count(s) == 1) {
            slots.remove(path);
        }
    }

    /// Drops clients unused for `idle` and those whose socket is gone; returns how many.
    /// A slot that a request holds is kept: requests clone it under the map's lock, so with
    /// that lock held a count of one means nobody else has it (and nobody can get it).
    pub fn sweep(&self, idle: Duration) -> usize {
        let mut slots = lock(&self.slots);
        let before = slots.len();
        slots.retain(|path, slot| {
            let held = Arc::strong_count(slot) > 1;
            let fresh = lock(&slot.last_used).elapsed() < idle;
            held || (fresh && (slot.libvirt || path.exists()))
        });
        before - slots.len()
    }

    /// Runs `op` on the guest of `target` (its agent socket, or with `transport = libvirt` its
    /// libvirt domain, found by uuid), within `timeout` overall: waiting for the guest (one
    /// operation at a time, at most `max_queued_per_guest` requests per guest), then for a
    /// host-wide operation slot, connecting and synchronising, and the operation itself.
    ///
    /// # Errors
    ///
    /// 404 `instance_not_found` when there is no socket (or domain), 429 `guest_queue_full` when too many
    /// requests wait for this guest, 409 `guest_busy` or 503 `overloaded` when waiting took
    /// the whole deadline, 504 `guest_timeout` when the agent did not answer in time, or the
    /// operation's error.
    pub async fn with_guest<T>(
        &self,
        config: &Config,
        permits: &Semaphore,
        target: &Target,
        timeout: Duration,
        op: impl AsyncFnOnce(&mut Guest<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let path = target.path.as_path();
        let deadline = Instant::now() + timeout;
        let libvirt = config.transport == TransportKind::Libvirt;
        let (identity, libvirt_conn) = if libvirt {
            let (conn, dom) = self.libvirt.domain(config, &target.uuid, deadline).await?;
            ((u64::MAX, u64::from(dom.id.unsigned_abs())), Some(conn))
        } else {
            (socket_identity(self, path)?, None)
        };
        let slot = self.slot(path, libvirt);
        // A bounded queue per guest: a silent guest collects at most this many requests, and
        // none of them holds a host-wide slot while it waits.
        let queued = slot.queued.fetch_add(1, Ordering::AcqRel) + 1;
        let _queued = Queued(&slot.queued);
        if queued > config.max_queued_per_guest {
            return Err(ApiError::new(
                ErrorCode::GuestQueueFull,
                format!(
                    "{} requests already wait for this guest (max_queued_per_guest)",
                    queued - 1
                ),
            ));
        }
        let mut phase = Phase::Guest;
        let work = async {
            // The guest's lock is first come, first served: from here, requests for one guest
            // keep their order.
            tracing::debug!("queued for the guest");
            let mut state = slot.state.lock().await;
            phase = Phase::Permit;
            let permit = permits
                .acquire()
                .await
                .map_err(|_| ApiError::internal("the operation limit was closed"))?;
            phase = Phase::Agent;
            *lock(&slot.last_used) = std::time::Instant::now();
            if state.identity != Some(identity) || state.client_timeout != config.command_timeout {
                if state.client.is_some() {
                    tracing::debug!(socket = %slot.path.display(), "guest socket or settings changed; reconnecting");
                }
                state.client = None;
                state.os = None;
                state.can_exec = None;
                state.presence = None;
                state.identity = Some(identity);
            }
            let client = match &state.client {
                Some(c) => c.clone(),
                None => {
                    let builder = Client::builder().timeout(config.command_timeout);
                    let c = match &libvirt_conn {
                        Some(conn) => {
                            let uuid = qga_client::libvirt::DomainRef::parse(&target.uuid);
                            builder.connect_libvirt(conn, uuid).await
                        }
                        None => builder.connect_transport(Transport::unix(path)).await,
                    }
                    .map_err(|e| ApiError::from_guest(&e))?;
                    state.client = Some(c.clone());
                    state.client_timeout = config.command_timeout;
                    c
                }
            };
            // Over libvirt the client follows libvirt's agent events itself.
            if state.presence.is_none()
                && !libvirt
                && let Some(qmp) = &target.qmp
            {
                state.presence = watch_presence(qmp, &client, config.command_timeout).await;
            }
            if let Some((presence, _)) = &state.presence
                && !presence.is_connected()
            {
                // QEMU says the guest side of the agent's port is closed: qemu-ga is not
                // running. Say so now rather than after a timeout.
                if presence.state().qmp_closed {
                    state.presence = None;
                }
                return Err(ApiError::new(
                    ErrorCode::GuestUnavailable,
                    "the guest agent is not running in the guest (QEMU reports its port closed)",
                ));
            }
            let watch = state.presence.as_ref().map(|(p, _)| p.subscribe());
            let mut guest = Guest {
                state: &mut state,
                client: client.with_deadline(deadline),
                unbounded: client,
            };
            let result = match watch {
                // The guest agent going away (or restarting) mid-operation ends it at once:
                // its reply would never come.
                Some(mut presence) => tokio::select! {
                    r = op(&mut guest) => r,
                    () = agent_gone(&mut presence) => Err(ApiError::new(
                        ErrorCode::GuestUnavailable,
                        "the guest agent stopped during the operation (QEMU reports its port closed)",
                    )
                    .ambiguous()),
                },
                None => op(&mut guest).await,
            };
            *lock(&slot.last_used) = std::time::Instant::now();
            drop(permit);
            result
        };
        let result = tokio::time::timeout_at(deadline, work).await;
        match result {
            Ok(r) => r,
            Err(_) => Err(match phase {
                Phase::Guest => ApiError::new(
                    ErrorCode::GuestBusy,
                    format!("another operation on this guest took the whole {timeout:?}"),
                ),
                Phase::Permit => ApiError::new(
                    ErrorCode::Overloaded,
                    format!(
                        "all {} operation slots stayed busy for {timeout:?}",
                        config.max_concurrent_operations
                    ),
                ),
                // The command may have gone out before the deadline.
                Phase::Agent => ApiError::new(
                    ErrorCode::GuestTimeout,
                    format!("the guest agent did not answer within {timeout:?}"),
                )
                .ambiguous(),
            }),
        }
    }
}

/// Returns once QEMU reports the agent's port closed or reopened after the call started;
/// never when presence itself goes away.
async fn agent_gone(presence: &mut tokio::sync::watch::Receiver<qga_client::PresenceState>) {
    let start = presence.borrow_and_update().changes;
    loop {
        let now = *presence.borrow_and_update();
        if !now.connected || now.changes != start {
            return;
        }
        if presence.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// (device, inode) of the guest's agent socket.
fn socket_identity(guests: &Guests, path: &Path) -> Result<(u64, u64), ApiError> {
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_socket() => Ok((m.dev(), m.ino())),
        Ok(_) => Err(ApiError::new(
            ErrorCode::GuestUnavailable,
            format!("{} is not a socket", path.display()),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            guests.forget(path);
            Err(ApiError::new(
                ErrorCode::InstanceNotFound,
                "the instance has no guest agent socket on this host",
            ))
        }
        Err(e) => Err(ApiError::new(
            ErrorCode::GuestUnavailable,
            format!("cannot inspect {}: {e}", path.display()),
        )),
    }
}

/// Follows the guest agent's port through the instance's QMP socket; `None` (logged) when
/// QMP cannot be reached: the guest is then served without presence.
async fn watch_presence(
    qmp: &Path,
    client: &Client,
    timeout: Duration,
) -> Option<(AgentPresence, QmpClient)> {
    let qmp_client = match QmpClient::connect(qmp, timeout).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(qmp = %qmp.display(), error = %e, "no QMP presence for this guest");
            return None;
        }
    };
    match AgentPresence::new(&qmp_client).await {
        Ok(presence) => {
            presence.attach(client);
            Some((presence, qmp_client))
        }
        Err(e) => {
            tracing::warn!(qmp = %qmp.display(), error = %e, "no QMP presence for this guest");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_keeps_held_slots_and_drops_idle_or_gone_ones() {
        let dir = tempfile::tempdir().unwrap();
        let present = dir.path().join("a.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&present).unwrap();
        let gone = dir.path().join("gone.sock");
        let guests = Guests::default();
        let held = guests.slot(&gone, false);
        guests.slot(&present, false);
        guests.slot(&crate::libvirt::slot_key("u"), true);
        assert_eq!(
            guests.sweep(Duration::from_secs(60)),
            0,
            "held or fresh and present"
        );
        drop(held);
        assert_eq!(
            guests.sweep(Duration::from_secs(60)),
            1,
            "the gone socket's slot"
        );
        assert_eq!(guests.sweep(Duration::ZERO), 2, "idle");
        assert_eq!(guests.connections(), 0);
    }
}
