//! Finding domains and reading their state.

use crate::call::call;
use crate::packet::{REMOTE_PROGRAM as PROG, REMOTE_PROTOCOL_VERSION as VERS};
use crate::remote::{REMOTE_DOMAIN_LIST_MAX, REMOTE_STRING_MAX, proc, xdr_struct};
use crate::types::{Domain, Uuid};
use crate::xdr::{Decoder, Encoder, XdrDecode, XdrEncode, XdrError};

/// `REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID` (24):
/// `struct remote_domain_lookup_by_uuid_args { remote_uuid uuid; }`; replies
/// `struct remote_domain_lookup_by_uuid_ret { remote_nonnull_domain dom; }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainLookupByUuid {
    /// `uuid`.
    pub uuid: Uuid,
}
xdr_struct!(DomainLookupByUuid { uuid });
call!(DomainLookupByUuid => Domain, PROG, VERS, proc::DOMAIN_LOOKUP_BY_UUID,
    "REMOTE_PROC_DOMAIN_LOOKUP_BY_UUID");

/// `REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME` (23):
/// `struct remote_domain_lookup_by_name_args { remote_nonnull_string name; }`; replies
/// `struct remote_domain_lookup_by_name_ret { remote_nonnull_domain dom; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainLookupByName {
    /// `name`.
    pub name: String,
}

impl XdrEncode for DomainLookupByName {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.string(&self.name, REMOTE_STRING_MAX)
    }
}

impl XdrDecode for DomainLookupByName {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            name: d.string(REMOTE_STRING_MAX)?.to_owned(),
        })
    }
}
call!(DomainLookupByName => Domain, PROG, VERS, proc::DOMAIN_LOOKUP_BY_NAME,
    "REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME");

/// Flags of [`ConnectListAllDomains`] (`virConnectListAllDomainsFlags`).
pub mod list_flags {
    /// `VIR_CONNECT_LIST_DOMAINS_ACTIVE`.
    pub const ACTIVE: u32 = 1;
    /// `VIR_CONNECT_LIST_DOMAINS_INACTIVE`.
    pub const INACTIVE: u32 = 2;
    /// `VIR_CONNECT_LIST_DOMAINS_PERSISTENT`.
    pub const PERSISTENT: u32 = 4;
    /// `VIR_CONNECT_LIST_DOMAINS_TRANSIENT`.
    pub const TRANSIENT: u32 = 8;
    /// `VIR_CONNECT_LIST_DOMAINS_RUNNING`.
    pub const RUNNING: u32 = 16;
    /// `VIR_CONNECT_LIST_DOMAINS_PAUSED`.
    pub const PAUSED: u32 = 32;
    /// `VIR_CONNECT_LIST_DOMAINS_SHUTOFF`.
    pub const SHUTOFF: u32 = 64;
    /// `VIR_CONNECT_LIST_DOMAINS_OTHER`.
    pub const OTHER: u32 = 128;
}

/// `REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS` (273):
/// `struct remote_connect_list_all_domains_args { int need_results; unsigned int flags; }`;
/// replies [`ListAllDomainsReply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectListAllDomains {
    /// `need_results`: 1 to get the domains, 0 for just the count.
    pub need_results: i32,
    /// `flags`: see [`list_flags`].
    pub flags: u32,
}

impl ConnectListAllDomains {
    /// All domains matching `flags` (0 for all).
    #[must_use]
    pub fn new(flags: u32) -> Self {
        Self {
            need_results: 1,
            flags,
        }
    }
}
xdr_struct!(ConnectListAllDomains {
    need_results,
    flags
});
call!(ConnectListAllDomains => ListAllDomainsReply, PROG, VERS, proc::CONNECT_LIST_ALL_DOMAINS,
    "REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS");

/// `struct remote_connect_list_all_domains_ret
/// { remote_nonnull_domain domains<REMOTE_DOMAIN_LIST_MAX>; unsigned int ret; }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAllDomainsReply {
    /// `domains`.
    pub domains: Vec<Domain>,
    /// `ret`: the number of domains.
    pub count: u32,
}

impl XdrEncode for ListAllDomainsReply {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.array(&self.domains, REMOTE_DOMAIN_LIST_MAX, |e, d| d.encode(e))?;
        e.u32(self.count);
        Ok(())
    }
}

