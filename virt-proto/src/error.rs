//! Errors the server returns: `remote_error` (`remote_protocol.x`, identical on the wire to
//! `virNetMessageError` in `virnetprotocol.x`), with the codes and domains of
//! `include/libvirt/virterror.h`.

use crate::types::{Domain, Uuid};
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError};

/// `REMOTE_STRING_MAX`, which bounds the strings of `remote_error`.
const STRING_MAX: u32 = crate::remote::REMOTE_STRING_MAX;

/// A `virErrorNumber`. An open set: codes newer than this crate are kept as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub i32);

impl ErrorCode {
    /// `VIR_ERR_OK`.
    pub const OK: Self = Self(0);
    /// `VIR_ERR_INTERNAL_ERROR`.
    pub const INTERNAL_ERROR: Self = Self(1);
    /// `VIR_ERR_NO_MEMORY`.
    pub const NO_MEMORY: Self = Self(2);
    /// `VIR_ERR_NO_SUPPORT`: the driver does not implement the call.
    pub const NO_SUPPORT: Self = Self(3);
    /// `VIR_ERR_NO_CONNECT`.
    pub const NO_CONNECT: Self = Self(5);
    /// `VIR_ERR_INVALID_CONN`.
    pub const INVALID_CONN: Self = Self(6);
    /// `VIR_ERR_INVALID_DOMAIN`.
    pub const INVALID_DOMAIN: Self = Self(7);
    /// `VIR_ERR_INVALID_ARG`.
    pub const INVALID_ARG: Self = Self(8);
    /// `VIR_ERR_OPERATION_FAILED`.
    pub const OPERATION_FAILED: Self = Self(9);
    /// `VIR_ERR_OPERATION_DENIED`: forbidden on a read-only connection.
    pub const OPERATION_DENIED: Self = Self(29);
    /// `VIR_ERR_SYSTEM_ERROR`.
    pub const SYSTEM_ERROR: Self = Self(38);
    /// `VIR_ERR_RPC`.
    pub const RPC: Self = Self(39);
    /// `VIR_ERR_NO_DOMAIN`: no such domain, or it disappeared.
    pub const NO_DOMAIN: Self = Self(42);
    /// `VIR_ERR_AUTH_FAILED`.
    pub const AUTH_FAILED: Self = Self(45);
    /// `VIR_ERR_OPERATION_INVALID`: not applicable now, typically "domain is not running".
    pub const OPERATION_INVALID: Self = Self(55);
    /// `VIR_ERR_CONFIG_UNSUPPORTED`.
    pub const CONFIG_UNSUPPORTED: Self = Self(67);
    /// `VIR_ERR_OPERATION_TIMEOUT`.
    pub const OPERATION_TIMEOUT: Self = Self(68);
    /// `VIR_ERR_ARGUMENT_UNSUPPORTED`: valid use the driver does not support; also "QEMU guest
    /// agent is not configured".
    pub const ARGUMENT_UNSUPPORTED: Self = Self(74);
    /// `VIR_ERR_OPERATION_ABORTED`.
    pub const OPERATION_ABORTED: Self = Self(78);
    /// `VIR_ERR_AUTH_CANCELLED`.
    pub const AUTH_CANCELLED: Self = Self(79);
    /// `VIR_ERR_OPERATION_UNSUPPORTED`.
    pub const OPERATION_UNSUPPORTED: Self = Self(84);
    /// `VIR_ERR_AGENT_UNRESPONSIVE`: the guest agent is unresponsive, not running or not
    /// usable.
    pub const AGENT_UNRESPONSIVE: Self = Self(86);
    /// `VIR_ERR_RESOURCE_BUSY`.
    pub const RESOURCE_BUSY: Self = Self(87);
    /// `VIR_ERR_ACCESS_DENIED`: refused by the access control manager.
    pub const ACCESS_DENIED: Self = Self(88);
    /// `VIR_ERR_AUTH_UNAVAILABLE`.
    pub const AUTH_UNAVAILABLE: Self = Self(94);
    /// `VIR_ERR_AGENT_UNSYNCED`: the agent answered guest-sync with the wrong id (deprecated
    /// upstream, still sent by older libvirt).
    pub const AGENT_UNSYNCED: Self = Self(97);
    /// `VIR_ERR_NO_HOSTNAME`.
    pub const NO_HOSTNAME: Self = Self(108);

