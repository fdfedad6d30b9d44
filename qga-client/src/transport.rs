//! How a client reaches an agent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{Error, Result};

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
            Self::Unix(path) => {
                let connect = tokio::net::UnixStream::connect(path);
                match tokio::time::timeout(timeout, connect).await {
                    Ok(Ok(stream)) => Ok(Box::new(stream)),
                    Ok(Err(source)) => Err(Error::Connect {
                        path: path.clone(),
                        source,
                    }),
                    Err(_) => Err(Error::Connect {
                        path: path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!("connect timed out after {timeout:?}"),
                        ),
                    }),
                }
            }
        }
    }

    /// A short description for logs and errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Unix(path) => format!("unix:{}", path.display()),
        }
    }
}
