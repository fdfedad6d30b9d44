//! Connection-level procedures: authentication, open/close and probes.
//!
//! libvirt's own client (`doRemoteOpen` in `src/remote/remote_driver.c`) opens a connection in
//! this order, and a client of this crate should do the same:
//!
//! 1. [`AuthList`]; on a local UNIX socket with the default configuration the answer is
//!    [`AuthType::None`] (nothing to do), or [`AuthType::Polkit`] ([`AuthPolkit`]).
//! 2. [`ConnectSupportsFeature`] with [`feature::PROGRAM_KEEPALIVE`]: the keepalive probe.
//!    If the server says yes, the client may send keepalive pings
//!    ([`crate::Connection::enable_keepalive`]). Keepalive is an RPC-level feature that
//!    libvirtd answers itself, not its hypervisor driver (`virDriverFeatureIsGlobal`), and
//!    asking for it is also what makes libvirtd start pinging this client (libvirtd.conf:
//!    clients "need to connect in order to ask for keepalive"); [`crate::Connection`] answers
//!    those pings whether or not it sends its own.
//! 3. [`ConnectOpen`] with the URI (`qemu:///system`).
//!
//! [`ConnectGetLibVersion`] is a cheap probe once open; [`ConnectClose`] ends the session.

use crate::call::{call, void_args};
use crate::packet::{REMOTE_PROGRAM as PROG, REMOTE_PROTOCOL_VERSION as VERS};
use crate::remote::{REMOTE_AUTH_TYPE_LIST_MAX, proc, strings};
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError};

/// `enum remote_auth_type`. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    /// `REMOTE_AUTH_NONE` (0).
    None,
    /// `REMOTE_AUTH_SASL` (1).
    Sasl,
    /// `REMOTE_AUTH_POLKIT` (2).
    Polkit,
    /// Any other value.
    Other(i32),
}

impl From<i32> for AuthType {
    fn from(v: i32) -> Self {
        match v {
            0 => Self::None,
            1 => Self::Sasl,
            2 => Self::Polkit,
            other => Self::Other(other),
        }
    }
}

impl From<AuthType> for i32 {
    fn from(t: AuthType) -> Self {
        match t {
            AuthType::None => 0,
            AuthType::Sasl => 1,
            AuthType::Polkit => 2,
            AuthType::Other(v) => v,
        }
    }
}

/// `REMOTE_PROC_AUTH_LIST` (66): no arguments; replies [`AuthListReply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthList;
void_args!(AuthList);
call!(AuthList => AuthListReply, PROG, VERS, proc::AUTH_LIST, "REMOTE_PROC_AUTH_LIST");

/// `struct remote_auth_list_ret { remote_auth_type types<REMOTE_AUTH_TYPE_LIST_MAX>; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthListReply {
    /// `types`: the methods the server accepts, in its order of preference.
    pub types: Vec<AuthType>,
}

impl XdrEncode for AuthListReply {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.array(&self.types, REMOTE_AUTH_TYPE_LIST_MAX, |e, t| {
            e.i32(i32::from(*t));
            Ok(())
        })
    }
}

impl XdrDecode for AuthListReply {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        let types = d.array(REMOTE_AUTH_TYPE_LIST_MAX, 4, |d| {
            d.i32().map(AuthType::from)
        })?;
        Ok(Self { types })
    }
}

/// `REMOTE_PROC_AUTH_POLKIT` (70): no arguments; replies
/// `struct remote_auth_polkit_ret { int complete; }` as a bool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthPolkit;
void_args!(AuthPolkit);
call!(AuthPolkit => Flag, PROG, VERS, proc::AUTH_POLKIT, "REMOTE_PROC_AUTH_POLKIT");

/// A struct holding one `int` used as a boolean (`complete`, `supported`, ...). Decodes any
/// non-zero value as true, as libvirt's C code does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flag(pub bool);

impl XdrEncode for Flag {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.i32(i32::from(self.0));
        Ok(())
    }
}

impl XdrDecode for Flag {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self(d.i32()? != 0))
    }
}

