//! Persistence for each Linux network stack: shell code that writes the stack's files (with
//! the interface names found at run time, `$IF0`...) and asks the stack to load them.
//!
//! Every value embedded is a parsed address, a MAC address or a number, so the here-documents
//! (which expand `$IFn`) cannot be broken out of. They are `<<-EOF` documents: the script
//! indents them with tabs, which the shell strips (the files themselves indent with spaces).

use std::fmt::Write as _;

use crate::netdata::{Link, NetConfig, NetworkData, Route};

/// A network stack the script can persist for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// netplan (Ubuntu).
    Netplan,
    /// NetworkManager keyfiles (Fedora, RHEL 8+, desktops).
    NetworkManager,
    /// systemd-networkd.
    Networkd,
    /// RHEL/CentOS ifcfg files (network-scripts).
    Ifcfg,
    /// Debian ifupdown.
    Ifupdown,
}

impl Stack {
    /// Every stack, in the order the script checks for them.
    pub const ALL: [Self; 5] = [
        Self::Netplan,
        Self::NetworkManager,
        Self::Networkd,
        Self::Ifcfg,
        Self::Ifupdown,
    ];

    /// The name `detect_stack` prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Netplan => "netplan",
            Self::NetworkManager => "networkmanager",
            Self::Networkd => "networkd",
            Self::Ifcfg => "ifcfg",
            Self::Ifupdown => "ifupdown",
        }
    }
}

const MARK: &str = "# Written by nova-guest-agent (apply-networking); replaced on the next apply.";

/// The shell code persisting `net` for `stack`.
pub fn render(stack: Stack, net: &NetworkData) -> String {
    match stack {
        Stack::Netplan => netplan(net),
        Stack::NetworkManager => network_manager(net),
        Stack::Networkd => networkd(net),
        Stack::Ifcfg => ifcfg(net),
        Stack::Ifupdown => ifupdown(net),
    }
}

fn statics(net: &NetworkData, link: usize, v6: bool) -> Vec<(String, &[Route])> {
    net.networks_of(link)
        .filter(|n| n.is_v6() == v6)
        .filter_map(|n| match &n.config {
            NetConfig::Static {
                address,
                prefix,
                routes,
            } => Some((format!("{address}/{prefix}"), routes.as_slice())),
            _ => None,
        })
        .collect()
}

fn has(net: &NetworkData, link: usize, config: &NetConfig) -> bool {
    net.networks_of(link).any(|n| n.config == *config)
}

