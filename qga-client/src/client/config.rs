//! Client settings and the builder.

use std::path::Path;
use std::time::Duration;

use super::Client;
use crate::error::Result;
use crate::logic::config::Config;
use crate::transport::{Stream, Transport};

/// Builds a [`Client`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct ClientBuilder {
    config: Config,
}

impl ClientBuilder {
    /// One timeout for everything: sets [`Config::default_timeout`],
    /// [`Config::long_timeout`] and [`Config::connect_timeout`] to `t`. The separate setters
    /// (and [`command_timeout`](Self::command_timeout)) still fine-tune them afterwards.
    ///
    /// For a bound on a whole job of several calls, use [`Client::with_deadline`].
    pub fn timeout(self, t: Duration) -> Self {
        self.default_timeout(t).long_timeout(t).connect_timeout(t)
    }

    /// Sets [`Config::default_timeout`].
    pub fn default_timeout(mut self, t: Duration) -> Self {
        self.config.default_timeout = t;
        self
    }

    /// Sets [`Config::long_timeout`].
    pub fn long_timeout(mut self, t: Duration) -> Self {
        self.config.long_timeout = t;
        self
    }

    /// Sets the deadline of one command by name.
    pub fn command_timeout(mut self, command: impl Into<String>, t: Duration) -> Self {
        self.config.command_timeouts.insert(command.into(), t);
        self
    }

    /// Sets [`Config::connect_timeout`].
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.config.connect_timeout = t;
        self
    }

    /// Sets [`Config::sync_retry_interval`].
    pub fn sync_retry_interval(mut self, t: Duration) -> Self {
        self.config.sync_retry_interval = t;
        self
    }

    /// Sets [`Config::no_reply_grace`].
    pub fn no_reply_grace(mut self, t: Duration) -> Self {
        self.config.no_reply_grace = t;
        self
    }

    /// Sets [`Config::max_message_len`].
    pub fn max_message_len(mut self, len: usize) -> Self {
        self.config.max_message_len = len;
        self
    }

    /// Sets [`Config::request_ids`].
    pub fn request_ids(mut self, on: bool) -> Self {
        self.config.request_ids = on;
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Connects to the UNIX socket at `path` and synchronises, all within the default timeout.
    /// The client reconnects to the same path by itself if the connection is closed later.
    ///
    /// # Errors
    ///
    /// [`Error::Connect`](crate::Error::Connect) naming the path, or
    /// [`Error::Timeout`](crate::Error::Timeout) when the agent does not answer the handshake.
    pub async fn connect(self, path: impl AsRef<Path>) -> Result<Client> {
        self.connect_transport(Transport::unix(path)).await
    }

    /// Like [`connect`](Self::connect), for any [`Transport`].
    ///
    /// # Errors
    ///
    /// As for `connect`.
    pub async fn connect_transport(self, transport: Transport) -> Result<Client> {
        let client = Client::new(self.config, None, Some(transport));
        client.sync().await?;
        Ok(client)
    }

    /// A client for `domain` (a name or a UUID; a Nova instance id is the domain's UUID)
    /// whose calls go through `libvirt` (libvirt transport). The domain is looked up now,
    /// within the connect timeout; the agent is not contacted (libvirt does the
    /// synchronisation). The client's timeouts apply to each call as on the other transports.
    ///
    /// # Errors
    ///
    /// [`Error::DomainNotFound`](crate::Error::DomainNotFound) naming the domain,
    /// [`Error::Timeout`](crate::Error::Timeout), or
    /// [`Error::Libvirt`](crate::Error::Libvirt).
    #[cfg(feature = "libvirt")]
    pub async fn connect_libvirt(
        self,
        libvirt: &crate::libvirt::LibvirtConnection,
        domain: impl Into<crate::libvirt::DomainRef>,
    ) -> Result<Client> {
        let target =
            crate::libvirt::Target::resolve(libvirt, domain.into(), self.config.connect_timeout)
                .await?;
        Ok(Client::with_libvirt(self.config, target))
    }

    /// A client over an existing stream (a socket, `tokio::io::duplex`, ...). It synchronises
    /// on the first call. It cannot reconnect: once the stream closes, calls fail with
    /// [`Error::Closed`](crate::Error::Closed).
    pub fn from_stream(self, stream: impl Stream) -> Client {
        Client::new(self.config, Some(Box::new(stream)), None)
    }
}