    /// The `VIR_ERR_*` name of a code this crate knows.
    #[must_use]
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::OK => "VIR_ERR_OK",
            Self::INTERNAL_ERROR => "VIR_ERR_INTERNAL_ERROR",
            Self::NO_MEMORY => "VIR_ERR_NO_MEMORY",
            Self::NO_SUPPORT => "VIR_ERR_NO_SUPPORT",
            Self::NO_CONNECT => "VIR_ERR_NO_CONNECT",
            Self::INVALID_CONN => "VIR_ERR_INVALID_CONN",
            Self::INVALID_DOMAIN => "VIR_ERR_INVALID_DOMAIN",
            Self::INVALID_ARG => "VIR_ERR_INVALID_ARG",
            Self::OPERATION_FAILED => "VIR_ERR_OPERATION_FAILED",
            Self::OPERATION_DENIED => "VIR_ERR_OPERATION_DENIED",
            Self::SYSTEM_ERROR => "VIR_ERR_SYSTEM_ERROR",
            Self::RPC => "VIR_ERR_RPC",
            Self::NO_DOMAIN => "VIR_ERR_NO_DOMAIN",
            Self::AUTH_FAILED => "VIR_ERR_AUTH_FAILED",
            Self::OPERATION_INVALID => "VIR_ERR_OPERATION_INVALID",
            Self::CONFIG_UNSUPPORTED => "VIR_ERR_CONFIG_UNSUPPORTED",
            Self::OPERATION_TIMEOUT => "VIR_ERR_OPERATION_TIMEOUT",
            Self::ARGUMENT_UNSUPPORTED => "VIR_ERR_ARGUMENT_UNSUPPORTED",
            Self::OPERATION_ABORTED => "VIR_ERR_OPERATION_ABORTED",
            Self::AUTH_CANCELLED => "VIR_ERR_AUTH_CANCELLED",
            Self::OPERATION_UNSUPPORTED => "VIR_ERR_OPERATION_UNSUPPORTED",
            Self::AGENT_UNRESPONSIVE => "VIR_ERR_AGENT_UNRESPONSIVE",
            Self::RESOURCE_BUSY => "VIR_ERR_RESOURCE_BUSY",
            Self::ACCESS_DENIED => "VIR_ERR_ACCESS_DENIED",
            Self::AUTH_UNAVAILABLE => "VIR_ERR_AUTH_UNAVAILABLE",
            Self::AGENT_UNSYNCED => "VIR_ERR_AGENT_UNSYNCED",
            Self::NO_HOSTNAME => "VIR_ERR_NO_HOSTNAME",
            _ => return None,
        })
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A `virErrorDomain`: which part of libvirt raised the error. An open set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorDomain(pub i32);

impl ErrorDomain {
    /// `VIR_FROM_NONE`.
    pub const NONE: Self = Self(0);
    /// `VIR_FROM_DOM`.
    pub const DOM: Self = Self(6);
    /// `VIR_FROM_RPC`.
    pub const RPC: Self = Self(7);
    /// `VIR_FROM_QEMU`.
    pub const QEMU: Self = Self(10);
    /// `VIR_FROM_REMOTE`.
    pub const REMOTE: Self = Self(13);
    /// `VIR_FROM_DOMAIN`.
    pub const DOMAIN: Self = Self(20);
    /// `VIR_FROM_AUTH`.
    pub const AUTH: Self = Self(46);
    /// `VIR_FROM_ACCESS`.
    pub const ACCESS: Self = Self(55);
    /// `VIR_FROM_POLKIT`.
    pub const POLKIT: Self = Self(60);
}

/// A `virErrorLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorLevel(pub i32);

impl ErrorLevel {
    /// `VIR_ERR_NONE`.
    pub const NONE: Self = Self(0);
    /// `VIR_ERR_WARNING`.
    pub const WARNING: Self = Self(1);
    /// `VIR_ERR_ERROR`.
    pub const ERROR: Self = Self(2);
}

/// An error returned by libvirt for a call (`struct remote_error`).
///
/// The `dom` and `net` members are marked unused in the `.x` file; `dom` is kept, `net` is read
/// and dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("libvirt error {code} from domain {}: {}", domain.0, message.as_deref().unwrap_or("(no message)"))]
#[non_exhaustive]
pub struct LibvirtError {
    /// `code`.
    pub code: ErrorCode,
    /// `domain`: the libvirt subsystem, not a VM.
    pub domain: ErrorDomain,
    /// `message`: the human-readable text.
    pub message: Option<String>,
    /// `level`.
    pub level: ErrorLevel,
    /// `dom` (unused by current servers).
    pub dom: Option<Domain>,
    /// `str1`.
    pub str1: Option<String>,
    /// `str2`.
    pub str2: Option<String>,
    /// `str3`.
    pub str3: Option<String>,
    /// `int1`.
    pub int1: i32,
    /// `int2`.
    pub int2: i32,
}

