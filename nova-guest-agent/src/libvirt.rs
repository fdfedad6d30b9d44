//! The libvirt transport (`[agent] transport = libvirt`): one connection to libvirt for every
//! guest of the host, made on first use (and again after a reload that changes
//! `libvirt_socket`), and the host listing through it.
//!
//! The connection repairs itself after libvirtd restarts (qga-client reconnects with backoff);
//! only a connection that could never be opened is retried here, on the next request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use qga_client::libvirt::{AgentState, DomainRef, LibvirtConnection, proto};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::Config;
use crate::error::{ApiError, ErrorCode, error_chain};

/// The shared connection.
#[derive(Default)]
pub struct Libvirt {
    current: Mutex<Option<(Option<PathBuf>, LibvirtConnection)>>,
}

/// The slot key of a guest reached through libvirt (socket guests use their socket's path).
pub fn slot_key(uuid: &str) -> PathBuf {
    PathBuf::from(format!("libvirt:{uuid}"))
}

impl Libvirt {
    /// The connection for `config`'s `libvirt_socket`, opened within `deadline` if there is
    /// none yet.
    ///
    /// # Errors
    ///
    /// 409 `guest_unavailable` naming the socket when libvirt cannot be reached, 504 when
    /// opening it took too long.
    pub async fn connection(
        &self,
        config: &Config,
        deadline: Instant,
    ) -> Result<LibvirtConnection, ApiError> {
        let mut current = self.current.lock().await;
        if let Some((socket, conn)) = &*current
            && *socket == config.libvirt_socket
        {
            return Ok(conn.clone());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let mut builder = LibvirtConnection::builder()
            .connect_timeout(left.min(config.command_timeout))
            .call_timeout(config.command_timeout);
        if let Some(path) = &config.libvirt_socket {
            builder = builder.socket(path);
        }
        let conn = builder.connect().await.map_err(|e| {
            let text = error_chain(&e);
            tracing::error!(error = %text, "cannot connect to libvirt");
            if e.is_timeout() {
                ApiError::new(ErrorCode::GuestTimeout, text)
            } else {
                ApiError::new(
                    ErrorCode::GuestUnavailable,
                    format!("cannot reach libvirt: {text}"),
                )
            }
        })?;
        tracing::info!(socket = %conn.socket_path().display(), version = ?conn.lib_version(), "connected to libvirt");
        *current = Some((config.libvirt_socket.clone(), conn.clone()));
        Ok(conn)
    }

    /// The domain of the instance `uuid`, looked up within `deadline`.
    ///
    /// # Errors
    ///
    /// 404 `instance_not_found` when libvirt has no such domain, or as for
    /// [`connection`](Self::connection).
    pub async fn domain(
        &self,
        config: &Config,
        uuid: &str,
        deadline: Instant,
    ) -> Result<(LibvirtConnection, proto::Domain), ApiError> {
        let conn = self.connection(config, deadline).await?;
        let Some(parsed) = proto::Uuid::parse(uuid) else {
            return Err(ApiError::bad_request("the instance id must be a uuid"));
        };
        let domain = DomainRef::Uuid(parsed);
        let lookup = conn.lookup(&domain);
        let found = tokio::time::timeout_at(deadline, lookup)
            .await
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::GuestTimeout,
                    "libvirt did not answer the domain lookup in time",
                )
            })?;
        match found {
            Ok(dom) => Ok((conn, dom)),
            Err(qga_client::Error::DomainNotFound { .. }) => Err(ApiError::new(
                ErrorCode::InstanceNotFound,
                "no libvirt domain on this host has the instance's uuid",
            )),
            Err(e) => Err(ApiError::from_guest(&e)),
        }
    }
}

/// `running`, `paused`, ... as `virsh domstate` says them.
pub fn state_name(state: proto::remote::domain::DomainState) -> String {
    use proto::remote::domain::DomainState as S;
    match state {
        S::NoState => "nostate".into(),
        S::Running => "running".into(),
        S::Blocked => "blocked".into(),
        S::Paused => "paused".into(),
        S::Shutdown => "shutdown".into(),
        S::Shutoff => "shutoff".into(),
        S::Crashed => "crashed".into(),
        S::PmSuspended => "pmsuspended".into(),
        S::Other(n) => format!("state-{n}"),
    }
}

/// One running domain for the listing.
pub struct Listed {
    /// Its UUID (the instance id).
    pub uuid: String,
    /// Its name.
    pub name: String,
    /// `running`, `paused`, ...
    pub state: String,
    /// What libvirt says of its agent.
    pub agent: AgentState,
}

/// The host's running domains with their agent state, within `timeout`.
///
/// # Errors
///
/// As for [`Libvirt::connection`]; 504 when listing took too long.
pub async fn running(
    libvirt: &Libvirt,
    config: &Config,
    timeout: Duration,
) -> Result<(PathBuf, Vec<Listed>), ApiError> {
    let deadline = Instant::now() + timeout;
    let conn = libvirt.connection(config, deadline).await?;
    let domains = tokio::time::timeout_at(deadline, conn.running_domains())
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::GuestTimeout,
                format!("libvirt did not list its domains within {timeout:?}"),
            )
        })?
        .map_err(|e| ApiError::from_guest(&e))?;
    let listed = domains
        .into_iter()
        .map(|d| Listed {
            uuid: d.uuid.to_string(),
            name: d.name,
            state: state_name(d.state),
            agent: d.agent,
        })
        .collect();
    Ok((Path::to_path_buf(conn.socket_path()), listed))
}
