//! network_data.json (OpenStack's config-drive network description), checked and turned into a
//! small model the renderers can trust: every value they embed in a script is a parsed IP
//! address, a MAC address, or a number.

use std::net::IpAddr;

use serde::Deserialize;
use serde_json::Value;

/// A link (an interface to find or create in the guest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// MAC address, lower case `aa:bb:cc:dd:ee:ff`. For a VLAN, that of its parent's link
    /// unless network_data gives one.
    pub mac: String,
    /// MTU, when given.
    pub mtu: Option<u32>,
    /// For a VLAN link: its parent (an index into [`NetworkData::links`]) and VLAN id.
    pub vlan: Option<Vlan>,
}

/// A VLAN on a physical link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vlan {
    /// Index of the parent link.
    pub parent: usize,
    /// VLAN id, 1-4094.
    pub id: u16,
}

/// How one network on a link is configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetConfig {
    /// A static address with its routes.
    Static {
        /// The address.
        address: IpAddr,
        /// Its prefix length.
        prefix: u8,
        /// Routes through gateways on this network.
        routes: Vec<Route>,
    },
    /// DHCPv4.
    Dhcp4,
    /// DHCPv6 (stateful).
    Dhcp6,
    /// IPv6 router advertisements (SLAAC, also DHCPv6-stateless).
    Slaac,
}

/// A route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination network.
    pub destination: IpAddr,
    /// Its prefix length (0: default route).
    pub prefix: u8,
    /// The gateway.
    pub gateway: IpAddr,
}

impl Route {
    /// True for a default route.
    pub fn is_default(&self) -> bool {
        self.prefix == 0
    }

    /// `dest/prefix`.
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.destination, self.prefix)
    }
}

/// A network on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    /// Index of its link.
    pub link: usize,
    /// How it is configured.
    pub config: NetConfig,
}

impl Network {
    /// True for IPv6 (static v6, DHCPv6, SLAAC).
    pub fn is_v6(&self) -> bool {
        match &self.config {
            NetConfig::Static { address, .. } => address.is_ipv6(),
            NetConfig::Dhcp4 => false,
            NetConfig::Dhcp6 | NetConfig::Slaac => true,
        }
    }
}

/// A checked network_data.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkData {
    /// Links, in the document's order.
    pub links: Vec<Link>,
    /// Networks, in the document's order.
    pub networks: Vec<Network>,
    /// DNS servers: the global services, then each network's, without repeats.
    pub dns: Vec<IpAddr>,
}

impl NetworkData {
    /// The networks of link `index`.
    pub fn networks_of(&self, index: usize) -> impl Iterator<Item = &Network> {
        self.networks.iter().filter(move |n| n.link == index)
    }
}

#[derive(Deserialize)]
struct RawDoc {
    #[serde(default)]
    links: Vec<RawLink>,
    #[serde(default)]
    networks: Vec<RawNetwork>,
    #[serde(default)]
    services: Vec<RawService>,
}

#[derive(Deserialize)]
struct RawLink {
    id: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    ethernet_mac_address: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    vlan_link: Option<String>,
    #[serde(default)]
    vlan_id: Option<u16>,
    #[serde(default)]
    vlan_mac_address: Option<String>,
}

#[derive(Deserialize)]
struct RawNetwork {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    link: String,
    #[serde(default)]
    ip_address: Option<String>,
    #[serde(default)]
    netmask: Option<String>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    services: Vec<RawService>,
}

#[derive(Deserialize)]
struct RawRoute {
    network: String,
    netmask: String,
    gateway: String,
}

#[derive(Deserialize)]
struct RawService {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    address: Option<String>,
}

