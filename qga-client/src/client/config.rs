//! Client settings and the builder.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use qga_proto::codec::DEFAULT_MAX_MESSAGE_LEN;

use super::Client;
use crate::error::Result;
use crate::transport::{Stream, Transport};

/// Client settings. Build one with [`Client::builder`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Deadline of a call unless the command has its own (5 s).
    pub default_timeout: Duration,
    /// Deadline of long-running commands: fsfreeze and fstrim (60 s).
    pub long_timeout: Duration,
    /// Deadlines by command name, over both defaults.
    pub command_timeouts: HashMap<String, Duration>,
    /// Bound on connecting the socket (5 s).
    pub connect_timeout: Duration,
    /// While synchronising, a new `guest-sync-delimited` with a fresh id is sent this often
    /// (2 s): a dying agent may have swallowed the previous one.
    pub sync_retry_interval: Duration,
    /// How long a command that sends no reply on success (guest-shutdown) waits for an error
    /// reply before it counts as accepted (1 s).
    pub no_reply_grace: Duration,
    /// Bound on one incoming message (72 MiB, enough for a 48 MiB guest-file-read).
    pub max_message_len: usize,
    /// Send an `id` with each request and check the echo (true). Replies are correlated by
    /// order after a sync in any case, so agents that do not echo ids still work; a reply with
    /// a different id is a protocol error.
    pub request_ids: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(5),
            long_timeout: Duration::from_secs(60),
            command_timeouts: HashMap::new(),
            connect_timeout: Duration::from_secs(5),
            sync_retry_interval: Duration::from_secs(2),
            no_reply_grace: Duration::from_secs(1),
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            request_ids: true,
        }
    }
}

impl Config {
    /// The deadline a command gets by default.
    pub fn timeout_for(&self, command: &str, long_running: bool) -> Duration {
        match self.command_timeouts.get(command) {
            Some(t) => *t,
            None if long_running => self.long_timeout,
            None => self.default_timeout,
        }
    }
}

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