impl LibvirtError {
    /// An error with just a code, a domain and a message (level `VIR_ERR_ERROR`).
    #[must_use]
    pub fn new(code: ErrorCode, domain: ErrorDomain, message: impl Into<String>) -> Self {
        Self {
            code,
            domain,
            message: Some(message.into()),
            level: ErrorLevel::ERROR,
            dom: None,
            str1: None,
            str2: None,
            str3: None,
            int1: 0,
            int2: 0,
        }
    }

    /// No such domain (`VIR_ERR_NO_DOMAIN`).
    #[must_use]
    pub fn is_no_domain(&self) -> bool {
        self.code == ErrorCode::NO_DOMAIN
    }

    /// The operation needs a running domain, or is otherwise not valid in its current state
    /// (`VIR_ERR_OPERATION_INVALID`, which is what libvirt returns for "domain is not
    /// running").
    #[must_use]
    pub fn is_not_running(&self) -> bool {
        self.code == ErrorCode::OPERATION_INVALID
    }

    /// The guest agent cannot be used right now: not connected, unresponsive or out of sync
    /// (`VIR_ERR_AGENT_UNRESPONSIVE`, `VIR_ERR_AGENT_UNSYNCED`). Retrying later may work. An
    /// agent that is not configured for the domain at all is `VIR_ERR_ARGUMENT_UNSUPPORTED`,
    /// see [`Self::is_unsupported`].
    #[must_use]
    pub fn is_agent_unavailable(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::AGENT_UNRESPONSIVE | ErrorCode::AGENT_UNSYNCED
        )
    }

    /// Timed out inside libvirt (`VIR_ERR_OPERATION_TIMEOUT`), e.g. waiting for the agent.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        self.code == ErrorCode::OPERATION_TIMEOUT
    }

    /// The driver, the hypervisor or the guest does not support this (`VIR_ERR_NO_SUPPORT`,
    /// `VIR_ERR_ARGUMENT_UNSUPPORTED`, `VIR_ERR_OPERATION_UNSUPPORTED`). Retrying will not
    /// help.
    #[must_use]
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::NO_SUPPORT
                | ErrorCode::ARGUMENT_UNSUPPORTED
                | ErrorCode::OPERATION_UNSUPPORTED
        )
    }

    /// Authentication or authorisation failed (`VIR_ERR_AUTH_FAILED`,
    /// `VIR_ERR_AUTH_CANCELLED`, `VIR_ERR_AUTH_UNAVAILABLE`, `VIR_ERR_ACCESS_DENIED`,
    /// `VIR_ERR_OPERATION_DENIED`).
    #[must_use]
    pub fn is_access_denied(&self) -> bool {
        matches!(
            self.code,
            ErrorCode::AUTH_FAILED
                | ErrorCode::AUTH_CANCELLED
                | ErrorCode::AUTH_UNAVAILABLE
                | ErrorCode::ACCESS_DENIED
                | ErrorCode::OPERATION_DENIED
        )
    }

    /// `VIR_ERR_INTERNAL_ERROR`.
    #[must_use]
    pub fn is_internal(&self) -> bool {
        self.code == ErrorCode::INTERNAL_ERROR
    }
}

fn opt_string(d: &mut Decoder<'_>) -> Result<Option<String>, XdrError> {
    // Error texts are never a reason to fail: invalid UTF-8 is replaced, not rejected.
    d.optional(|d| {
        d.string_bytes(STRING_MAX)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    })
}

fn put_opt_string(e: &mut Encoder<'_>, s: Option<&String>) -> Result<(), XdrError> {
    e.optional(s, |e, s| e.string(s, STRING_MAX))
}

// Mirrors `struct remote_error` (remote_protocol.x) / `struct virNetMessageError`
// (virnetprotocol.x).
impl XdrDecode for LibvirtError {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        let code = ErrorCode(d.i32()?);
        let domain = ErrorDomain(d.i32()?);
        let message = opt_string(d)?;
        let level = ErrorLevel(d.i32()?);
        let dom = d.optional(Domain::decode)?;
        let str1 = opt_string(d)?;
        let str2 = opt_string(d)?;
        let str3 = opt_string(d)?;
        let int1 = d.i32()?;
        let int2 = d.i32()?;
        // `remote_network net`: remote_nonnull_network { name, uuid }, unused.
        d.optional(|d| {
            d.string_bytes(STRING_MAX)?;
            Uuid::decode(d)
        })?;
        Ok(Self {
            code,
            domain,
            message,
            level,
            dom,
            str1,
            str2,
            str3,
            int1,
            int2,
        })
    }
}

