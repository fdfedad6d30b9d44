//! The CLI's errors and their exit codes, in one place.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::exit;

/// Everything that ends a run with `qga: <message>` on stderr.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A bad command line that clap could not catch.
    Usage(String),
    /// From the guest agent client.
    Agent(qga_client::Error),
    /// From the QMP client: same errors, worded for QEMU's monitor.
    Qmp {
        /// The QMP socket.
        socket: PathBuf,
        /// What failed.
        error: qga_client::Error,
    },
    /// A local file or stream.
    Local {
        /// What we were doing (`"cannot read /tmp/x"`).
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// Anything else, with its exit code.
    Other {
        /// The exit code.
        code: u8,
        /// The message.
        message: String,
    },
}

impl CliError {
    pub(crate) fn local(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Local {
            what: what.into(),
            source,
        }
    }

    /// The whole deadline passed (a QGA call that the command's deadline cut short).
    pub(crate) fn agent_timeout(command: &str, after: Duration) -> Self {
        Self::Agent(qga_client::Error::Timeout {
            command: command.to_owned(),
            after,
        })
    }

    /// The whole deadline passed (the backstop around a QMP call).
    pub(crate) fn qmp_timeout(socket: PathBuf, command: &str, after: Duration) -> Self {
        Self::Qmp {
            socket,
            error: qga_client::Error::Timeout {
                command: command.to_owned(),
                after,
            },
        }
    }

    /// The process exit code.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => exit::USAGE,
            Self::Agent(e) | Self::Qmp { error: e, .. } => client_code(e),
            Self::Local { .. } => exit::IO,
            Self::Other { code, .. } => *code,
        }
    }

    /// The message followed by its chain of causes, `a: b: c`.
    pub(crate) fn report(&self) -> String {
        use std::error::Error as _;
        let mut text = self.to_string();
        let mut source = self.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}

fn client_code(e: &qga_client::Error) -> u8 {
    use qga_client::Error as E;
    match e {
        E::DomainNotFound { .. } => exit::NO_DOMAIN,
        E::Connect { .. } | E::NotConnected | E::DomainNotRunning { .. } => exit::UNAVAILABLE,
        e if e.is_timeout() => exit::TIMEOUT,
        E::Agent { .. } => exit::AGENT,
        E::InvalidArgument(_) => exit::USAGE,
        _ => exit::IO,
    }
}

impl From<qga_client::Error> for CliError {
    fn from(e: qga_client::Error) -> Self {
        Self::Agent(e)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use qga_client::Error as E;
        match self {
            Self::Usage(message) | Self::Other { message, .. } => f.write_str(message),
            Self::Agent(e) => fmt::Display::fmt(e, f),
            // The client's own wording speaks of the guest agent; say QEMU here.
            Self::Qmp { socket, error } => match error {
                E::Connect { .. } => {
                    write!(f, "cannot connect to the QMP socket {}", socket.display())
                }
                E::Timeout { command, after } => write!(
                    f,
                    "timed out after {after:?} waiting for QEMU ({command}) on {}: QEMU may not \
                     be running, or another client may hold its QMP socket (QEMU serves one \
                     client per monitor)",
                    socket.display()
                ),
                E::Closed => f.write_str("QEMU closed the QMP connection"),
                other => fmt::Display::fmt(other, f),
            },
            Self::Local { what, .. } => f.write_str(what),
        }
    }
}

impl std::error::Error for CliError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Display already shows `e` itself: continue with its causes.
            Self::Agent(e) | Self::Qmp { error: e, .. } => e.source(),
            Self::Local { source, .. } => Some(source),
            Self::Usage(_) | Self::Other { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_chains() {
        let connect = CliError::Agent(qga_client::Error::Connect {
            path: "/no/such.sock".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
        assert_eq!(connect.exit_code(), exit::UNAVAILABLE);
        let text = connect.report();
        assert!(
            text.contains("/no/such.sock") && text.contains(": "),
            "{text}"
        );

        let timeout = CliError::agent_timeout("guest-ping", Duration::from_millis(500));
        assert_eq!(timeout.exit_code(), exit::TIMEOUT);
        assert!(timeout.report().contains("timed out"));
        assert!(timeout.report().contains("another client"));

        let qmp = CliError::qmp_timeout("/q.sock".into(), "query-status", Duration::from_secs(1));
        assert_eq!(qmp.exit_code(), exit::TIMEOUT);
        assert!(qmp.report().contains("QEMU"), "{}", qmp.report());

        let missing = CliError::Agent(qga_client::Error::DomainNotFound {
            domain: "'vm-x'".into(),
        });
        assert_eq!(missing.exit_code(), exit::NO_DOMAIN);
        assert_eq!(missing.report(), "libvirt domain 'vm-x' not found");

        let local = CliError::local("cannot read x", std::io::Error::other("boom"));
        assert_eq!(local.exit_code(), exit::IO);
        assert_eq!(local.report(), "cannot read x: boom");
        assert_eq!(CliError::Usage("u".into()).exit_code(), exit::USAGE);
    }
}
