//! Domain calls that libvirt answers through the QEMU guest agent.
//!
//! When the agent is missing or stuck these fail with `VIR_ERR_AGENT_UNRESPONSIVE`
//! ([`crate::LibvirtError::is_agent_unavailable`]), and with `VIR_ERR_OPERATION_INVALID`
//! when the domain is not running ([`crate::LibvirtError::is_not_running`]).

use crate::call::call;
use crate::packet::{REMOTE_PROGRAM as PROG, REMOTE_PROTOCOL_VERSION as VERS};
use crate::remote::{
    REMOTE_DOMAIN_AUTHORIZED_SSH_KEYS_MAX, REMOTE_DOMAIN_FSFREEZE_MOUNTPOINTS_MAX,
    REMOTE_DOMAIN_GUEST_INFO_PARAMS_MAX, REMOTE_DOMAIN_INTERFACE_MAX, REMOTE_DOMAIN_IP_ADDR_MAX,
    REMOTE_STRING_MAX, proc, strings, xdr_struct,
};
use crate::types::{Domain, TypedParam};
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError};

/// `VIR_DOMAIN_PASSWORD_ENCRYPTED`: the password is already crypt(3)-encrypted.
pub const PASSWORD_ENCRYPTED: u32 = 1;

/// `REMOTE_PROC_DOMAIN_SET_USER_PASSWORD` (357):
/// `struct remote_domain_set_user_password_args { remote_nonnull_domain dom;
/// remote_string user; remote_string password; unsigned int flags; }`; no reply data.
#[derive(Clone, PartialEq, Eq)]
pub struct DomainSetUserPassword {
    /// `dom`.
    pub dom: Domain,
    /// `user`.
    pub user: Option<String>,
    /// `password` (never shown by `Debug`).
    pub password: Option<String>,
    /// `flags`: [`PASSWORD_ENCRYPTED`] or 0.
    pub flags: u32,
}

impl std::fmt::Debug for DomainSetUserPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainSetUserPassword")
            .field("dom", &self.dom)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("flags", &self.flags)
            .finish()
    }
}

impl XdrEncode for DomainSetUserPassword {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        self.dom.encode(e)?;
        strings::encode_opt(e, self.user.as_deref())?;
        strings::encode_opt(e, self.password.as_deref())?;
        e.u32(self.flags);
        Ok(())
    }
}

impl XdrDecode for DomainSetUserPassword {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            dom: Domain::decode(d)?,
            user: strings::decode_opt(d)?,
            password: strings::decode_opt(d)?,
            flags: d.u32()?,
        })
    }
}
call!(DomainSetUserPassword => (), PROG, VERS, proc::DOMAIN_SET_USER_PASSWORD,
    "REMOTE_PROC_DOMAIN_SET_USER_PASSWORD");

/// The `types` bits of [`DomainGetGuestInfo`] (`virDomainGuestInfoTypes`); 0 asks for all.
pub mod guest_info {
    /// `VIR_DOMAIN_GUEST_INFO_USERS`.
    pub const USERS: u32 = 1 << 0;
    /// `VIR_DOMAIN_GUEST_INFO_OS`.
    pub const OS: u32 = 1 << 1;
    /// `VIR_DOMAIN_GUEST_INFO_TIMEZONE`.
    pub const TIMEZONE: u32 = 1 << 2;
    /// `VIR_DOMAIN_GUEST_INFO_HOSTNAME`.
    pub const HOSTNAME: u32 = 1 << 3;
    /// `VIR_DOMAIN_GUEST_INFO_FILESYSTEM`.
    pub const FILESYSTEM: u32 = 1 << 4;
    /// `VIR_DOMAIN_GUEST_INFO_DISKS`.
    pub const DISKS: u32 = 1 << 5;
    /// `VIR_DOMAIN_GUEST_INFO_INTERFACES`.
    pub const INTERFACES: u32 = 1 << 6;
    /// `VIR_DOMAIN_GUEST_INFO_LOAD`.
    pub const LOAD: u32 = 1 << 7;
}

/// `REMOTE_PROC_DOMAIN_GET_GUEST_INFO` (418):
/// `struct remote_domain_get_guest_info_args { remote_nonnull_domain dom; unsigned int types;
/// unsigned int flags; }`; replies [`TypedParams`]
/// (`remote_typed_param params<REMOTE_DOMAIN_GUEST_INFO_PARAMS_MAX>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainGetGuestInfo {
    /// `dom`.
    pub dom: Domain,
    /// `types`: see [`guest_info`].
    pub types: u32,
    /// `flags` (must be 0).
    pub flags: u32,
}
xdr_struct!(DomainGetGuestInfo { dom, types, flags });
call!(DomainGetGuestInfo => TypedParams, PROG, VERS, proc::DOMAIN_GET_GUEST_INFO,
    "REMOTE_PROC_DOMAIN_GET_GUEST_INFO");

