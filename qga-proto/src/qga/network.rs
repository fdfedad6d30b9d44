//! Network interfaces and routes as the guest sees them.

use serde::{Deserialize, Serialize};

/// `guest-network-get-interfaces`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestNetworkGetInterfaces;
command!(
    GuestNetworkGetInterfaces,
    "guest-network-get-interfaces",
    Vec<GuestNetworkInterface>,
    HAS_ARGUMENTS = false
);

/// One interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestNetworkInterface {
    /// Interface name (`"eth0"`).
    pub name: String,
    /// MAC address, when the interface has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_address: Option<String>,
    /// Addresses; absent (empty here) when the interface has none.
    #[serde(default)]
    pub ip_addresses: Vec<GuestIpAddress>,
    /// Counters (Linux agents since 2.11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<GuestNetworkInterfaceStat>,
}

impl GuestNetworkInterface {
    /// True if `mac` (any case) is this interface's hardware address.
    pub fn has_mac(&self, mac: &str) -> bool {
        self.hardware_address
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case(mac))
    }
}

open_enum! {
    /// Address family.
    pub enum IpAddressType {
        /// IPv4.
        Ipv4 = "ipv4",
        /// IPv6.
        Ipv6 = "ipv6",
    }
}

/// One address of a [`GuestNetworkInterface`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestIpAddress {
    /// Address as text.
    pub ip_address: String,
    /// Family.
    pub ip_address_type: IpAddressType,
    /// Prefix length.
    pub prefix: u32,
}

/// Interface counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct GuestNetworkInterfaceStat {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errs: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errs: u64,
    /// Packets dropped on send.
    pub tx_dropped: u64,
}

/// `guest-network-get-route` (agents 9.1+ on Linux, 11.0+ on Windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GuestNetworkGetRoute;
command!(
    GuestNetworkGetRoute,
    "guest-network-get-route",
    Vec<GuestNetworkRoute>,
    HAS_ARGUMENTS = false
);

/// One route. IPv4 routes fill `mask`/`gateway`; IPv6 routes the prefix-length members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestNetworkRoute {
    /// Interface name.
    pub iface: String,
    /// Destination network.
    pub destination: String,
    /// Route metric.
    pub metric: i64,
    /// Gateway (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Netmask (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// Initial round-trip time (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irtt: Option<i64>,
    /// Route flags (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<i64>,
    /// References (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refcnt: Option<i64>,
    /// Lookups (IPv4).
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<i64>,
    /// TCP window (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
    /// MTU (IPv4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<i64>,
    /// Destination prefix length (IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desprefixlen: Option<String>,
    /// Source (IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Source prefix length (IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srcprefixlen: Option<String>,
    /// Next hop (IPv6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nexthop: Option<String>,
    /// 4 or 6.
    pub version: i64,
}
