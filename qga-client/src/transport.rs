//! How a client reaches an agent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};

/// Connects, retrying while the listener's backlog is full: a non-blocking UNIX connect fails
/// with `EAGAIN` then (qemu-ga and QEMU accept one client at a time and keep a short backlog)
/// rather than waiting. The caller's timeout bounds the retries.
async fn connect_unix(path: &Path) -> std::io::Result<tokio::net::UnixStream> {
    let mut pause = Duration::from_millis(2);
    loop {
        match tokio::net::UnixStream::connect(path).await {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// A byte stream to an agent or a QMP monitor.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Where an agent is reached. A configuration choice: more transports (libvirt's RPC socket)
/// come as more variants.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// The UNIX socket of QEMU's chardev for the agent's virtio-serial port (or a host-mode
    /// qemu-ga in `unix-listen` mode).
    Unix(PathBuf),
}

impl Transport {
    /// A UNIX socket transport.
    pub fn unix(path: impl AsRef<Path>) -> Self {
        Self::Unix(path.as_ref().to_owned())
    }

    /// Connects within `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`] naming the path, with the IO error (a timeout is reported as
    /// `TimedOut`).
    pub async fn connect(&self, timeout: Duration) -> Result<Box<dyn Stream>> {
        match self {
            Self::Unix(path) => match tokio::time::timeout(timeout, connect_unix(path)).await {
                Ok(Ok(stream)) => Ok(Box::new(stream)),
                Ok(Err(source)) => Err(Error::Connect {
                    path: path.clone(),
                    source,
                }),
                Err(_) => Err(Error::Connect {
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "connect timed out after {timeout:?}: the socket's backlog stays \
                                 full (another client holds the agent)"
                        ),
                    ),
                }),
            },
        }
    }

    /// A short description for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Unix(path) => format!("unix:{}", path.display()),
        }
    }
}
