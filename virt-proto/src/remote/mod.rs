//! The `remote` program (`REMOTE_PROGRAM` 0x20008086, version 1) of `remote_protocol.x`.
//!
//! One module per family: [`connect`] (authentication, open/close, probes), [`domain`]
//! (lookups, listing, state, XML, power) with [`domain_xml`] (the agent channel's state in
//! the live XML), [`guest`] (calls that libvirt forwards to the QEMU guest agent) with
//! [`guest_info`] (a typed view of the guest info parameters), and [`event`] (event
//! registration and the event messages).
//!
//! Every number here was checked against `src/remote/remote_protocol.x` of libvirt 11.x
//! (`enum remote_procedure` ends at `REMOTE_PROC_DOMAIN_EVENT_LEASE_CHANGE = 449`); procedure
//! numbers are never reused, so they hold for every version that has the procedure.

pub mod connect;
pub mod domain;
pub mod domain_xml;
pub mod event;
pub mod guest;
pub mod guest_info;

/// `REMOTE_STRING_MAX` (4 MiB since libvirt 1.2.x; it was 1 MiB before, and a bigger limit
/// only accepts more).
pub const REMOTE_STRING_MAX: u32 = 4_194_304;
/// `REMOTE_DOMAIN_LIST_MAX`.
pub const REMOTE_DOMAIN_LIST_MAX: u32 = 16_384;
/// `REMOTE_AUTH_TYPE_LIST_MAX`.
pub const REMOTE_AUTH_TYPE_LIST_MAX: u32 = 20;
/// `REMOTE_DOMAIN_FSFREEZE_MOUNTPOINTS_MAX`.
pub const REMOTE_DOMAIN_FSFREEZE_MOUNTPOINTS_MAX: u32 = 256;
/// `REMOTE_DOMAIN_INTERFACE_MAX`.
pub const REMOTE_DOMAIN_INTERFACE_MAX: u32 = 2048;
/// `REMOTE_DOMAIN_IP_ADDR_MAX`.
pub const REMOTE_DOMAIN_IP_ADDR_MAX: u32 = 2048;
/// `REMOTE_DOMAIN_GUEST_INFO_PARAMS_MAX`.
pub const REMOTE_DOMAIN_GUEST_INFO_PARAMS_MAX: u32 = 2048;
/// `REMOTE_DOMAIN_AUTHORIZED_SSH_KEYS_MAX`.
pub const REMOTE_DOMAIN_AUTHORIZED_SSH_KEYS_MAX: u32 = 2048;
/// `REMOTE_DOMAIN_EVENT_TUNABLE_MAX` (typed parameters in the tunable event).
pub const REMOTE_DOMAIN_EVENT_TUNABLE_MAX: u32 = 2048;

