//! The client's error type.

use std::path::PathBuf;
use std::time::Duration;

use qga_proto::codec::FrameError;
use qga_proto::message::{ErrorBody, ErrorClass, MessageError};

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a call can fail with. Errors the agent returned ([`Error::Agent`]) are kept
/// apart from transport, timeout and decoding errors.
///
/// `Clone`, so that one outcome can be handed to several waiters. [`std::io::Error`] is not
/// `Clone`: a clone of an IO error keeps its kind, its OS error code and its text (so it
/// displays the same), but not a custom inner error's own `source()`. There is no
/// `PartialEq`: IO errors have no meaningful equality. The plain-data parts ([`ProtocolError`],
/// [`MessageError`], [`ErrorBody`]) are `PartialEq` for `assert_eq!`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket could not be connected.
    #[error("cannot connect to {}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The agent did not answer in time. Either it is not running, or another client (libvirt,
    /// a forgotten socat) holds its socket: qemu-ga and QEMU serve one client at a time.
    #[error(
        "timed out after {after:?} waiting for the guest agent ({command}): the agent may not be \
         running, or another client (such as libvirt) may hold its socket"
    )]
    Timeout {
        /// The command that was waiting.
        command: String,
        /// How long the call had: its timeout, or less when the deadline of a
        /// [`Client::with_deadline`](crate::Client::with_deadline) handle came first.
        after: Duration,
    },
    /// QEMU's monitor did not answer (or the awaited event did not come) in time.
    #[error("timed out after {after:?} waiting for QMP ({what})")]
    QmpTimeout {
        /// What was awaited.
        what: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// Writing the local copy of guest data failed (the callback of a file read).
    #[error("writing the local copy failed")]
    Local(#[source] std::io::Error),
    /// The agent (or QEMU) closed the connection.
    #[error("the guest agent closed the connection")]
    Closed,
    /// QMP says the guest agent does not have its port open (it is not running), so the call
    /// was not attempted or was abandoned ([`call_if_present`](crate::call_if_present)).
    #[error("the guest agent is not connected")]
    NotConnected,
    /// An IO error on the connection.
    #[error("io error on the guest agent connection")]
    Io(#[from] std::io::Error),
    /// The agent answered with an error.
    #[error("{command} failed in the guest: {error}")]
    Agent {
        /// The command.
        command: String,
        /// The agent's class and description.
        error: ErrorBody,
    },
    /// The reply did not have the shape the command's response type expects.
    #[error("cannot decode the reply to {command}")]
    Decode {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: MessageError,
    },
    /// The peer broke the protocol; the client resynchronises before the next call.
    #[error("protocol error from the guest agent")]
    Protocol(#[source] ProtocolError),
    /// An argument was refused before anything was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A program started with `exec` did not exit before the deadline; it may still run.
    #[error("guest process {pid} did not exit within {after:?}")]
    ExecTimeout {
        /// The guest pid.
        pid: i64,
        /// How long the program had: its timeout, or less when the handle's deadline came
        /// first.
        after: Duration,
    },
    /// A file written to the guest read back differently.
    #[error(
        "{path} in the guest reads back as {actual_size} bytes with sha256 {actual_sha256}, \
         expected {expected_size} bytes with sha256 {expected_sha256}"
    )]
    VerifyFailed {
        /// Guest path.
        path: String,
        /// Bytes written.
        expected_size: u64,
        /// Bytes read back.
        actual_size: u64,
        /// Hex SHA-256 of what was written.
        expected_sha256: String,
        /// Hex SHA-256 of what was read back.
        actual_sha256: String,
    },
    /// A guest file read past the caller's bound (`FileOptions::max_bytes`): a file larger
    /// than asked for, or a guest that never reports the end of the file. Nothing more is
    /// read and the handle is closed.
    #[error("{path} in the guest holds more than {limit} bytes (the bound of this read)")]
    FileTooLarge {
        /// Guest path.
        path: String,
        /// The bound.
        limit: u64,
    },
    /// libvirt has no such domain (libvirt transport): the name or UUID given matches no
    /// domain, running or defined.
    #[error("libvirt domain {domain} not found")]
    DomainNotFound {
        /// The domain as given (name or UUID).
        domain: String,
    },
    /// The domain exists but is not running (shut off, paused, being migrated): libvirt
    /// refused the guest agent call (libvirt transport).
    #[error("libvirt domain {domain} is not running")]
    DomainNotRunning {
        /// The domain as given (name or UUID).
        domain: String,
    },
    /// A libvirt call failed in a way no other variant describes (libvirt transport): an
    /// error libvirt returned (access denied, unsupported, an internal error), a reply that
    /// broke the RPC protocol, or the connection to libvirtd closing during the call. The
    /// source holds libvirt's code and message.
    #[cfg(feature = "libvirt")]
    #[error("libvirt call {procedure} failed")]
    Libvirt {
        /// The procedure (`REMOTE_PROC_DOMAIN_GET_GUEST_INFO`, ...).
        procedure: &'static str,
        /// Why.
        #[source]
        error: virt_proto::ReplyError,
    },
    /// The agent wrote fewer bytes of a chunk than it was sent (normally because the guest's
    /// disk is full). The file in the guest is incomplete; the channel is still in sync.
    ///
    /// Detected by the client: the agent reported success, so this is not an
    /// [`agent_error`](Self::agent_error), nor a timeout or a protocol error. Like
    /// [`Error::VerifyFailed`] it is a file transfer that did not arrive whole.
    #[error(
        "short write to {path} in the guest: the agent wrote {written} of {expected} bytes at \
         offset {offset} (the guest's disk may be full)"
    )]
    ShortWrite {
        /// Guest path.
        path: String,
        /// Where in the file the chunk starts.
        offset: u64,
        /// Bytes the agent says it wrote.
        written: u64,
        /// Bytes of the chunk.
        expected: u64,
    },
}