/// Flags of [`ConnectOpen`] (`virConnectFlags`).
pub mod open_flags {
    /// `VIR_CONNECT_RO`: a read-only connection.
    pub const RO: u32 = 1;
    /// `VIR_CONNECT_NO_ALIASES`: do not resolve URI aliases.
    pub const NO_ALIASES: u32 = 2;
}

/// `REMOTE_PROC_CONNECT_OPEN` (1):
/// `struct remote_connect_open_args { remote_string name; unsigned int flags; }`; no reply
/// data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectOpen {
    /// `name`: the URI to open on the server, e.g. `qemu:///system`. `None` lets the server
    /// pick its default.
    pub name: Option<String>,
    /// `flags`: see [`open_flags`].
    pub flags: u32,
}

impl ConnectOpen {
    /// Opens `uri` read-write.
    #[must_use]
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            name: Some(uri.into()),
            flags: 0,
        }
    }
}

impl XdrEncode for ConnectOpen {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        strings::encode_opt(e, self.name.as_deref())?;
        e.u32(self.flags);
        Ok(())
    }
}

impl XdrDecode for ConnectOpen {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            name: strings::decode_opt(d)?,
            flags: d.u32()?,
        })
    }
}
call!(ConnectOpen => (), PROG, VERS, proc::CONNECT_OPEN, "REMOTE_PROC_CONNECT_OPEN");

/// `REMOTE_PROC_CONNECT_CLOSE` (2): no arguments, no reply data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectClose;
void_args!(ConnectClose);
call!(ConnectClose => (), PROG, VERS, proc::CONNECT_CLOSE, "REMOTE_PROC_CONNECT_CLOSE");

/// `REMOTE_PROC_CONNECT_GET_LIB_VERSION` (157): no arguments; replies
/// `struct remote_connect_get_lib_version_ret { unsigned hyper lib_ver; }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectGetLibVersion;
void_args!(ConnectGetLibVersion);
call!(ConnectGetLibVersion => LibVersion, PROG, VERS, proc::CONNECT_GET_LIB_VERSION,
    "REMOTE_PROC_CONNECT_GET_LIB_VERSION");

/// libvirt's version number, `major * 1_000_000 + minor * 1_000 + release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LibVersion(pub u64);

impl LibVersion {
    /// `(major, minor, release)`.
    #[must_use]
    pub fn parts(self) -> (u64, u64, u64) {
        (self.0 / 1_000_000, self.0 / 1_000 % 1_000, self.0 % 1_000)
    }
}

impl std::fmt::Display for LibVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (a, b, c) = self.parts();
        write!(f, "{a}.{b}.{c}")
    }
}

impl XdrEncode for LibVersion {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.u64(self.0);
        Ok(())
    }
}

impl XdrDecode for LibVersion {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        d.u64().map(Self)
    }
}

/// Feature numbers of `virDrvFeature` (`src/libvirt_internal.h`) for
/// [`ConnectSupportsFeature`].
pub mod feature {
    /// `VIR_DRV_FEATURE_FD_PASSING`.
    pub const FD_PASSING: i32 = 8;
    /// `VIR_DRV_FEATURE_TYPED_PARAM_STRING`.
    pub const TYPED_PARAM_STRING: i32 = 9;
    /// `VIR_DRV_FEATURE_PROGRAM_KEEPALIVE`: the server speaks the keepalive program.
    pub const PROGRAM_KEEPALIVE: i32 = 10;
    /// `VIR_DRV_FEATURE_REMOTE_EVENT_CALLBACK`: `*_CALLBACK_REGISTER_ANY` and the callback
    /// events exist.
    pub const REMOTE_EVENT_CALLBACK: i32 = 14;
    /// `VIR_DRV_FEATURE_REMOTE_CLOSE_CALLBACK`.
    pub const REMOTE_CLOSE_CALLBACK: i32 = 15;
}

/// `REMOTE_PROC_CONNECT_SUPPORTS_FEATURE` (60):
/// `struct remote_connect_supports_feature_args { int feature; }`; replies
/// `struct remote_connect_supports_feature_ret { int supported; }` as a [`Flag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectSupportsFeature {
    /// `feature`: see [`feature`].
    pub feature: i32,
}

