//! A typed view of the parameters [`DomainGetGuestInfo`](super::guest::DomainGetGuestInfo)
//! returns.
//!
//! libvirt flattens what it asked the guest agent into typed parameters with dotted names:
//! `os.name`, `hostname`, `timezone.offset`, `user.count` with `user.0.name`…, `fs.count` with
//! `fs.0.mountpoint`… and `fs.0.disk.count` with `fs.0.disk.0.alias`… (the names are those of
//! `virDomainGetGuestInfo`'s documentation). [`GuestInfo::from_params`] reads them back into
//! structs.
//!
//! The server is not trusted: a `*.count` never sizes anything or drives a loop. It only
//! bounds the indices accepted; the entries are collected from the parameters actually
//! present, so the work is bounded by the number received (itself bounded by
//! `REMOTE_DOMAIN_GUEST_INFO_PARAMS_MAX`). Parameters of an unexpected type are ignored, as
//! missing ones are.

use std::collections::BTreeMap;

use super::guest::TypedParams;
use crate::types::TypedValue;

/// `os.*`: the guest's `guest-get-osinfo` as libvirt reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsInfo {
    /// `os.id`.
    pub id: Option<String>,
    /// `os.name`.
    pub name: Option<String>,
    /// `os.pretty-name`.
    pub pretty_name: Option<String>,
    /// `os.version`.
    pub version: Option<String>,
    /// `os.version-id`.
    pub version_id: Option<String>,
    /// `os.machine`.
    pub machine: Option<String>,
    /// `os.variant`.
    pub variant: Option<String>,
    /// `os.variant-id`.
    pub variant_id: Option<String>,
    /// `os.kernel-release`.
    pub kernel_release: Option<String>,
    /// `os.kernel-version`.
    pub kernel_version: Option<String>,
}

impl OsInfo {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// `timezone.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timezone {
    /// `timezone.name`, when the guest knows one.
    pub name: Option<String>,
    /// `timezone.offset`: seconds east of UTC.
    pub offset: i64,
}

/// `user.<n>.*`: a logged-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `user.<n>.name`.
    pub name: String,
    /// `user.<n>.domain` (Windows guests).
    pub domain: Option<String>,
    /// `user.<n>.login-time`: milliseconds since the Unix epoch.
    pub login_time_ms: u64,
}

/// `fs.<n>.disk.<m>.*`: a disk under a file system.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FsDisk {
    /// `…alias`: libvirt's alias of the disk (`vda`), when it matched one.
    pub alias: Option<String>,
    /// `…serial`.
    pub serial: Option<String>,
    /// `…device`: the guest's device node (`/dev/vda`).
    pub device: Option<String>,
}

/// `fs.<n>.*`: a mounted file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filesystem {
    /// `fs.<n>.mountpoint`.
    pub mountpoint: String,
    /// `fs.<n>.name`: the device name in the guest.
    pub name: String,
    /// `fs.<n>.fstype`.
    pub fs_type: String,
    /// `fs.<n>.total-bytes`.
    pub total_bytes: Option<u64>,
    /// `fs.<n>.used-bytes`.
    pub used_bytes: Option<u64>,
    /// `fs.<n>.disk.<m>.*`.
    pub disks: Vec<FsDisk>,
}

/// What [`DomainGetGuestInfo`](super::guest::DomainGetGuestInfo) returned, by group. A group
/// is `None` (or empty) when it was not asked for or the agent does not support it (libvirt
/// then leaves it out without an error).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestInfo {
    /// `os.*`.
    pub os: Option<OsInfo>,
    /// `hostname`.
    pub hostname: Option<String>,
    /// `timezone.*`.
    pub timezone: Option<Timezone>,
    /// `user.*`; `None` when `user.count` is absent.
    pub users: Option<Vec<User>>,
    /// `fs.*`; `None` when `fs.count` is absent.
    pub filesystems: Option<Vec<Filesystem>>,
}

