//! libvirt's answers to the dedicated calls, in the shape of the agent's own replies: the
//! client then decodes them exactly as it decodes the agent's (the same response types).

use qga_proto::message::{ErrorBody, ErrorClass};
use serde_json::{Map, Value, json};
use virt_proto::remote::guest::{Interfaces, IpAddr};
use virt_proto::remote::guest_info::{Filesystem, GuestInfo, OsInfo, Timezone, User};

use crate::error::Error;

/// Which part of `DOMAIN_GET_GUEST_INFO` a command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InfoQuery {
    Os,
    HostName,
    Users,
    Timezone,
    Filesystems,
}

impl InfoQuery {
    /// The `types` bit of `DOMAIN_GET_GUEST_INFO`.
    pub(crate) fn types(self) -> u32 {
        use virt_proto::remote::guest::guest_info as t;
        match self {
            Self::Os => t::OS,
            Self::HostName => t::HOSTNAME,
            Self::Users => t::USERS,
            Self::Timezone => t::TIMEZONE,
            Self::Filesystems => t::FILESYSTEM,
        }
    }

    /// The agent command libvirt runs for it.
    fn agent_command(self) -> &'static str {
        match self {
            Self::Os => "guest-get-osinfo",
            Self::HostName => "guest-get-host-name",
            Self::Users => "guest-get-users",
            Self::Timezone => "guest-get-timezone",
            Self::Filesystems => "guest-get-fsinfo",
        }
    }

    /// The agent's `return` value, or the error the agent would have given: libvirt leaves
    /// out, without an error, a group whose command the agent lacks or has disabled.
    pub(crate) fn reply(self, command: &str, info: GuestInfo) -> Result<Value, Error> {
        let value = match self {
            Self::Os => info.os.map(os),
            Self::HostName => info.hostname.map(|h| json!({ "host-name": h })),
            Self::Users => info
                .users
                .map(|u| Value::Array(u.iter().map(user).collect())),
            Self::Timezone => info.timezone.map(timezone),
            Self::Filesystems => info
                .filesystems
                .map(|f| Value::Array(f.iter().map(filesystem).collect())),
        };
        value.ok_or_else(|| Error::Agent {
            command: command.to_owned(),
            error: ErrorBody {
                class: ErrorClass::CommandNotFound,
                desc: format!(
                    "libvirt's guest info has no answer for {}: the agent does not support it \
                     or has it disabled",
                    self.agent_command()
                ),
            },
        })
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), Value::String(v.clone()));
    }
}

fn os(os: OsInfo) -> Value {
    let mut map = Map::new();
    put(&mut map, "id", &os.id);
    put(&mut map, "name", &os.name);
    put(&mut map, "pretty-name", &os.pretty_name);
    put(&mut map, "version", &os.version);
    put(&mut map, "version-id", &os.version_id);
    put(&mut map, "machine", &os.machine);
    put(&mut map, "variant", &os.variant);
    put(&mut map, "variant-id", &os.variant_id);
    put(&mut map, "kernel-release", &os.kernel_release);
    put(&mut map, "kernel-version", &os.kernel_version);
    Value::Object(map)
}

fn user(u: &User) -> Value {
    let mut map = Map::new();
    map.insert("user".into(), Value::String(u.name.clone()));
    // libvirt keeps milliseconds; the agent says seconds as a float.
    map.insert("login-time".into(), json!(u.login_time_ms as f64 / 1000.0));
    put(&mut map, "domain", &u.domain);
    Value::Object(map)
}

fn timezone(t: Timezone) -> Value {
    let mut map = Map::new();
    put(&mut map, "zone", &t.name);
    map.insert("offset".into(), json!(t.offset));
    Value::Object(map)
}

fn filesystem(f: &Filesystem) -> Value {
    let mut map = Map::new();
    map.insert("name".into(), Value::String(f.name.clone()));
    map.insert("mountpoint".into(), Value::String(f.mountpoint.clone()));
    map.insert("type".into(), Value::String(f.fs_type.clone()));
    if let Some(n) = f.used_bytes {
        map.insert("used-bytes".into(), json!(n));
    }
    if let Some(n) = f.total_bytes {
        map.insert("total-bytes".into(), json!(n));
    }
    // libvirt reports the disks by alias and device node, not by address: the agent's
    // `disk` entries (bus, target, unit, PCI controller) cannot be rebuilt.
    map.insert("disk".into(), Value::Array(Vec::new()));
    Value::Object(map)
}