impl XdrDecode for ListAllDomainsReply {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            domains: d.array(REMOTE_DOMAIN_LIST_MAX, Domain::MIN_XDR_LEN, Domain::decode)?,
            count: d.u32()?,
        })
    }
}

/// `virDomainState`. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DomainState {
    /// `VIR_DOMAIN_NOSTATE` (0).
    NoState,
    /// `VIR_DOMAIN_RUNNING` (1).
    Running,
    /// `VIR_DOMAIN_BLOCKED` (2).
    Blocked,
    /// `VIR_DOMAIN_PAUSED` (3).
    Paused,
    /// `VIR_DOMAIN_SHUTDOWN` (4): being shut down.
    Shutdown,
    /// `VIR_DOMAIN_SHUTOFF` (5).
    Shutoff,
    /// `VIR_DOMAIN_CRASHED` (6).
    Crashed,
    /// `VIR_DOMAIN_PMSUSPENDED` (7).
    PmSuspended,
    /// Any other value.
    Other(i32),
}

impl DomainState {
    /// Whether the guest is executing, so its agent can answer.
    #[must_use]
    pub fn is_running(self) -> bool {
        matches!(self, Self::Running | Self::Blocked)
    }
}

impl From<i32> for DomainState {
    fn from(v: i32) -> Self {
        match v {
            0 => Self::NoState,
            1 => Self::Running,
            2 => Self::Blocked,
            3 => Self::Paused,
            4 => Self::Shutdown,
            5 => Self::Shutoff,
            6 => Self::Crashed,
            7 => Self::PmSuspended,
            other => Self::Other(other),
        }
    }
}

impl From<DomainState> for i32 {
    fn from(s: DomainState) -> Self {
        match s {
            DomainState::NoState => 0,
            DomainState::Running => 1,
            DomainState::Blocked => 2,
            DomainState::Paused => 3,
            DomainState::Shutdown => 4,
            DomainState::Shutoff => 5,
            DomainState::Crashed => 6,
            DomainState::PmSuspended => 7,
            DomainState::Other(v) => v,
        }
    }
}

/// `REMOTE_PROC_DOMAIN_GET_STATE` (212):
/// `struct remote_domain_get_state_args { remote_nonnull_domain dom; unsigned int flags; }`;
/// replies [`DomainStateReply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainGetState {
    /// `dom`.
    pub dom: Domain,
    /// `flags` (must be 0).
    pub flags: u32,
}
xdr_struct!(DomainGetState { dom, flags });
call!(DomainGetState => DomainStateReply, PROG, VERS, proc::DOMAIN_GET_STATE,
    "REMOTE_PROC_DOMAIN_GET_STATE");

/// `struct remote_domain_get_state_ret { int state; int reason; }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainStateReply {
    /// `state`.
    pub state: DomainState,
    /// `reason`: a `virDomain<State>Reason` value, whose meaning depends on `state`.
    pub reason: i32,
}

impl XdrEncode for DomainStateReply {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.i32(i32::from(self.state));
        e.i32(self.reason);
        Ok(())
    }
}

impl XdrDecode for DomainStateReply {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self {
            state: DomainState::from(d.i32()?),
            reason: d.i32()?,
        })
    }
}

/// `REMOTE_PROC_DOMAIN_GET_INFO` (16):
/// `struct remote_domain_get_info_args { remote_nonnull_domain dom; }`; replies
/// [`DomainInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainGetInfo {
    /// `dom`.
    pub dom: Domain,
}
xdr_struct!(DomainGetInfo { dom });
call!(DomainGetInfo => DomainInfo, PROG, VERS, proc::DOMAIN_GET_INFO,
    "REMOTE_PROC_DOMAIN_GET_INFO");

/// `struct remote_domain_get_info_ret { unsigned char state; unsigned hyper maxMem;
/// unsigned hyper memory; unsigned short nrVirtCpu; unsigned hyper cpuTime; }`.
///
/// rpcgen sends `unsigned char` and `unsigned short` as a whole `unsigned int`; values out of
/// their range are rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainInfo {
    /// `state`.
    pub state: DomainState,
    /// `maxMem`, KiB.
    pub max_mem: u64,
    /// `memory`, KiB.
    pub memory: u64,
    /// `nrVirtCpu`.
    pub nr_virt_cpu: u16,
    /// `cpuTime`, nanoseconds.
    pub cpu_time: u64,
}

