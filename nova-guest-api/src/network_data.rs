//! Neutron ports, networks and subnets rendered as network_data.json, the document Nova's
//! config drive and metadata service give guests (nova/virt/netutils.py): `links` (one per
//! port), `networks` (one per fixed IP: `ipv4`, `ipv4_dhcp`, `ipv6`, `ipv6_slaac`,
//! `ipv6_dhcpv6-stateful`, `ipv6_dhcpv6-stateless`, with routes and DNS services) and
//! top-level `services`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use serde_json::{Value, json};

/// A Neutron port (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct Port {
    /// Port id.
    pub id: String,
    /// Its network.
    pub network_id: String,
    /// MAC address.
    pub mac_address: String,
    /// Fixed IPs.
    #[serde(default)]
    pub fixed_ips: Vec<FixedIp>,
    /// `binding:vif_type` (visible to admins and services).
    #[serde(rename = "binding:vif_type", default)]
    pub vif_type: Option<String>,
    /// The device the port is bound to (an instance uuid for compute ports).
    #[serde(default)]
    pub device_id: String,
    /// What owns it: `compute:<zone>` for an instance's port.
    #[serde(default)]
    pub device_owner: String,
    /// The owning project (`project_id`; older Neutron only says `tenant_id`).
    #[serde(default)]
    pub project_id: Option<String>,
    /// The owning project, under its old name.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

impl Port {
    /// The owning project, under either name.
    pub fn owner(&self) -> Option<&str> {
        self.project_id.as_deref().or(self.tenant_id.as_deref())
    }
}

/// One fixed IP of a port.
#[derive(Debug, Clone, Deserialize)]
pub struct FixedIp {
    /// Its subnet.
    pub subnet_id: String,
    /// The address.
    pub ip_address: String,
}

/// A Neutron network (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct Network {
    /// Network id.
    pub id: String,
    /// MTU.
    #[serde(default)]
    pub mtu: Option<u32>,
}

/// A Neutron subnet (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub struct Subnet {
    /// Subnet id.
    pub id: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// `10.0.0.0/24`.
    pub cidr: String,
    /// Gateway, if any.
    #[serde(default)]
    pub gateway_ip: Option<String>,
    /// DHCP on (IPv4: the guest asks DHCP).
    #[serde(default)]
    pub enable_dhcp: bool,
    /// DNS servers.
    #[serde(default)]
    pub dns_nameservers: Vec<String>,
    /// Extra routes.
    #[serde(default)]
    pub host_routes: Vec<HostRoute>,
    /// `slaac`, `dhcpv6-stateful`, `dhcpv6-stateless` or none.
    #[serde(default)]
    pub ipv6_address_mode: Option<String>,
}

/// One `host_routes` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct HostRoute {
    /// CIDR.
    pub destination: String,
    /// Gateway.
    pub nexthop: String,
}

/// `prefix` bits as a netmask of the family of `v6`.
fn netmask(prefix: u8, v6: bool) -> String {
    if v6 {
        let bits = if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(prefix.min(128)))
        };
        Ipv6Addr::from(bits).to_string()
    } else {
        let bits = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix.min(32)))
        };
        Ipv4Addr::from(bits).to_string()
    }
}

/// `10.1.2.0/24` → (`10.1.2.0`, `255.255.255.0`); `None` when malformed.
fn split_cidr(cidr: &str) -> Option<(String, String)> {
    let (addr, prefix) = cidr.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let prefix: u8 = prefix.parse().ok()?;
    Some((addr.to_string(), netmask(prefix, addr.is_ipv6())))
}