/// A list of typed parameters with the limit `REMOTE_DOMAIN_GUEST_INFO_PARAMS_MAX`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypedParams(pub Vec<TypedParam>);

impl TypedParams {
    /// The value of `field`, if present.
    #[must_use]
    pub fn get(&self, field: &str) -> Option<&crate::types::TypedValue> {
        crate::types::find_param(&self.0, field)
    }
}

impl XdrEncode for TypedParams {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.array(&self.0, REMOTE_DOMAIN_GUEST_INFO_PARAMS_MAX, |e, p| {
            p.encode(e)
        })
    }
}

impl XdrDecode for TypedParams {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        d.array(
            REMOTE_DOMAIN_GUEST_INFO_PARAMS_MAX,
            TypedParam::MIN_XDR_LEN,
            TypedParam::decode,
        )
        .map(Self)
    }
}

/// `source` of [`DomainInterfaceAddresses`] (`virDomainInterfaceAddressesSource`).
pub mod addr_source {
    /// `VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE`: the DHCP leases of libvirt's networks.
    pub const LEASE: u32 = 0;
    /// `VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT`: ask the guest agent.
    pub const AGENT: u32 = 1;
    /// `VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP`: the host's ARP table.
    pub const ARP: u32 = 2;
}

/// `REMOTE_PROC_DOMAIN_INTERFACE_ADDRESSES` (353):
/// `struct remote_domain_interface_addresses_args { remote_nonnull_domain dom;
/// unsigned int source; unsigned int flags; }`; replies [`Interfaces`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInterfaceAddresses {
    /// `dom`.
    pub dom: Domain,
    /// `source`: see [`addr_source`].
    pub source: u32,
    /// `flags` (must be 0).
    pub flags: u32,
}
xdr_struct!(DomainInterfaceAddresses { dom, source, flags });
call!(DomainInterfaceAddresses => Interfaces, PROG, VERS, proc::DOMAIN_INTERFACE_ADDRESSES,
    "REMOTE_PROC_DOMAIN_INTERFACE_ADDRESSES");

/// `struct remote_domain_ip_addr { int type; remote_nonnull_string addr; unsigned int prefix; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpAddr {
    /// `type`: `VIR_IP_ADDR_TYPE_IPV4` (0) or `VIR_IP_ADDR_TYPE_IPV6` (1).
    pub kind: i32,
    /// `addr`, as text.
    pub addr: String,
    /// `prefix`.
    pub prefix: u32,
}

impl IpAddr {
    /// `VIR_IP_ADDR_TYPE_IPV4`.
    pub const IPV4: i32 = 0;
    /// `VIR_IP_ADDR_TYPE_IPV6`.
    pub const IPV6: i32 = 1;
}

impl XdrEncode for IpAddr {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.i32(self.kind);
        e.string(&self.addr, REMOTE_STRING_MAX)?;
        e.u32(self.prefix);
        Ok(())
    }
}

impl XdrDecode for IpAddr {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            kind: d.i32()?,
            addr: d.string(REMOTE_STRING_MAX)?.to_owned(),
            prefix: d.u32()?,
        })
    }
}

/// `struct remote_domain_interface { remote_nonnull_string name; remote_string hwaddr;
/// remote_domain_ip_addr addrs<REMOTE_DOMAIN_IP_ADDR_MAX>; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `name`, as the guest calls it.
    pub name: String,
    /// `hwaddr`: the MAC address, if known.
    pub hwaddr: Option<String>,
    /// `addrs`.
    pub addrs: Vec<IpAddr>,
}

impl XdrEncode for Interface {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.string(&self.name, REMOTE_STRING_MAX)?;
        strings::encode_opt(e, self.hwaddr.as_deref())?;
        e.array(&self.addrs, REMOTE_DOMAIN_IP_ADDR_MAX, |e, a| a.encode(e))
    }
}

impl XdrDecode for Interface {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            name: d.string(REMOTE_STRING_MAX)?.to_owned(),
            hwaddr: strings::decode_opt(d)?,
            // Smallest address: type, empty string, prefix.
            addrs: d.array(REMOTE_DOMAIN_IP_ADDR_MAX, 12, IpAddr::decode)?,
        })
    }
}

/// `struct remote_domain_interface_addresses_ret
/// { remote_domain_interface ifaces<REMOTE_DOMAIN_INTERFACE_MAX>; }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interfaces(pub Vec<Interface>);

impl XdrEncode for Interfaces {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.array(&self.0, REMOTE_DOMAIN_INTERFACE_MAX, |e, i| i.encode(e))
    }
}