impl XdrEncode for DomainInfo {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.u32(u32::try_from(i32::from(self.state)).unwrap_or(0).min(255));
        e.u64(self.max_mem);
        e.u64(self.memory);
        e.u32(u32::from(self.nr_virt_cpu));
        e.u64(self.cpu_time);
        Ok(())
    }
}

impl XdrDecode for DomainInfo {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        let state = d.u32_at_most(u32::from(u8::MAX))?;
        let max_mem = d.u64()?;
        let memory = d.u64()?;
        let nr_virt_cpu = d.u32_at_most(u32::from(u16::MAX))?;
        Ok(Self {
            // Both fit: checked just above.
            state: DomainState::from(state as i32),
            max_mem,
            memory,
            nr_virt_cpu: nr_virt_cpu as u16,
            cpu_time: d.u64()?,
        })
    }
}

/// Flags of [`DomainGetXmlDesc`] (`virDomainXMLFlags`); 0 gives the live XML of a running
/// domain.
pub mod xml_flags {
    /// `VIR_DOMAIN_XML_SECURE`: include passwords (needs a read-write connection).
    pub const SECURE: u32 = 1;
    /// `VIR_DOMAIN_XML_INACTIVE`: the persistent definition, not the live state.
    pub const INACTIVE: u32 = 2;
}

/// `REMOTE_PROC_DOMAIN_GET_XML_DESC` (14):
/// `struct remote_domain_get_xml_desc_args { remote_nonnull_domain dom; unsigned int flags; }`;
/// replies `struct remote_domain_get_xml_desc_ret { remote_nonnull_string xml; }`. See
/// [`crate::remote::domain_xml`] for what the client reads from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainGetXmlDesc {
    /// `dom`.
    pub dom: Domain,
    /// `flags`: see [`xml_flags`].
    pub flags: u32,
}
xdr_struct!(DomainGetXmlDesc { dom, flags });
call!(DomainGetXmlDesc => XmlDesc, PROG, VERS, proc::DOMAIN_GET_XML_DESC,
    "REMOTE_PROC_DOMAIN_GET_XML_DESC");

/// `remote_nonnull_string xml`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XmlDesc(pub String);

impl XdrEncode for XmlDesc {
    fn encode(&self, e: &mut Encoder<'_>) -> Result<(), XdrError> {
        e.string(&self.0, REMOTE_STRING_MAX)
    }
}

impl XdrDecode for XmlDesc {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Self(d.string(REMOTE_STRING_MAX)?.to_owned()))
    }
}

/// Flags of [`DomainShutdownFlags`] (`virDomainShutdownFlagValues`); 0 lets the hypervisor
/// choose.
pub mod shutdown_flags {
    /// `VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN`.
    pub const ACPI_POWER_BTN: u32 = 1;
    /// `VIR_DOMAIN_SHUTDOWN_GUEST_AGENT`: `guest-shutdown` through the agent.
    pub const GUEST_AGENT: u32 = 2;
}

/// Flags of [`DomainReboot`] (`virDomainRebootFlagValues`); 0 lets the hypervisor choose.
pub mod reboot_flags {
    /// `VIR_DOMAIN_REBOOT_ACPI_POWER_BTN`.
    pub const ACPI_POWER_BTN: u32 = 1;
    /// `VIR_DOMAIN_REBOOT_GUEST_AGENT`: `guest-shutdown` with mode `reboot` through the agent.
    pub const GUEST_AGENT: u32 = 2;
}

/// `REMOTE_PROC_DOMAIN_SHUTDOWN_FLAGS` (258):
/// `struct remote_domain_shutdown_flags_args { remote_nonnull_domain dom; unsigned int flags; }`;
/// no reply data. With [`shutdown_flags::GUEST_AGENT`] libvirt sends `guest-shutdown` and
/// waits (up to 60 s) for QEMU's `SHUTDOWN` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainShutdownFlags {
    /// `dom`.
    pub dom: Domain,
    /// `flags`: see [`shutdown_flags`].
    pub flags: u32,
}
xdr_struct!(DomainShutdownFlags { dom, flags });
call!(DomainShutdownFlags => (), PROG, VERS, proc::DOMAIN_SHUTDOWN_FLAGS,
    "REMOTE_PROC_DOMAIN_SHUTDOWN_FLAGS", timeout = 90);