impl ConnectSupportsFeature {
    /// The keepalive probe.
    pub const KEEPALIVE: Self = Self {
        feature: feature::PROGRAM_KEEPALIVE,
    };
}

crate::remote::xdr_struct!(ConnectSupportsFeature { feature });
call!(ConnectSupportsFeature => Flag, PROG, VERS, proc::CONNECT_SUPPORTS_FEATURE,
    "REMOTE_PROC_CONNECT_SUPPORTS_FEATURE");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Call;
    use crate::packet::MAX_PACKET_LEN;
    use crate::xdr::{from_slice, to_vec};

    /// CONNECT_OPEN("qemu:///system", 0) with serial 1, written out by hand from
    /// virnetprotocol.x (header) and remote_protocol.x (remote_connect_open_args).
    #[rustfmt::skip]
    const CONNECT_OPEN_PACKET: [u8; 56] = [
        0x00, 0x00, 0x00, 0x38, // length 56, counting itself
        0x20, 0x00, 0x80, 0x86, // prog REMOTE_PROGRAM
        0x00, 0x00, 0x00, 0x01, // vers 1
        0x00, 0x00, 0x00, 0x01, // proc REMOTE_PROC_CONNECT_OPEN
        0x00, 0x00, 0x00, 0x00, // type VIR_NET_CALL
        0x00, 0x00, 0x00, 0x01, // serial 1
        0x00, 0x00, 0x00, 0x00, // status VIR_NET_OK
        0x00, 0x00, 0x00, 0x01, // name: remote_string present
        0x00, 0x00, 0x00, 0x0e, // length 14
        b'q', b'e', b'm', b'u', b':', b'/', b'/', b'/', b's', b'y', b's', b't', b'e', b'm',
        0x00, 0x00,             // padding to 16
        0x00, 0x00, 0x00, 0x00, // flags
    ];

    #[test]
    fn connect_open_is_byte_exact() {
        let packet = ConnectOpen::new("qemu:///system")
            .encode_packet(1, MAX_PACKET_LEN)
            .unwrap();
        assert_eq!(&packet[..], CONNECT_OPEN_PACKET);
        let args: ConnectOpen = from_slice(&CONNECT_OPEN_PACKET[28..]).unwrap();
        assert_eq!(args.name.as_deref(), Some("qemu:///system"));
        // A NULL name is a single zero word.
        assert_eq!(to_vec(&ConnectOpen::default()).unwrap(), [0; 8]);
    }

    #[test]
    fn numbers() {
        assert_eq!(ConnectOpen::PROCEDURE, 1);
        assert_eq!(ConnectClose::PROCEDURE, 2);
        assert_eq!(ConnectSupportsFeature::PROCEDURE, 60);
        assert_eq!(AuthList::PROCEDURE, 66);
        assert_eq!(AuthPolkit::PROCEDURE, 70);
        assert_eq!(ConnectGetLibVersion::PROCEDURE, 157);
        assert_eq!(ConnectOpen::PROGRAM, 0x2000_8086);
    }

    #[test]
    fn replies() {
        let r = AuthList::decode_reply(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 9]).unwrap();
        assert_eq!(r.types, [AuthType::None, AuthType::Other(9)]);
        assert!(AuthList::decode_reply(&[0, 0, 0, 21]).is_err());
        assert_eq!(AuthPolkit::decode_reply(&[0, 0, 0, 1]).unwrap(), Flag(true));
        assert_eq!(
            ConnectSupportsFeature::decode_reply(&[0, 0, 0, 0]).unwrap(),
            Flag(false)
        );
        assert_eq!(
            to_vec(&ConnectSupportsFeature::KEEPALIVE).unwrap(),
            [0, 0, 0, 10]
        );
        let v = ConnectGetLibVersion::decode_reply(&9_010_000u64.to_be_bytes()).unwrap();
        assert_eq!(v.to_string(), "9.10.0");
        ConnectClose::decode_reply(&[]).unwrap();
        assert!(ConnectClose::decode_reply(&[0]).is_err());
    }
}