impl XdrDecode for Interfaces {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        // Smallest interface: empty name, absent hwaddr, no addresses.
        d.array(REMOTE_DOMAIN_INTERFACE_MAX, 12, Interface::decode)
            .map(Self)
    }
}

/// Arguments shared by [`DomainFsfreeze`] and [`DomainFsthaw`]:
/// `{ remote_nonnull_domain dom;
/// remote_nonnull_string mountpoints<REMOTE_DOMAIN_FSFREEZE_MOUNTPOINTS_MAX>;
/// unsigned int flags; }`. An empty list means every file system.
macro_rules! fs_call {
    ($(#[$doc:meta])* $ty:ident, $proc:expr, $name:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty {
            /// `dom`.
            pub dom: Domain,
            /// `mountpoints`: empty for all.
            pub mountpoints: Vec<String>,
            /// `flags` (must be 0).
            pub flags: u32,
        }

        impl XdrEncode for $ty {
            fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
                self.dom.encode(e)?;
                strings::encode(e, &self.mountpoints, REMOTE_DOMAIN_FSFREEZE_MOUNTPOINTS_MAX)?;
                e.u32(self.flags);
                Ok(())
            }
        }

        impl XdrDecode for $ty {
            fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
                Ok(Self {
                    dom: Domain::decode(d)?,
                    mountpoints: strings::decode(d, REMOTE_DOMAIN_FSFREEZE_MOUNTPOINTS_MAX)?,
                    flags: d.u32()?,
                })
            }
        }
        // Freezing waits for every file system to sync: allow it longer than the default.
        call!($ty => i32, PROG, VERS, $proc, $name, timeout = 120);
    };
}

fs_call!(
    /// `REMOTE_PROC_DOMAIN_FSFREEZE` (335): `remote_domain_fsfreeze_args`; replies
    /// `struct remote_domain_fsfreeze_ret { int filesystems; }`, the number frozen.
    DomainFsfreeze,
    proc::DOMAIN_FSFREEZE,
    "REMOTE_PROC_DOMAIN_FSFREEZE"
);
fs_call!(
    /// `REMOTE_PROC_DOMAIN_FSTHAW` (336): `remote_domain_fsthaw_args`; replies
    /// `struct remote_domain_fsthaw_ret { int filesystems; }`, the number thawed.
    DomainFsthaw,
    proc::DOMAIN_FSTHAW,
    "REMOTE_PROC_DOMAIN_FSTHAW"
);

/// `REMOTE_PROC_DOMAIN_GET_TIME` (337):
/// `struct remote_domain_get_time_args { remote_nonnull_domain dom; unsigned int flags; }`;
/// replies [`GuestTime`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainGetTime {
    /// `dom`.
    pub dom: Domain,
    /// `flags` (must be 0).
    pub flags: u32,
}
xdr_struct!(DomainGetTime { dom, flags });
call!(DomainGetTime => GuestTime, PROG, VERS, proc::DOMAIN_GET_TIME,
    "REMOTE_PROC_DOMAIN_GET_TIME");

/// `struct remote_domain_get_time_ret { hyper seconds; unsigned int nseconds; }`: the guest's
/// clock, since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestTime {
    /// `seconds`.
    pub seconds: i64,
    /// `nseconds`.
    pub nseconds: u32,
}
xdr_struct!(GuestTime { seconds, nseconds });

/// `VIR_DOMAIN_TIME_SYNC`: [`DomainSetTime`] ignores the time given and has the guest re-read
/// its RTC.
pub const TIME_SYNC: u32 = 1;

/// `REMOTE_PROC_DOMAIN_SET_TIME` (338):
/// `struct remote_domain_set_time_args { remote_nonnull_domain dom; hyper seconds;
/// unsigned int nseconds; unsigned int flags; }`; no reply data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSetTime {
    /// `dom`.
    pub dom: Domain,
    /// `seconds`.
    pub seconds: i64,
    /// `nseconds`.
    pub nseconds: u32,
    /// `flags`: [`TIME_SYNC`] or 0.
    pub flags: u32,
}
xdr_struct!(DomainSetTime {
    dom,
    seconds,
    nseconds,
    flags
});
call!(DomainSetTime => (), PROG, VERS, proc::DOMAIN_SET_TIME, "REMOTE_PROC_DOMAIN_SET_TIME");

/// `REMOTE_PROC_DOMAIN_AUTHORIZED_SSH_KEYS_GET` (424):
/// `struct remote_domain_authorized_ssh_keys_get_args { remote_nonnull_domain dom;
/// remote_nonnull_string user; unsigned int flags; }`; replies [`SshKeys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainAuthorizedSshKeysGet {
    /// `dom`.
    pub dom: Domain,
    /// `user`.
    pub user: String,
    /// `flags` (must be 0).
    pub flags: u32,
}