/// `REMOTE_PROC_DOMAIN_REBOOT` (27):
/// `struct remote_domain_reboot_args { remote_nonnull_domain dom; unsigned int flags; }`; no
/// reply data. With [`reboot_flags::GUEST_AGENT`] libvirt waits for QEMU's `RESET` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainReboot {
    /// `dom`.
    pub dom: Domain,
    /// `flags`: see [`reboot_flags`].
    pub flags: u32,
}
xdr_struct!(DomainReboot { dom, flags });
call!(DomainReboot => (), PROG, VERS, proc::DOMAIN_REBOOT, "REMOTE_PROC_DOMAIN_REBOOT",
    timeout = 90);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::Call;
    use crate::xdr::to_vec;

    fn dom() -> Domain {
        Domain {
            name: "instance-0001".into(),
            uuid: Uuid([1; 16]),
            id: 3,
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(DomainGetXmlDesc::PROCEDURE, 14);
        assert_eq!(DomainGetInfo::PROCEDURE, 16);
        assert_eq!(DomainReboot::PROCEDURE, 27);
        assert_eq!(DomainShutdownFlags::PROCEDURE, 258);
        assert_eq!(DomainLookupByName::PROCEDURE, 23);
        assert_eq!(DomainLookupByUuid::PROCEDURE, 24);
        assert_eq!(DomainGetState::PROCEDURE, 212);
        assert_eq!(ConnectListAllDomains::PROCEDURE, 273);
    }

    #[test]
    fn xml_desc_and_power_calls() {
        let call = DomainGetXmlDesc {
            dom: dom(),
            flags: 0,
        };
        let bytes = to_vec(&call).unwrap();
        assert_eq!(bytes.len(), to_vec(&dom()).unwrap().len() + 4);
        let xml = XmlDesc("<domain/>".into());
        assert_eq!(
            DomainGetXmlDesc::decode_reply(&to_vec(&xml).unwrap()).unwrap(),
            xml
        );
        let shutdown = DomainShutdownFlags {
            dom: dom(),
            flags: shutdown_flags::GUEST_AGENT,
        };
        assert_eq!(to_vec(&shutdown).unwrap()[bytes.len() - 4..], [0, 0, 0, 2]);
        DomainReboot::decode_reply(&[]).unwrap();
    }

    #[test]
    fn lookup_by_uuid_args_are_16_raw_bytes() {
        let a = DomainLookupByUuid {
            uuid: Uuid([9; 16]),
        };
        assert_eq!(to_vec(&a).unwrap(), [9; 16]);
        let r = DomainLookupByUuid::decode_reply(&to_vec(&dom()).unwrap()).unwrap();
        assert_eq!(r, dom());
    }

    #[test]
    fn list_all_domains_round_trip_and_bounds() {
        let reply = ListAllDomainsReply {
            domains: vec![dom(), dom()],
            count: 2,
        };
        let bytes = to_vec(&reply).unwrap();
        assert_eq!(ConnectListAllDomains::decode_reply(&bytes).unwrap(), reply);
        // A count the payload cannot hold is refused before allocating.
        assert!(ConnectListAllDomains::decode_reply(&[0, 0, 0x40, 0, 0, 0, 0, 0]).is_err());
        assert!(ConnectListAllDomains::decode_reply(&[0, 0, 0x40, 1]).is_err());
    }

    #[test]
    fn state_and_info() {
        let r = DomainGetState::decode_reply(&[0, 0, 0, 1, 0, 0, 0, 1]).unwrap();
        assert_eq!(r.state, DomainState::Running);
        assert!(r.state.is_running());
        assert_eq!(
            DomainGetState::decode_reply(&[0, 0, 0, 42, 0, 0, 0, 0])
                .unwrap()
                .state,
            DomainState::Other(42)
        );
        let info = DomainInfo {
            state: DomainState::Paused,
            max_mem: 1 << 20,
            memory: 1 << 19,
            nr_virt_cpu: 4,
            cpu_time: 123,
        };
        let bytes = to_vec(&info).unwrap();
        assert_eq!(bytes.len(), 4 + 8 + 8 + 4 + 8);
        assert_eq!(DomainGetInfo::decode_reply(&bytes).unwrap(), info);
        let mut bad = bytes;
        bad[2] = 1;
        assert!(DomainGetInfo::decode_reply(&bad).is_err());
    }
}