impl Clone for Error {
    fn clone(&self) -> Self {
        match self {
            Self::Connect { path, source } => Self::Connect {
                path: path.clone(),
                source: clone_io(source),
            },
            Self::Timeout { command, after } => Self::Timeout {
                command: command.clone(),
                after: *after,
            },
            Self::QmpTimeout { what, after } => Self::QmpTimeout {
                what: what.clone(),
                after: *after,
            },
            Self::Local(e) => Self::Local(clone_io(e)),
            Self::Closed => Self::Closed,
            Self::NotConnected => Self::NotConnected,
            Self::Io(e) => Self::Io(clone_io(e)),
            Self::Agent { command, error } => Self::Agent {
                command: command.clone(),
                error: error.clone(),
            },
            Self::Decode { command, source } => Self::Decode {
                command: command.clone(),
                source: source.clone(),
            },
            Self::Protocol(e) => Self::Protocol(e.clone()),
            Self::InvalidArgument(text) => Self::InvalidArgument(text.clone()),
            Self::ExecTimeout { pid, after } => Self::ExecTimeout {
                pid: *pid,
                after: *after,
            },
            Self::VerifyFailed {
                path,
                expected_size,
                actual_size,
                expected_sha256,
                actual_sha256,
            } => Self::VerifyFailed {
                path: path.clone(),
                expected_size: *expected_size,
                actual_size: *actual_size,
                expected_sha256: expected_sha256.clone(),
                actual_sha256: actual_sha256.clone(),
            },
            Self::DomainNotFound { domain } => Self::DomainNotFound {
                domain: domain.clone(),
            },
            Self::DomainNotRunning { domain } => Self::DomainNotRunning {
                domain: domain.clone(),
            },
            #[cfg(feature = "libvirt")]
            Self::Libvirt { procedure, error } => Self::Libvirt {
                procedure,
                error: error.clone(),
            },
            Self::FileTooLarge { path, limit } => Self::FileTooLarge {
                path: path.clone(),
                limit: *limit,
            },
            Self::ShortWrite {
                path,
                offset,
                written,
                expected,
            } => Self::ShortWrite {
                path: path.clone(),
                offset: *offset,
                written: *written,
                expected: *expected,
            },
        }
    }
}

/// An IO error with the same kind, OS error code and text.
fn clone_io(e: &std::io::Error) -> std::io::Error {
    if let Some(code) = e.raw_os_error() {
        return std::io::Error::from_raw_os_error(code);
    }
    let text = e.to_string();
    let bare = std::io::Error::from(e.kind());
    if e.get_ref().is_none() && text == bare.to_string() {
        bare
    } else {
        std::io::Error::new(e.kind(), text)
    }
}