/// A MAC address in lower case, checked.
fn mac(s: &str) -> Result<String, String> {
    let ok = s.len() == 17
        && s.bytes().enumerate().all(|(i, c)| {
            if i % 3 == 2 {
                c == b':'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("is not a MAC address like fa:16:3e:00:00:01".into())
    }
}

/// A prefix length from a netmask (dotted IPv4, IPv6 notation, or a number).
fn prefix_of(mask: &str, v6: bool) -> Result<u8, String> {
    if let Ok(n) = mask.parse::<u8>() {
        return if n <= if v6 { 128 } else { 32 } {
            Ok(n)
        } else {
            Err(format!("prefix {n} is too long"))
        };
    }
    let bits: u128 = match mask.parse::<IpAddr>() {
        Ok(IpAddr::V4(m)) if !v6 => u128::from(u32::from(m)) << 96,
        Ok(IpAddr::V6(m)) if v6 => u128::from(m),
        _ => return Err(format!("netmask {mask:?} does not fit the address family")),
    };
    let ones = bits.leading_ones();
    if bits.checked_shl(ones).unwrap_or(0) != 0 {
        return Err(format!("netmask {mask:?} is not contiguous"));
    }
    // At most 128.
    Ok(u8::try_from(ones).unwrap_or(128))
}

fn ip(s: &str, what: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("{what} {s:?} is not an IP address"))
}

/// Checks a network_data.json document.
///
/// # Errors
///
/// A message naming the link or network that is wrong, or a link type the renderers do not
/// support (bonds: use script mode).
pub fn parse(doc: &Value) -> Result<NetworkData, String> {
    let raw = RawDoc::deserialize(doc).map_err(|e| format!("not network_data.json: {e}"))?;
    let mut links = Vec::new();
    let index_of = |id: &str, raw: &[RawLink]| raw.iter().position(|l| l.id == id);
    for (i, l) in raw.links.iter().enumerate() {
        let ctx = |m: String| format!("links[{i}] ({:?}): {m}", l.id);
        let kind = l.kind.as_deref().unwrap_or("phy");
        let vlan = if kind == "vlan" {
            let parent_id = l
                .vlan_link
                .as_deref()
                .ok_or_else(|| ctx("a vlan link needs vlan_link".into()))?;
            let parent = index_of(parent_id, &raw.links)
                .ok_or_else(|| ctx(format!("vlan_link {parent_id:?} is not a link")))?;
            if raw.links[parent].kind.as_deref() == Some("vlan")
                || raw.links[parent].kind.as_deref() == Some("bond")
            {
                return Err(ctx("a vlan must sit on a physical link".into()));
            }
            let id = l
                .vlan_id
                .filter(|id| (1..=4094).contains(id))
                .ok_or_else(|| ctx("vlan_id must be 1-4094".into()))?;
            Some(Vlan { parent, id })
        } else if kind == "bond" {
            return Err(ctx(
                "bond links are not supported by the renderer; use apply_networking_mode = \
                 script"
                    .into(),
            ));
        } else {
            None
        };
        let mac_text = match (&vlan, &l.vlan_mac_address, &l.ethernet_mac_address) {
            (Some(_), Some(m), _) | (_, _, Some(m)) => m.clone(),
            (Some(v), None, None) => raw.links[v.parent]
                .ethernet_mac_address
                .clone()
                .unwrap_or_default(),
            (None, _, None) => return Err(ctx("ethernet_mac_address is missing".into())),
        };
        if l.mtu.is_some_and(|m| !(68..=65535).contains(&m)) {
            return Err(ctx("mtu must be 68-65535".into()));
        }
        links.push(Link {
            mac: mac(&mac_text).map_err(|e| ctx(format!("MAC {mac_text:?} {e}")))?,
            mtu: l.mtu,
            vlan,
        });
    }
    let mut networks = Vec::new();
    let mut dns = Vec::new();
    let add_dns = |services: &[RawService], dns: &mut Vec<IpAddr>| -> Result<(), String> {
        for s in services.iter().filter(|s| s.kind == "dns") {
            let a = ip(s.address.as_deref().unwrap_or(""), "dns address")?;
            if !dns.contains(&a) {
                dns.push(a);
            }
        }
        Ok(())
    };
    add_dns(&raw.services, &mut dns)?;
    for (i, n) in raw.networks.iter().enumerate() {
        let ctx = |m: String| format!("networks[{i}] ({:?}): {m}", n.id.as_deref().unwrap_or(""));
        let link = index_of(&n.link, &raw.links)
            .ok_or_else(|| ctx(format!("link {:?} is not in links", n.link)))?;
        let config = match n.kind.as_str() {
            "ipv4" | "ipv6" => {
                let v6 = n.kind == "ipv6";
                let text = n
                    .ip_address
                    .as_deref()
                    .ok_or_else(|| ctx("ip_address is missing".into()))?;
                let (addr_text, inline_prefix) = match text.split_once('/') {
                    Some((a, p)) => (a, Some(p)),
                    None => (text, None),
                };
                let address = ip(addr_text, "ip_address").map_err(ctx)?;
                if address.is_ipv6() != v6 {
                    return Err(ctx(format!("ip_address is not {}", n.kind)));
                }
                let prefix = match (inline_prefix, n.netmask.as_deref()) {
                    (Some(p), _) | (None, Some(p)) => prefix_of(p, v6).map_err(ctx)?,
                    (None, None) if v6 => 64,
                    (None, None) => return Err(ctx("netmask is missing".into())),
                };
                let mut routes = Vec::new();
                for r in &n.routes {
                    let destination = ip(&r.network, "route network").map_err(ctx)?;
                    let gateway = ip(&r.gateway, "route gateway").map_err(ctx)?;
                    if destination.is_ipv6() != v6 || gateway.is_ipv6() != v6 {
                        return Err(ctx("a route is of the other address family".into()));
                    }
                    routes.push(Route {
                        destination,
                        prefix: prefix_of(&r.netmask, v6).map_err(ctx)?,
                        gateway,
                    });
                }
                NetConfig::Static {
                    address,
                    prefix,
                    routes,
                }
            }
            "ipv4_dhcp" => NetConfig::Dhcp4,
            "ipv6_dhcp" | "ipv6_dhcpv6-stateful" => NetConfig::Dhcp6,
            "ipv6_slaac" | "ipv6_dhcpv6-stateless" => NetConfig::Slaac,
            other => return Err(ctx(format!("unknown network type {other:?}"))),
        };
        add_dns(&n.services, &mut dns).map_err(ctx)?;
        networks.push(Network { link, config });
    }
    Ok(NetworkData {
        links,
        networks,
        dns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_static_dhcp_vlan_and_dns() {
        let doc = json!({
            "links": [
                {"id": "tap0", "type": "ovs", "ethernet_mac_address": "FA:16:3E:00:00:01", "mtu": 1450},
                {"id": "vlan0", "type": "vlan", "vlan_link": "tap0", "vlan_id": 101}
            ],
            "networks": [
                {"id": "n0", "type": "ipv4", "link": "tap0", "ip_address": "10.0.0.5",
                 "netmask": "255.255.255.0",
                 "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"}],
                 "services": [{"type": "dns", "address": "10.0.0.2"}]},
                {"id": "n1", "type": "ipv6", "link": "tap0", "ip_address": "2001:db8::5/64"},
                {"id": "n2", "type": "ipv4_dhcp", "link": "vlan0"}
            ],
            "services": [{"type": "dns", "address": "8.8.8.8"}, {"type": "dns", "address": "10.0.0.2"}]
        });
        let n = parse(&doc).unwrap();
        assert_eq!(n.links[0].mac, "fa:16:3e:00:00:01");
        assert_eq!(n.links[1].vlan, Some(Vlan { parent: 0, id: 101 }));
        assert_eq!(n.links[1].mac, "fa:16:3e:00:00:01");
        assert_eq!(n.dns.len(), 2);
        let NetConfig::Static { prefix, routes, .. } = &n.networks[0].config else {
            panic!()
        };
        assert_eq!(*prefix, 24);
        assert!(routes[0].is_default());
        assert!(n.networks[1].is_v6());
        assert_eq!(n.networks[2].config, NetConfig::Dhcp4);
    }

    #[test]
    fn rejects_what_it_cannot_render_safely() {
        let bad = [
            json!({"links": [{"id": "a", "ethernet_mac_address": "fa:16:3e:00:00:01; reboot"}]}),
            json!({"links": [{"id": "b", "type": "bond", "ethernet_mac_address": "fa:16:3e:00:00:01"}]}),
            json!({"links": [{"id": "a", "ethernet_mac_address": "fa:16:3e:00:00:01"}],
                   "networks": [{"type": "ipv4", "link": "a", "ip_address": "10.0.0.1; id", "netmask": "255.0.0.0"}]}),
            json!({"links": [{"id": "a", "ethernet_mac_address": "fa:16:3e:00:00:01"}],
                   "networks": [{"type": "ipv4", "link": "a", "ip_address": "10.0.0.1", "netmask": "255.0.255.0"}]}),
            json!({"links": [], "networks": [{"type": "ipv4", "link": "zz", "ip_address": "10.0.0.1"}]}),
            json!({"links": "x"}),
        ];
        for doc in bad {
            assert!(parse(&doc).is_err(), "{doc}");
        }
        assert_eq!(prefix_of("ffff:ffff:ffff:ffff::", true), Ok(64));
        assert_eq!(prefix_of("255.255.255.255", false), Ok(32));
        assert_eq!(prefix_of("0.0.0.0", false), Ok(0));
    }
}
