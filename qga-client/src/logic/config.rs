//! Client settings, the same for the async and the blocking client.

use std::collections::HashMap;
use std::time::Duration;

use qga_proto::codec::DEFAULT_MAX_MESSAGE_LEN;

/// Client settings. Build one with `Client::builder` (async) or
/// [`blocking::Client::builder`](crate::blocking::Client::builder), or fill one in and hand it
/// to a builder's `config`.
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