/// How the peer broke the protocol. Plain data: `Clone`, `PartialEq` and `Eq`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A framing error (oversized, interrupted or malformed message, or garbage).
    #[error("bad framing")]
    Frame(#[from] FrameError),
    /// A `0xFF` sentinel outside a handshake.
    #[error("unexpected sync sentinel")]
    UnexpectedSentinel,
    /// The reply carried another request's id.
    #[error("reply id {got} does not match request id {expected}")]
    IdMismatch {
        /// The id we sent.
        expected: u64,
        /// What came back (`null` when absent).
        got: serde_json::Value,
    },
    /// A reply arrived before the request was completely written.
    #[error("reply arrived before the request was sent")]
    EarlyReply,
    /// QMP: the server's first message was not a greeting.
    #[error("expected the QMP greeting")]
    NoGreeting,
}

impl Error {
    /// True for [`Error::Timeout`], [`Error::QmpTimeout`] and [`Error::ExecTimeout`]: also when
    /// the deadline of a [`Client::with_deadline`](crate::Client::with_deadline) handle ended
    /// the call.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::QmpTimeout { .. } | Self::ExecTimeout { .. }
        )
    }

    /// True when the connection is gone: the agent's, or (libvirt transport) the one to
    /// libvirtd.
    pub fn is_closed(&self) -> bool {
        match self {
            Self::Closed => true,
            #[cfg(feature = "libvirt")]
            Self::Libvirt { error, .. } => error.is_closed(),
            _ => false,
        }
    }

    /// The error libvirt returned, if a libvirt call failed with one (libvirt transport).
    #[cfg(feature = "libvirt")]
    pub fn libvirt_error(&self) -> Option<&virt_proto::LibvirtError> {
        match self {
            Self::Libvirt { error, .. } => error.libvirt(),
            _ => None,
        }
    }

    /// The agent's error, if the agent answered with one.
    pub fn agent_error(&self) -> Option<&ErrorBody> {
        match self {
            Self::Agent { error, .. } => Some(error),
            _ => None,
        }
    }

    /// True when the agent does not know the command or has it disabled.
    pub fn is_command_not_found(&self) -> bool {
        self.agent_error()
            .is_some_and(|e| e.class == ErrorClass::CommandNotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use std::io::ErrorKind;

    #[test]
    fn protocol_errors_compare_as_data() {
        let e = ProtocolError::IdMismatch {
            expected: 7,
            got: serde_json::json!("x"),
        };
        assert_eq!(e.clone(), e);
        assert_ne!(e, ProtocolError::EarlyReply);
        assert_eq!(
            ProtocolError::Frame(FrameError::TooLarge { limit: 5 }),
            ProtocolError::from(FrameError::TooLarge { limit: 5 })
        );
    }

    #[test]
    fn clones_display_the_same() {
        let custom = std::io::Error::new(ErrorKind::TimedOut, "connect timed out after 1s");
        let errors = [
            Error::Connect {
                path: "/x.sock".into(),
                source: std::io::Error::from_raw_os_error(2),
            },
            Error::Connect {
                path: "/x.sock".into(),
                source: custom,
            },
            Error::Io(ErrorKind::WriteZero.into()),
            Error::Local(std::io::Error::other("disk on fire")),
            Error::Timeout {
                command: "guest-ping".into(),
                after: Duration::from_millis(1500),
            },
            Error::Protocol(ProtocolError::UnexpectedSentinel),
            Error::ShortWrite {
                path: "/etc/x".into(),
                offset: 4,
                written: 1,
                expected: 3,
            },
        ];
        for e in errors {
            let c = e.clone();
            assert_eq!(c.to_string(), e.to_string());
            assert_eq!(
                c.source().map(ToString::to_string),
                e.source().map(ToString::to_string)
            );
            if let (Error::Connect { source: a, .. }, Error::Connect { source: b, .. }) = (&e, &c) {
                assert_eq!(a.kind(), b.kind());
                assert_eq!(a.raw_os_error(), b.raw_os_error());
            }
        }
    }

    #[test]
    fn a_short_write_is_none_of_the_other_kinds() {
        let e = Error::ShortWrite {
            path: "/var/big".into(),
            offset: 8,
            written: 2,
            expected: 4,
        };
        assert!(!e.is_timeout() && !e.is_closed() && !e.is_command_not_found());
        assert_eq!(e.agent_error(), None);
        assert_eq!(
            e.to_string(),
            "short write to /var/big in the guest: the agent wrote 2 of 4 bytes at offset 8 (the \
             guest's disk may be full)"
        );
    }
}