impl XdrEncode for DomainAuthorizedSshKeysGet {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        self.dom.encode(e)?;
        e.string(&self.user, REMOTE_STRING_MAX)?;
        e.u32(self.flags);
        Ok(())
    }
}

impl XdrDecode for DomainAuthorizedSshKeysGet {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            dom: Domain::decode(d)?,
            user: d.string(REMOTE_STRING_MAX)?.to_owned(),
            flags: d.u32()?,
        })
    }
}
call!(DomainAuthorizedSshKeysGet => SshKeys, PROG, VERS, proc::DOMAIN_AUTHORIZED_SSH_KEYS_GET,
    "REMOTE_PROC_DOMAIN_AUTHORIZED_SSH_KEYS_GET");

/// `remote_nonnull_string keys<REMOTE_DOMAIN_AUTHORIZED_SSH_KEYS_MAX>`: one key per entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SshKeys(pub Vec<String>);

impl XdrEncode for SshKeys {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        strings::encode(e, &self.0, REMOTE_DOMAIN_AUTHORIZED_SSH_KEYS_MAX)
    }
}

impl XdrDecode for SshKeys {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        strings::decode(d, REMOTE_DOMAIN_AUTHORIZED_SSH_KEYS_MAX).map(Self)
    }
}

/// Flags of [`DomainAuthorizedSshKeysSet`] (`virDomainAuthorizedSSHKeysSetFlags`); 0 replaces
/// the whole file.
pub mod ssh_keys_flags {
    /// `VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_APPEND`.
    pub const APPEND: u32 = 1;
    /// `VIR_DOMAIN_AUTHORIZED_SSH_KEYS_SET_REMOVE`.
    pub const REMOVE: u32 = 2;
}

/// `REMOTE_PROC_DOMAIN_AUTHORIZED_SSH_KEYS_SET` (425):
/// `struct remote_domain_authorized_ssh_keys_set_args { remote_nonnull_domain dom;
/// remote_nonnull_string user; remote_nonnull_string keys<REMOTE_DOMAIN_AUTHORIZED_SSH_KEYS_MAX>;
/// unsigned int flags; }`; no reply data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainAuthorizedSshKeysSet {
    /// `dom`.
    pub dom: Domain,
    /// `user`.
    pub user: String,
    /// `keys`.
    pub keys: SshKeys,
    /// `flags`: see [`ssh_keys_flags`].
    pub flags: u32,
}

impl XdrEncode for DomainAuthorizedSshKeysSet {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        self.dom.encode(e)?;
        e.string(&self.user, REMOTE_STRING_MAX)?;
        self.keys.encode(e)?;
        e.u32(self.flags);
        Ok(())
    }
}

impl XdrDecode for DomainAuthorizedSshKeysSet {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            dom: Domain::decode(d)?,
            user: d.string(REMOTE_STRING_MAX)?.to_owned(),
            keys: SshKeys::decode(d)?,
            flags: d.u32()?,
        })
    }
}
call!(DomainAuthorizedSshKeysSet => (), PROG, VERS, proc::DOMAIN_AUTHORIZED_SSH_KEYS_SET,
    "REMOTE_PROC_DOMAIN_AUTHORIZED_SSH_KEYS_SET");

/// Flags of [`DomainGetHostname`] (`virDomainGetHostnameFlags`); 0 lets libvirt choose.
pub mod hostname_flags {
    /// `VIR_DOMAIN_GET_HOSTNAME_LEASE`.
    pub const LEASE: u32 = 1;
    /// `VIR_DOMAIN_GET_HOSTNAME_AGENT`.
    pub const AGENT: u32 = 2;
}

/// `REMOTE_PROC_DOMAIN_GET_HOSTNAME` (277):
/// `struct remote_domain_get_hostname_args { remote_nonnull_domain dom; unsigned int flags; }`;
/// replies `struct remote_domain_get_hostname_ret { remote_nonnull_string hostname; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainGetHostname {
    /// `dom`.
    pub dom: Domain,
    /// `flags`: see [`hostname_flags`].
    pub flags: u32,
}
xdr_struct!(DomainGetHostname { dom, flags });
call!(DomainGetHostname => Hostname, PROG, VERS, proc::DOMAIN_GET_HOSTNAME,
    "REMOTE_PROC_DOMAIN_GET_HOSTNAME");

/// `remote_nonnull_string hostname`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hostname(pub String);

impl XdrEncode for Hostname {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.string(&self.0, REMOTE_STRING_MAX)
    }
}

impl XdrDecode for Hostname {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self(d.string(REMOTE_STRING_MAX)?.to_owned()))
    }
}

#[cfg(test)]
mod tests;