fn dns_list(net: &NetworkData, sep: &str) -> String {
    net.dns
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

fn netplan(net: &NetworkData) -> String {
    let mut y = format!("{MARK}\nnetwork:\n  version: 2\n");
    let section = |y: &mut String, vlans: bool| {
        let mut first = true;
        for (i, link) in net.links.iter().enumerate() {
            if link.vlan.is_some() != vlans {
                continue;
            }
            if first {
                y.push_str(if vlans {
                    "  vlans:\n"
                } else {
                    "  ethernets:\n"
                });
                first = false;
            }
            let _ = writeln!(y, "    ${{IF{i}}}:");
            match link.vlan {
                Some(v) => {
                    let _ = writeln!(y, "      id: {}\n      link: ${{IF{}}}", v.id, v.parent);
                }
                None => {
                    let _ = writeln!(y, "      match:\n        macaddress: \"{}\"", link.mac);
                }
            }
            netplan_link(y, net, i, link);
        }
    };
    section(&mut y, false);
    section(&mut y, true);
    format!(
        "rm -f /etc/netplan/90-nova-guest.yaml\n\
         put 600 /etc/netplan/90-nova-guest.yaml <<-EOF || fail 'cannot write /etc/netplan/90-nova-guest.yaml'\n\
         {y}EOF\nreload netplan apply\n"
    )
}

fn netplan_link(y: &mut String, net: &NetworkData, i: usize, link: &Link) {
    if let Some(mtu) = link.mtu {
        let _ = writeln!(y, "      mtu: {mtu}");
    }
    let _ = writeln!(y, "      dhcp4: {}", has(net, i, &NetConfig::Dhcp4));
    let _ = writeln!(y, "      dhcp6: {}", has(net, i, &NetConfig::Dhcp6));
    let ra = has(net, i, &NetConfig::Slaac) || has(net, i, &NetConfig::Dhcp6);
    let _ = writeln!(y, "      accept-ra: {ra}");
    let all: Vec<_> = statics(net, i, false)
        .into_iter()
        .chain(statics(net, i, true))
        .collect();
    if !all.is_empty() {
        y.push_str("      addresses:\n");
        for (cidr, _) in &all {
            let _ = writeln!(y, "        - \"{cidr}\"");
        }
    }
    let routes: Vec<&Route> = all.iter().flat_map(|(_, r)| r.iter()).collect();
    if !routes.is_empty() {
        y.push_str("      routes:\n");
        for r in routes {
            let to = if r.is_default() {
                "default".to_owned()
            } else {
                r.cidr()
            };
            let _ = writeln!(
                y,
                "        - to: \"{to}\"\n          via: \"{}\"",
                r.gateway
            );
        }
    }
    if !net.dns.is_empty() && net.networks_of(i).next().is_some() {
        let _ = writeln!(
            y,
            "      nameservers:\n        addresses: [{}]",
            net.dns
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

fn network_manager(net: &NetworkData) -> String {
    let dir = "/etc/NetworkManager/system-connections";
    let mut s = format!("rm -f {dir}/nova-guest-*.nmconnection\n");
    for (i, link) in net.links.iter().enumerate() {
        let mut k = format!("{MARK}\n[connection]\nid=nova-guest-${{IF{i}}}\n");
        match link.vlan {
            Some(_) => k.push_str("type=vlan\n"),
            None => k.push_str("type=ethernet\n"),
        }
        let _ = writeln!(
            k,
            "interface-name=${{IF{i}}}\nautoconnect=true\nautoconnect-priority=100\n"
        );
        match link.vlan {
            Some(v) => {
                let _ = writeln!(k, "[vlan]\nparent=${{IF{}}}\nid={}\n", v.parent, v.id);
                if let Some(mtu) = link.mtu {
                    let _ = writeln!(k, "[ethernet]\nmtu={mtu}\n");
                }
            }
            None => {
                let _ = writeln!(k, "[ethernet]\nmac-address={}", link.mac.to_uppercase());
                if let Some(mtu) = link.mtu {
                    let _ = writeln!(k, "mtu={mtu}");
                }
                k.push('\n');
            }
        }
        for v6 in [false, true] {
            let family = if v6 { "ipv6" } else { "ipv4" };
            let addrs = statics(net, i, v6);
            let method = if !addrs.is_empty() {
                "manual"
            } else if !v6 && has(net, i, &NetConfig::Dhcp4) {
                "auto"
            } else if v6 && has(net, i, &NetConfig::Dhcp6) {
                "dhcp"
            } else if v6 && has(net, i, &NetConfig::Slaac) {
                "auto"
            } else if v6 {
                "ignore"
            } else {
                "disabled"
            };
            let _ = writeln!(k, "[{family}]\nmethod={method}");
            let mut r = 1;
            for (n, (cidr, routes)) in (1..).zip(addrs.iter()) {
                let _ = writeln!(k, "address{n}={cidr}");
                for route in routes.iter() {
                    if route.is_default() {
                        let _ = writeln!(k, "gateway={}", route.gateway);
                    } else {
                        let _ = writeln!(k, "route{r}={},{}", route.cidr(), route.gateway);
                        r += 1;
                    }
                }
            }
            let dns: Vec<String> = net
                .dns
                .iter()
                .filter(|a| a.is_ipv6() == v6)
                .map(|a| format!("{a};"))
                .collect();
            let configured = !matches!(method, "ignore" | "disabled");
            if configured && !dns.is_empty() {
                let _ = writeln!(k, "dns={}", dns.concat());
            }
            k.push('\n');
        }
        let path = format!("{dir}/nova-guest-${{IF{i}}}.nmconnection");
        let _ = write!(
            s,
            "put 600 \"{path}\" <<-EOF || fail \"cannot write {path}\"\n{}EOF\n",
            k.trim_end_matches('\n').to_owned() + "\n"
        );
    }
    s.push_str("reload nmcli connection reload\n");
    for i in 0..net.links.len() {
        let _ = writeln!(s, "reload nmcli connection up id \"nova-guest-$IF{i}\"");
    }
    s
}

fn networkd(net: &NetworkData) -> String {
    let dir = "/etc/systemd/network";
    let mut s = format!("rm -f {dir}/05-nova-guest-*\n");
    for (i, link) in net.links.iter().enumerate() {
        if let Some(v) = link.vlan {
            let path = format!("{dir}/05-nova-guest-${{IF{i}}}.netdev");
            let _ = write!(
                s,
                "put 644 \"{path}\" <<-EOF || fail \"cannot write {path}\"\n{MARK}\n[NetDev]\nName=${{IF{i}}}\nKind=vlan\n\n[VLAN]\nId={}\nEOF\n",
                v.id
            );
        }
        let mut f = format!("{MARK}\n[Match]\nName=${{IF{i}}}\n");
        if let Some(mtu) = link.mtu {
            let _ = write!(f, "\n[Link]\nMTUBytes={mtu}\n");
        }
        let dhcp = match (
            has(net, i, &NetConfig::Dhcp4),
            has(net, i, &NetConfig::Dhcp6),
        ) {
            (true, true) => "yes",
            (true, false) => "ipv4",
            (false, true) => "ipv6",
            (false, false) => "no",
        };
        let ra = has(net, i, &NetConfig::Slaac) || has(net, i, &NetConfig::Dhcp6);
        let _ = write!(
            f,
            "\n[Network]\nDHCP={dhcp}\nIPv6AcceptRA={}\n",
            if ra { "yes" } else { "no" }
        );
        let all: Vec<_> = statics(net, i, false)
            .into_iter()
            .chain(statics(net, i, true))
            .collect();
        for (cidr, _) in &all {
            let _ = writeln!(f, "Address={cidr}");
        }
        if net.networks_of(i).next().is_some() {
            for a in &net.dns {
                let _ = writeln!(f, "DNS={a}");
            }
        }
        for (j, child) in net.links.iter().enumerate() {
            if child.vlan.is_some_and(|v| v.parent == i) {
                let _ = writeln!(f, "VLAN=${{IF{j}}}");
            }
        }
        for (_, routes) in &all {
            for r in routes.iter() {
                let _ = write!(f, "\n[Route]\nGateway={}\n", r.gateway);
                if !r.is_default() {
                    let _ = writeln!(f, "Destination={}", r.cidr());
                }
            }
        }
        let path = format!("{dir}/05-nova-guest-${{IF{i}}}.network");
        let _ = write!(
            s,
            "put 644 \"{path}\" <<-EOF || fail \"cannot write {path}\"\n{f}EOF\n"
        );
    }
    s.push_str("reload networkctl reload\n");
    for i in 0..net.links.len() {
        let _ = writeln!(s, "reload networkctl reconfigure \"$IF{i}\"");
    }
    s
}

fn ifcfg(net: &NetworkData) -> String {
    let dir = "/etc/sysconfig/network-scripts";
    let mut s = format!(
        "for f in {dir}/ifcfg-* {dir}/route-* {dir}/route6-*; do\n\
         \t[ -f \"$f\" ] && grep -q '^# Written by nova-guest-agent' \"$f\" && rm -f \"$f\"\n\
         done\n"
    );
    for (i, link) in net.links.iter().enumerate() {
        let mut f = format!("{MARK}\nDEVICE=${{IF{i}}}\nONBOOT=yes\n");
        match link.vlan {
            Some(v) => {
                let _ = writeln!(f, "VLAN=yes\nPHYSDEV=${{IF{}}}\nVLAN_ID={}", v.parent, v.id);
            }
            None => {
                let _ = writeln!(f, "TYPE=Ethernet\nHWADDR={}", link.mac);
            }
        }
        if let Some(mtu) = link.mtu {
            let _ = writeln!(f, "MTU={mtu}");
        }
        let v4 = statics(net, i, false);
        let v6 = statics(net, i, true);
        let dhcp4 = has(net, i, &NetConfig::Dhcp4);
        let _ = writeln!(f, "BOOTPROTO={}", if dhcp4 { "dhcp" } else { "none" });
        let mut routes4 = String::new();
        for (n, (cidr, routes)) in v4.iter().enumerate() {
            let (addr, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
            let _ = writeln!(f, "IPADDR{n}={addr}\nPREFIX{n}={prefix}");
            for r in routes.iter() {
                if r.is_default() {
                    let _ = writeln!(f, "GATEWAY={}\nDEFROUTE=yes", r.gateway);
                } else {
                    let _ = writeln!(routes4, "{} via {} dev ${{IF{i}}}", r.cidr(), r.gateway);
                }
            }
        }
        let v6_on =
            !v6.is_empty() || has(net, i, &NetConfig::Dhcp6) || has(net, i, &NetConfig::Slaac);
        let mut routes6 = String::new();
        if v6_on {
            f.push_str("IPV6INIT=yes\n");
            let _ = writeln!(
                f,
                "IPV6_AUTOCONF={}",
                if has(net, i, &NetConfig::Slaac) {
                    "yes"
                } else {
                    "no"
                }
            );
            if has(net, i, &NetConfig::Dhcp6) {
                f.push_str("DHCPV6C=yes\n");
            }
            for (n, (cidr, routes)) in v6.iter().enumerate() {
                if n == 0 {
                    let _ = writeln!(f, "IPV6ADDR={cidr}");
                } else {
                    let others: Vec<&str> = v6[1..].iter().map(|(c, _)| c.as_str()).collect();
                    if n == 1 {
                        let _ = writeln!(f, "IPV6ADDR_SECONDARIES=\"{}\"", others.join(" "));
                    }
                }
                for r in routes.iter() {
                    if r.is_default() {
                        let _ = writeln!(f, "IPV6_DEFAULTGW={}", r.gateway);
                    } else {
                        let _ = writeln!(routes6, "{} via {} dev ${{IF{i}}}", r.cidr(), r.gateway);
                    }
                }
            }
        }
        if net.networks_of(i).next().is_some() {
            for (n, a) in net.dns.iter().enumerate() {
                let _ = writeln!(f, "DNS{}={a}", n + 1);
            }
        }
        let path = format!("{dir}/ifcfg-${{IF{i}}}");
        let _ = write!(
            s,
            "put 644 \"{path}\" <<-EOF || fail \"cannot write {path}\"\n{f}EOF\n"
        );
        for (name, body) in [("route", routes4), ("route6", routes6)] {
            if !body.is_empty() {
                let path = format!("{dir}/{name}-${{IF{i}}}");
                let _ = write!(
                    s,
                    "put 644 \"{path}\" <<-EOF || fail \"cannot write {path}\"\n{MARK}\n{body}EOF\n"
                );
            }
        }
    }
    s.push_str("command -v nmcli >/dev/null 2>&1 && reload nmcli connection reload\n");
    s
}

fn ifupdown(net: &NetworkData) -> String {
    let path = "/etc/network/interfaces.d/50-nova-guest";
    let mut f = format!("{MARK}\n");
    for (i, link) in net.links.iter().enumerate() {
        let _ = writeln!(f, "\nauto ${{IF{i}}}");
        let mut stanzas = Vec::new();
        for v6 in [false, true] {
            let family = if v6 { "inet6" } else { "inet" };
            let addrs = statics(net, i, v6);
            if let Some(((first, _), rest)) = addrs.split_first() {
                let mut st = format!("iface ${{IF{i}}} {family} static\n    address {first}\n");
                for (cidr, _) in rest {
                    let _ = writeln!(
                        st,
                        "    up ip -{} addr add {cidr} dev ${{IF{i}}}",
                        if v6 { 6 } else { 4 }
                    );
                }
                for (_, routes) in &addrs {
                    for r in routes.iter() {
                        if r.is_default() {
                            let _ = writeln!(st, "    gateway {}", r.gateway);
                        } else {
                            let _ = writeln!(
                                st,
                                "    up ip -{} route replace {} via {} dev ${{IF{i}}}",
                                if v6 { 6 } else { 4 },
                                r.cidr(),
                                r.gateway
                            );
                        }
                    }
                }
                if !v6 && !net.dns.is_empty() {
                    let _ = writeln!(st, "    dns-nameservers {}", dns_list(net, " "));
                }
                stanzas.push(st);
            } else if !v6 && has(net, i, &NetConfig::Dhcp4) {
                stanzas.push(format!("iface ${{IF{i}}} inet dhcp\n"));
            } else if v6 && has(net, i, &NetConfig::Dhcp6) {
                stanzas.push(format!("iface ${{IF{i}}} inet6 dhcp\n"));
            } else if v6 && has(net, i, &NetConfig::Slaac) {
                stanzas.push(format!("iface ${{IF{i}}} inet6 auto\n"));
            }
        }
        if stanzas.is_empty() {
            stanzas.push(format!("iface ${{IF{i}}} inet manual\n"));
        }
        // The first stanza carries the link settings.
        let mut extra = String::new();
        if let Some(v) = link.vlan {
            let _ = writeln!(extra, "    vlan-raw-device ${{IF{}}}", v.parent);
        }
        if let Some(mtu) = link.mtu {
            let _ = writeln!(extra, "    pre-up ip link set dev ${{IF{i}}} mtu {mtu}");
        }
        stanzas[0].push_str(&extra);
        for st in stanzas {
            f.push_str(&st);
        }
    }
    let mut s = format!("put 644 {path} <<-EOF || fail 'cannot write {path}'\n{f}EOF\n");
    s.push_str(
        "grep -qs '^[[:space:]]*source[[:space:]].*interfaces\\.d' /etc/network/interfaces || \
         printf '\\nsource /etc/network/interfaces.d/*\\n' >> /etc/network/interfaces\n",
    );
    for i in 0..net.links.len() {
        let _ = writeln!(
            s,
            "grep -qs \"^[[:space:]]*iface[[:space:]]*$IF{i}[[:space:]]\" /etc/network/interfaces && \
             warn \"/etc/network/interfaces also configures $IF{i}\""
        );
        if net
            .networks_of(i)
            .any(|n| !matches!(n.config, NetConfig::Static { .. }))
        {
            let _ = writeln!(s, "reload ifup \"$IF{i}\"");
        }
    }
    s
}
