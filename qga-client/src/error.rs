//! The client's error type.

use std::path::PathBuf;
use std::time::Duration;

use qga_proto::codec::FrameError;
use qga_proto::message::{ErrorBody, ErrorClass, MessageError};

/// A `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a call can fail with. Errors the agent returned ([`Error::Agent`]) are kept
/// apart from transport, timeout and decoding errors.
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
        /// The deadline that passed.
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
        /// The deadline that passed.
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
}

/// How the peer broke the protocol.
#[derive(Debug, thiserror::Error)]
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
    /// True for [`Error::Timeout`], [`Error::QmpTimeout`] and [`Error::ExecTimeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. } | Self::QmpTimeout { .. } | Self::ExecTimeout { .. }
        )
    }

    /// True when the connection is gone.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed)
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