/// `DOMAIN_INTERFACE_ADDRESSES` as `guest-network-get-interfaces` (without statistics).
pub(crate) fn interfaces(ifaces: Interfaces) -> Value {
    let list = ifaces
        .0
        .into_iter()
        .map(|i| {
            let addrs: Vec<Value> = i
                .addrs
                .into_iter()
                .map(|a| {
                    let kind = if a.kind == IpAddr::IPV6 {
                        "ipv6"
                    } else {
                        "ipv4"
                    };
                    json!({ "ip-address": a.addr, "ip-address-type": kind, "prefix": a.prefix })
                })
                .collect();
            let mut map = Map::new();
            map.insert("name".into(), Value::String(i.name));
            put(&mut map, "hardware-address", &i.hwaddr);
            map.insert("ip-addresses".into(), Value::Array(addrs));
            Value::Object(map)
        })
        .collect();
    Value::Array(list)
}

#[cfg(test)]
mod tests {
    use qga_proto::qga::{
        GuestFilesystemInfo, GuestHostName, GuestNetworkInterface, GuestOsInfo, GuestTimezone,
        GuestUser,
    };
    use virt_proto::remote::guest::Interface;
    use virt_proto::remote::guest_info::FsDisk;

    use super::*;

    fn info() -> GuestInfo {
        GuestInfo {
            os: Some(OsInfo {
                id: Some("debian".into()),
                kernel_release: Some("6.1.0".into()),
                ..OsInfo::default()
            }),
            hostname: Some("g".into()),
            timezone: Some(Timezone {
                name: None,
                offset: 3600,
            }),
            users: Some(vec![User {
                name: "root".into(),
                domain: None,
                login_time_ms: 1_500,
            }]),
            filesystems: Some(vec![Filesystem {
                mountpoint: "/".into(),
                name: "vda1".into(),
                fs_type: "ext4".into(),
                total_bytes: Some(10),
                used_bytes: None,
                disks: vec![FsDisk::default()],
            }]),
        }
    }

    #[test]
    fn decode_as_the_agent_replies_do() {
        let os: GuestOsInfo =
            serde_json::from_value(InfoQuery::Os.reply("c", info()).unwrap()).unwrap();
        assert_eq!(os.id.as_deref(), Some("debian"));
        assert_eq!(os.kernel_release.as_deref(), Some("6.1.0"));
        let h: GuestHostName =
            serde_json::from_value(InfoQuery::HostName.reply("c", info()).unwrap()).unwrap();
        assert_eq!(h.host_name, "g");
        let u: Vec<GuestUser> =
            serde_json::from_value(InfoQuery::Users.reply("c", info()).unwrap()).unwrap();
        assert_eq!(u[0].login_time, 1.5);
        let t: GuestTimezone =
            serde_json::from_value(InfoQuery::Timezone.reply("c", info()).unwrap()).unwrap();
        assert_eq!((t.zone, t.offset), (None, 3600));
        let f: Vec<GuestFilesystemInfo> =
            serde_json::from_value(InfoQuery::Filesystems.reply("c", info()).unwrap()).unwrap();
        assert_eq!(
            (f[0].fs_type.as_str(), f[0].total_bytes),
            ("ext4", Some(10))
        );
        let ifaces = Interfaces(vec![Interface {
            name: "eth0".into(),
            hwaddr: Some("52:54:00:12:34:56".into()),
            addrs: vec![IpAddr {
                kind: IpAddr::IPV6,
                addr: "fe80::1".into(),
                prefix: 64,
            }],
        }]);
        let i: Vec<GuestNetworkInterface> = serde_json::from_value(interfaces(ifaces)).unwrap();
        assert!(i[0].has_mac("52:54:00:12:34:56"));
        assert_eq!(i[0].ip_addresses[0].prefix, 64);
    }

    #[test]
    fn a_missing_group_is_the_agent_saying_not_found() {
        let e = InfoQuery::Users
            .reply("guest-get-users", GuestInfo::default())
            .unwrap_err();
        assert!(e.is_command_not_found(), "{e:?}");
        assert!(e.to_string().contains("guest-get-users"));
    }
}