/// Procedure numbers of `enum remote_procedure` used by this crate.
pub mod proc {
    /// `REMOTE_PROC_CONNECT_OPEN`.
    pub const CONNECT_OPEN: i32 = 1;
    /// `REMOTE_PROC_CONNECT_CLOSE`.
    pub const CONNECT_CLOSE: i32 = 2;
    /// `REMOTE_PROC_DOMAIN_GET_XML_DESC`.
    pub const DOMAIN_GET_XML_DESC: i32 = 14;
    /// `REMOTE_PROC_DOMAIN_GET_INFO`.
    pub const DOMAIN_GET_INFO: i32 = 16;
    /// `REMOTE_PROC_DOMAIN_REBOOT`.
    pub const DOMAIN_REBOOT: i32 = 27;
    /// `REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME`.
    pub const DOMAIN_LOOKUP_BY_NAME: i32 = 23;
    /// `REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID`.
    pub const DOMAIN_LOOKUP_BY_UUID: i32 = 24;
    /// `REMOTE_PROC_CONNECT_SUPPORTS_FEATURE`.
    pub const CONNECT_SUPPORTS_FEATURE: i32 = 60;
    /// `REMOTE_PROC_AUTH_LIST`.
    pub const AUTH_LIST: i32 = 66;
    /// `REMOTE_PROC_AUTH_POLKIT`.
    pub const AUTH_POLKIT: i32 = 70;
    /// `REMOTE_PROC_DOMAIN_EVENT_LIFECYCLE` (the old, callback-less event).
    pub const DOMAIN_EVENT_LIFECYCLE: i32 = 107;
    /// `REMOTE_PROC_CONNECT_GET_LIB_VERSION`.
    pub const CONNECT_GET_LIB_VERSION: i32 = 157;
    /// `REMOTE_PROC_DOMAIN_SHUTDOWN_FLAGS`.
    pub const DOMAIN_SHUTDOWN_FLAGS: i32 = 258;
    /// `REMOTE_PROC_DOMAIN_GET_STATE`.
    pub const DOMAIN_GET_STATE: i32 = 212;
    /// `REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS`.
    pub const CONNECT_LIST_ALL_DOMAINS: i32 = 273;
    /// `REMOTE_PROC_DOMAIN_GET_HOSTNAME`.
    pub const DOMAIN_GET_HOSTNAME: i32 = 277;
    /// `REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY`.
    pub const CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: i32 = 316;
    /// `REMOTE_PROC_CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY`.
    pub const CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: i32 = 317;
    /// `REMOTE_PROC_DOMAIN_EVENT_CALLBACK_LIFECYCLE`.
    pub const DOMAIN_EVENT_CALLBACK_LIFECYCLE: i32 = 318;
    /// `REMOTE_PROC_DOMAIN_FSFREEZE`.
    pub const DOMAIN_FSFREEZE: i32 = 335;
    /// `REMOTE_PROC_DOMAIN_FSTHAW`.
    pub const DOMAIN_FSTHAW: i32 = 336;
    /// `REMOTE_PROC_DOMAIN_GET_TIME`.
    pub const DOMAIN_GET_TIME: i32 = 337;
    /// `REMOTE_PROC_DOMAIN_SET_TIME`.
    pub const DOMAIN_SET_TIME: i32 = 338;
    /// `REMOTE_PROC_DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE`.
    pub const DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE: i32 = 348;
    /// `REMOTE_PROC_DOMAIN_INTERFACE_ADDRESSES`.
    pub const DOMAIN_INTERFACE_ADDRESSES: i32 = 353;
    /// `REMOTE_PROC_DOMAIN_SET_USER_PASSWORD`.
    pub const DOMAIN_SET_USER_PASSWORD: i32 = 357;
    /// `REMOTE_PROC_DOMAIN_GET_GUEST_INFO`.
    pub const DOMAIN_GET_GUEST_INFO: i32 = 418;
    /// `REMOTE_PROC_DOMAIN_AUTHORIZED_SSH_KEYS_GET`.
    pub const DOMAIN_AUTHORIZED_SSH_KEYS_GET: i32 = 424;
    /// `REMOTE_PROC_DOMAIN_AUTHORIZED_SSH_KEYS_SET`.
    pub const DOMAIN_AUTHORIZED_SSH_KEYS_SET: i32 = 425;
}

/// Encodes and decodes a `Vec<String>` of `remote_nonnull_string` with an array limit.
pub(crate) mod strings {
    use super::REMOTE_STRING_MAX;
    use crate::xdr::{Decoder, Encoder, XdrError};

    pub(crate) fn encode(e: &mut Encoder<'_>, v: &[String], max: u32) -> Result<(), XdrError> {
        e.array(v, max, |e, s| e.string(s, REMOTE_STRING_MAX))
    }

    pub(crate) fn decode(d: &mut Decoder<'_>, max: u32) -> Result<Vec<String>, XdrError> {
        d.array(max, 4, |d| d.string(REMOTE_STRING_MAX).map(str::to_owned))
    }

    /// `remote_string`: an optional `remote_nonnull_string`.
    pub(crate) fn encode_opt(e: &mut Encoder<'_>, s: Option<&str>) -> Result<(), XdrError> {
        e.optional(s, |e, s| e.string(s, REMOTE_STRING_MAX))
    }

    pub(crate) fn decode_opt(d: &mut Decoder<'_>) -> Result<Option<String>, XdrError> {
        d.optional(|d| d.string(REMOTE_STRING_MAX).map(str::to_owned))
    }
}

/// Implements `XdrEncode`/`XdrDecode` for a struct made only of fields with their own
/// `XdrEncode`/`XdrDecode` impls, in declaration order.
macro_rules! xdr_struct {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        impl $crate::xdr::XdrEncode for $ty {
            fn encode(&self, e: &mut $crate::xdr::Encoder<'_>) -> Result<(), $crate::xdr::XdrError> {
                $($crate::xdr::XdrEncode::encode(&self.$field, e)?;)*
                Ok(())
            }
        }
        impl $crate::xdr::XdrDecode for $ty {
            fn decode(d: &mut $crate::xdr::Decoder<'_>) -> Result<Self, $crate::xdr::XdrError> {
                Ok(Self { $($field: $crate::xdr::XdrDecode::decode(d)?,)* })
            }
        }
    };
}
pub(crate) use xdr_struct;