impl XdrEncode for LibvirtError {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.i32(self.code.0);
        e.i32(self.domain.0);
        put_opt_string(e, self.message.as_ref())?;
        e.i32(self.level.0);
        e.optional(self.dom.as_ref(), |e, d| d.encode(e))?;
        put_opt_string(e, self.str1.as_ref())?;
        put_opt_string(e, self.str2.as_ref())?;
        put_opt_string(e, self.str3.as_ref())?;
        e.i32(self.int1);
        e.i32(self.int2);
        e.bool(false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdr::{from_slice, to_vec};

    /// "domain is not running" as libvirtd sends it, written out from the .x definition.
    const NOT_RUNNING: [u8; 80] = [
        0, 0, 0, 55, // code VIR_ERR_OPERATION_INVALID
        0, 0, 0, 10, // domain VIR_FROM_QEMU
        0, 0, 0, 1, // message present
        0, 0, 0, 32, // length
        b'R', b'e', b'q', b'u', b'e', b's', b't', b'e', b'd', b' ', b'o', b'p', b'e', b'r', b'a',
        b't', b'i', b'o', b'n', b' ', b'i', b's', b' ', b'n', b'o', b't', b' ', b'v', b'a', b'l',
        b'i', b'd', // 32 bytes, no padding
        0, 0, 0, 2, // level VIR_ERR_ERROR
        0, 0, 0, 0, // dom absent
        0, 0, 0, 0, // str1 absent
        0, 0, 0, 0, // str2
        0, 0, 0, 0, // str3
        0, 0, 0, 0, // int1
        0, 0, 0, 0, // int2
        0, 0, 0, 0, // net absent
    ];

    #[test]
    fn decodes_a_hand_written_error() {
        let e: LibvirtError = from_slice(&NOT_RUNNING).unwrap();
        assert_eq!(e.code, ErrorCode::OPERATION_INVALID);
        assert_eq!(e.domain, ErrorDomain::QEMU);
        assert_eq!(e.level, ErrorLevel::ERROR);
        assert_eq!(
            e.message.as_deref(),
            Some("Requested operation is not valid")
        );
        assert!(e.is_not_running());
        assert!(!e.is_no_domain());
        assert_eq!(
            e.to_string(),
            "libvirt error 55 (VIR_ERR_OPERATION_INVALID) from domain 10: Requested operation is not valid"
        );
        assert_eq!(to_vec(&e).unwrap(), NOT_RUNNING);
    }

    #[test]
    fn predicates() {
        let mk = |c| LibvirtError::new(c, ErrorDomain::QEMU, "x");
        assert!(mk(ErrorCode::NO_DOMAIN).is_no_domain());
        assert!(mk(ErrorCode::AGENT_UNRESPONSIVE).is_agent_unavailable());
        assert!(mk(ErrorCode::AGENT_UNSYNCED).is_agent_unavailable());
        assert!(mk(ErrorCode::OPERATION_TIMEOUT).is_timeout());
        for c in [
            ErrorCode::NO_SUPPORT,
            ErrorCode::ARGUMENT_UNSUPPORTED,
            ErrorCode::OPERATION_UNSUPPORTED,
        ] {
            assert!(mk(c).is_unsupported());
        }
        assert!(mk(ErrorCode::ACCESS_DENIED).is_access_denied());
        assert!(mk(ErrorCode::AUTH_FAILED).is_access_denied());
        assert!(mk(ErrorCode::INTERNAL_ERROR).is_internal());
        let other = mk(ErrorCode(4242));
        assert!(!other.is_unsupported() && !other.is_timeout());
        assert_eq!(ErrorCode(4242).to_string(), "4242");
    }

    #[test]
    fn invalid_utf8_message_is_kept_lossily_and_net_is_skipped() {
        let mut bytes = NOT_RUNNING.to_vec();
        bytes[16] = 0xff;
        // net present: name "n" + 16-byte uuid.
        bytes.truncate(76);
        bytes.extend([0, 0, 0, 1, 0, 0, 0, 1, b'n', 0, 0, 0]);
        bytes.extend([7; 16]);
        let e: LibvirtError = from_slice(&bytes).unwrap();
        assert!(e.message.unwrap().starts_with('\u{fffd}'));
    }
}