/// The value of `field`, if it is a string.
fn string(params: &TypedParams, field: &str) -> Option<String> {
    params
        .get(field)
        .and_then(TypedValue::as_str)
        .map(str::to_owned)
}

/// `<group>.<index>.<rest>` with `index` below the group's count, else `None`.
fn indexed<'a>(field: &'a str, group: &str, count: Option<u64>) -> Option<(u64, &'a str)> {
    let rest = field.strip_prefix(group)?.strip_prefix('.')?;
    let (index, rest) = rest.split_once('.')?;
    // Digits only: `+1` or `01` are not libvirt's.
    if index.is_empty()
        || !index.bytes().all(|b| b.is_ascii_digit())
        || (index.len() > 1 && index.starts_with('0'))
    {
        return None;
    }
    let index: u64 = index.parse().ok()?;
    (index < count?).then_some((index, rest))
}

#[derive(Default)]
struct FsParts {
    mountpoint: Option<String>,
    name: Option<String>,
    fs_type: Option<String>,
    total_bytes: Option<u64>,
    used_bytes: Option<u64>,
    disk_count: Option<u64>,
    disks: BTreeMap<u64, FsDisk>,
}

impl GuestInfo {
    /// Reads the groups out of `params`. Never fails: what is missing or malformed is left
    /// out. One pass over the parameters (plus a lookup of each count): the work is bounded by
    /// what the server sent, whatever counts it claims.
    #[must_use]
    pub fn from_params(params: &TypedParams) -> Self {
        let count = |field: &str| params.get(field).and_then(TypedValue::as_u64);
        let os = OsInfo {
            id: string(params, "os.id"),
            name: string(params, "os.name"),
            pretty_name: string(params, "os.pretty-name"),
            version: string(params, "os.version"),
            version_id: string(params, "os.version-id"),
            machine: string(params, "os.machine"),
            variant: string(params, "os.variant"),
            variant_id: string(params, "os.variant-id"),
            kernel_release: string(params, "os.kernel-release"),
            kernel_version: string(params, "os.kernel-version"),
        };
        let timezone = params
            .get("timezone.offset")
            .and_then(TypedValue::as_i64)
            .map(|offset| Timezone {
                name: string(params, "timezone.name"),
                offset,
            });
        let user_count = count("user.count");
        let fs_count = count("fs.count");
        let mut users: BTreeMap<u64, (Option<String>, Option<String>, u64)> = BTreeMap::new();
        let mut fs: BTreeMap<u64, FsParts> = BTreeMap::new();
        for p in &params.0 {
            if let Some((i, field)) = indexed(&p.field, "user", user_count) {
                let user = users.entry(i).or_default();
                match field {
                    "name" => user.0 = p.value.as_str().map(str::to_owned),
                    "domain" => user.1 = p.value.as_str().map(str::to_owned),
                    "login-time" => user.2 = p.value.as_u64().unwrap_or(0),
                    _ => {}
                }
            } else if let Some((i, field)) = indexed(&p.field, "fs", fs_count) {
                let parts = fs.entry(i).or_default();
                let text = || p.value.as_str().map(str::to_owned);
                match field {
                    "mountpoint" => parts.mountpoint = text(),
                    "name" => parts.name = text(),
                    "fstype" => parts.fs_type = text(),
                    "total-bytes" => parts.total_bytes = p.value.as_u64(),
                    "used-bytes" => parts.used_bytes = p.value.as_u64(),
                    "disk.count" => parts.disk_count = p.value.as_u64(),
                    _ => {}
                }
            }
        }
        // Disks need their file system's `disk.count`, known only after the first pass.
        for p in &params.0 {
            let Some((i, field)) = indexed(&p.field, "fs", fs_count) else {
                continue;
            };
            let Some(parts) = fs.get_mut(&i) else {
                continue;
            };
            let Some((j, field)) = indexed(field, "disk", parts.disk_count) else {
                continue;
            };
            let disk = parts.disks.entry(j).or_default();
            let text = p.value.as_str().map(str::to_owned);
            match field {
                "alias" => disk.alias = text,
                "serial" => disk.serial = text,
                "device" => disk.device = text,
                _ => {}
            }
        }
        let users = user_count.map(|_| {
            users
                .into_values()
                .filter_map(|(name, domain, login_time_ms)| {
                    Some(User {
                        name: name?,
                        domain,
                        login_time_ms,
                    })
                })
                .collect()
        });
        let filesystems = fs_count.map(|_| {
            fs.into_values()
                .filter_map(|parts| {
                    Some(Filesystem {
                        mountpoint: parts.mountpoint?,
                        name: parts.name.unwrap_or_default(),
                        fs_type: parts.fs_type.unwrap_or_default(),
                        total_bytes: parts.total_bytes,
                        used_bytes: parts.used_bytes,
                        disks: parts
                            .disks
                            .into_values()
                            .filter(|d| *d != FsDisk::default())
                            .collect(),
                    })
                })
                .collect()
        });
        Self {
            os: (!os.is_empty()).then_some(os),
            hostname: string(params, "hostname"),
            timezone,
            users,
            filesystems,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::TypedParam;

    fn s(field: &str, v: &str) -> TypedParam {
        TypedParam::new(field, TypedValue::String(v.into()))
    }

    fn u(field: &str, v: u64) -> TypedParam {
        TypedParam::new(field, TypedValue::ULLong(v))
    }

    #[test]
    fn reads_every_group() {
        let params = TypedParams(vec![
            TypedParam::new("user.count", TypedValue::UInt(1)),
            s("user.0.name", "root"),
            u("user.0.login-time", 1_700_000_000_123),
            s("os.id", "debian"),
            s("os.kernel-release", "6.1.0"),
            s("timezone.name", "UTC"),
            TypedParam::new("timezone.offset", TypedValue::Int(0)),
            s("hostname", "guest"),
            TypedParam::new("fs.count", TypedValue::UInt(2)),
            s("fs.0.name", "vda"),
            s("fs.0.mountpoint", "/mnt/data"),
            s("fs.0.fstype", "ext4"),
            u("fs.0.total-bytes", 100),
            u("fs.0.used-bytes", 10),
            TypedParam::new("fs.0.disk.count", TypedValue::UInt(1)),
            s("fs.0.disk.0.alias", "vda"),
            s("fs.0.disk.0.device", "/dev/vda"),
            // fs.1 has no mount point: left out.
            s("fs.1.name", "x"),
        ]);
        let info = GuestInfo::from_params(&params);
        let os = info.os.unwrap();
        assert_eq!(os.id.as_deref(), Some("debian"));
        assert_eq!(os.kernel_release.as_deref(), Some("6.1.0"));
        assert_eq!(os.name, None);
        assert_eq!(info.hostname.as_deref(), Some("guest"));
        assert_eq!(
            info.timezone,
            Some(Timezone {
                name: Some("UTC".into()),
                offset: 0
            })
        );
        let users = info.users.unwrap();
        assert_eq!(users[0].name, "root");
        assert_eq!(users[0].login_time_ms, 1_700_000_000_123);
        let fs = info.filesystems.unwrap();
        assert_eq!(fs.len(), 1);
        assert_eq!(fs[0].mountpoint, "/mnt/data");
        assert_eq!(fs[0].used_bytes, Some(10));
        assert_eq!(fs[0].disks[0].device.as_deref(), Some("/dev/vda"));
    }

    #[test]
    fn absent_groups_and_hostile_counts() {
        assert_eq!(
            GuestInfo::from_params(&TypedParams::default()),
            GuestInfo::default()
        );
        // A count of 4 billion with nothing behind it costs two lookups.
        let params = TypedParams(vec![
            u("user.count", u64::from(u32::MAX)),
            TypedParam::new("fs.count", TypedValue::Int(-5)),
            TypedParam::new("hostname", TypedValue::Int(3)),
        ]);
        let info = GuestInfo::from_params(&params);
        assert_eq!(info.users, Some(vec![]));
        assert_eq!(info.filesystems, None);
        assert_eq!(info.hostname, None);
    }
}