/// Renders the document.
pub fn render(
    ports: &[Port],
    networks: &HashMap<String, Network>,
    subnets: &HashMap<String, Subnet>,
) -> Value {
    let mut links = Vec::new();
    let mut nets = Vec::new();
    let mut services: Vec<Value> = Vec::new();
    for port in ports {
        let link_id = format!("tap{}", port.id.chars().take(11).collect::<String>());
        let vif_type = port
            .vif_type
            .as_deref()
            .filter(|t| !matches!(*t, "" | "unbound" | "binding_failed"))
            .unwrap_or("phy");
        let mut link = json!({
            "id": link_id,
            "vif_id": port.id,
            "type": vif_type,
            "ethernet_mac_address": port.mac_address,
        });
        if let Some(mtu) = networks.get(&port.network_id).and_then(|n| n.mtu) {
            link["mtu"] = json!(mtu);
        }
        links.push(link);
        for ip in &port.fixed_ips {
            let Some(subnet) = subnets.get(&ip.subnet_id) else {
                continue;
            };
            let id = format!("network{}", nets.len());
            let dns: Vec<Value> = subnet
                .dns_nameservers
                .iter()
                .map(|a| json!({"type": "dns", "address": a}))
                .collect();
            for s in &dns {
                if !services.contains(s) {
                    services.push(s.clone());
                }
            }
            let v6 = subnet.ip_version == 6;
            if !v6 && subnet.enable_dhcp {
                nets.push(json!({"id": id, "type": "ipv4_dhcp", "link": link_id,
                                 "network_id": port.network_id}));
                continue;
            }
            let kind = match (v6, subnet.ipv6_address_mode.as_deref()) {
                (false, _) => "ipv4".to_owned(),
                (true, Some(mode @ ("slaac" | "dhcpv6-stateful" | "dhcpv6-stateless"))) => {
                    format!("ipv6_{mode}")
                }
                (true, _) => "ipv6".to_owned(),
            };
            let prefix = subnet
                .cidr
                .split_once('/')
                .and_then(|(_, p)| p.parse().ok())
                .unwrap_or(if v6 { 64 } else { 32 });
            let mut routes = Vec::new();
            if let Some(gw) = subnet.gateway_ip.as_deref().filter(|g| !g.is_empty()) {
                let any = if v6 { "::" } else { "0.0.0.0" };
                routes.push(json!({"network": any, "netmask": any, "gateway": gw}));
            }
            for r in &subnet.host_routes {
                if let Some((network, mask)) = split_cidr(&r.destination) {
                    routes.push(json!({"network": network, "netmask": mask, "gateway": r.nexthop}));
                }
            }
            nets.push(json!({
                "id": id,
                "type": kind,
                "link": link_id,
                "ip_address": ip.ip_address,
                "netmask": netmask(prefix, v6),
                "routes": routes,
                "network_id": port.network_id,
                "services": dns,
            }));
        }
    }
    json!({"links": links, "networks": nets, "services": services})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_v4_dhcp_v4_and_v6() {
        let ports: Vec<Port> = serde_json::from_value(json!([
            {"id": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9", "network_id": "n1",
             "mac_address": "fa:16:3e:00:00:01", "binding:vif_type": "ovs",
             "fixed_ips": [{"subnet_id": "s4", "ip_address": "10.0.0.5"},
                           {"subnet_id": "s6", "ip_address": "2001:db8::5"}]},
            {"id": "p2", "network_id": "n2", "mac_address": "fa:16:3e:00:00:02",
             "fixed_ips": [{"subnet_id": "sd", "ip_address": "192.168.7.9"}]}
        ]))
        .unwrap();
        let networks: HashMap<String, Network> = [("n1", Some(1450)), ("n2", None)]
            .into_iter()
            .map(|(id, mtu)| {
                (
                    id.to_owned(),
                    Network {
                        id: id.to_owned(),
                        mtu,
                    },
                )
            })
            .collect();
        let subnets: Vec<Subnet> = serde_json::from_value(json!([
            {"id": "s4", "ip_version": 4, "cidr": "10.0.0.0/24", "gateway_ip": "10.0.0.1",
             "enable_dhcp": false, "dns_nameservers": ["10.0.0.2", "9.9.9.9"],
             "host_routes": [{"destination": "172.16.0.0/12", "nexthop": "10.0.0.254"}]},
            {"id": "s6", "ip_version": 6, "cidr": "2001:db8::/64", "gateway_ip": "2001:db8::1",
             "enable_dhcp": true, "ipv6_address_mode": "slaac", "dns_nameservers": ["9.9.9.9"]},
            {"id": "sd", "ip_version": 4, "cidr": "192.168.7.0/24", "enable_dhcp": true}
        ]))
        .unwrap();
        let subnets = subnets.into_iter().map(|s| (s.id.clone(), s)).collect();
        let doc = render(&ports, &networks, &subnets);
        assert_eq!(
            doc["links"][0],
            json!({"id": "tap1f2e3d4c-5b", "vif_id": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
                   "type": "ovs", "mtu": 1450, "ethernet_mac_address": "fa:16:3e:00:00:01"})
        );
        assert_eq!(doc["links"][1]["type"], "phy");
        assert!(doc["links"][1].get("mtu").is_none());
        assert_eq!(
            doc["networks"][0],
            json!({"id": "network0", "type": "ipv4", "link": "tap1f2e3d4c-5b",
                   "ip_address": "10.0.0.5", "netmask": "255.255.255.0", "network_id": "n1",
                   "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
                              {"network": "172.16.0.0", "netmask": "255.240.0.0",
                               "gateway": "10.0.0.254"}],
                   "services": [{"type": "dns", "address": "10.0.0.2"},
                                {"type": "dns", "address": "9.9.9.9"}]})
        );
        assert_eq!(doc["networks"][1]["type"], "ipv6_slaac");
        assert_eq!(doc["networks"][1]["netmask"], "ffff:ffff:ffff:ffff::");
        assert_eq!(doc["networks"][1]["routes"][0]["network"], "::");
        assert_eq!(
            doc["networks"][2],
            json!({"id": "network2", "type": "ipv4_dhcp", "link": "tapp2", "network_id": "n2"})
        );
        assert_eq!(
            doc["services"],
            json!([{"type": "dns", "address": "10.0.0.2"}, {"type": "dns", "address": "9.9.9.9"}])
        );
    }

    #[test]
    fn netmasks() {
        assert_eq!(netmask(0, false), "0.0.0.0");
        assert_eq!(netmask(32, false), "255.255.255.255");
        assert_eq!(netmask(20, false), "255.255.240.0");
        assert_eq!(
            netmask(128, true),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(netmask(0, true), "::");
    }
}
