//! Where libvirt listens, and the settings of a [`LibvirtConnection`](super::LibvirtConnection).

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use virt_proto::KeepaliveConfig;

use super::connection::LibvirtConnection;
use crate::error::Result;

/// The modular daemon's socket (`virtqemud`, libvirt 7.0 and later when installed split).
pub const VIRTQEMUD_SOCKET: &str = "/run/libvirt/virtqemud-sock";
/// The monolithic daemon's socket (`libvirtd`, Debian 12 and most Nova computes).
pub const LIBVIRTD_SOCKET: &str = "/run/libvirt/libvirt-sock";
/// Where [`default_socket`] looks, in order.
pub const SOCKET_CANDIDATES: [&str; 2] = [VIRTQEMUD_SOCKET, LIBVIRTD_SOCKET];

/// The first of [`SOCKET_CANDIDATES`] that exists and is a socket.
pub fn default_socket() -> Option<PathBuf> {
    SOCKET_CANDIDATES
        .iter()
        .map(Path::new)
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket()))
        .map(Path::to_path_buf)
}

/// The settings of a [`LibvirtConnection`].
#[derive(Debug, Clone)]
pub(crate) struct LibvirtConfig {
    pub(crate) socket: Option<PathBuf>,
    pub(crate) uri: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) call_timeout: Duration,
    pub(crate) keepalive: Option<KeepaliveConfig>,
    pub(crate) max_calls_in_flight: usize,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
}

impl Default for LibvirtConfig {
    fn default() -> Self {
        Self {
            socket: None,
            uri: "qemu:///system".into(),
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(10),
            keepalive: Some(KeepaliveConfig::default()),
            max_calls_in_flight: 5,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }
}

/// Builds a [`LibvirtConnection`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct LibvirtBuilder {
    config: LibvirtConfig,
}

impl LibvirtBuilder {
    /// The daemon's UNIX socket [default: [`default_socket`]].
    pub fn socket(mut self, path: impl AsRef<Path>) -> Self {
        self.config.socket = Some(path.as_ref().to_owned());
        self
    }

    /// The URI opened on the daemon [default: `qemu:///system`].
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.config.uri = uri.into();
        self
    }

    /// Bound on connecting and opening (authentication, `CONNECT_OPEN`, event registration),
    /// each time [default: 5 s].
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.config.connect_timeout = t;
        self
    }

    /// Bound on the calls that do not reach a guest (lookups, listing) [default: 10 s].
    pub fn call_timeout(mut self, t: Duration) -> Self {
        self.config.call_timeout = t;
        self
    }

    /// Our keepalive pings: after `interval` of silence a ping, and the connection is dead
    /// after `count` unanswered ones [default: libvirt's, 5 s and 5]. `None`: send none (the
    /// daemon's pings are always answered).
    pub fn keepalive(mut self, keepalive: Option<KeepaliveConfig>) -> Self {
        self.config.keepalive = keepalive;
        self
    }

    /// Calls sent to the daemon at once; more wait here [default: 5, libvirtd's
    /// `max_client_requests`, beyond which the daemon stops reading the connection].
    pub fn max_calls_in_flight(mut self, n: usize) -> Self {
        self.config.max_calls_in_flight = n.max(1);
        self
    }

    /// The pause before reconnecting after the connection was lost: `min`, doubling up to
    /// `max` while attempts fail [default: 100 ms to 5 s].
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.config.reconnect_min = min;
        self.config.reconnect_max = max.max(min);
        self
    }

    /// Connects, authenticates, opens the URI and registers for domain events, within the
    /// connect timeout. Later losses of the connection are repaired in the background.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`](crate::Error::Connect) naming the socket (also when no socket was
    /// given and none of [`SOCKET_CANDIDATES`] exists), [`Error::Timeout`](crate::Error::Timeout),
    /// or [`Error::Libvirt`](crate::Error::Libvirt) when the daemon refuses (authentication,
    /// the URI).
    pub async fn connect(self) -> Result<LibvirtConnection> {
        LibvirtConnection::open(self.config).await
    }
}
