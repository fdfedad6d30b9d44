//! What the private libvirtd needs: programs, host directories, its configuration files and
//! the script that becomes PID 1 of its namespace.

use std::fs;
use std::path::Path;

use crate::locate_program;

/// The programs needed, with the Debian package that ships each.
const PROGRAMS: &[(&str, &str)] = &[
    ("libvirtd", "libvirt-daemon-system"),
    ("virsh", "libvirt-clients"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("setpriv", "util-linux"),
    ("bash", "bash"),
    ("timeout", "coreutils"),
];

/// Host directories that the private copies are mounted over (`S/<name>` → path).
/// `/run/libvirt` is not among them: it stays on the namespace's own tmpfs `/run`, as on a
/// real host (libvirt rewrites and fsyncs a domain's status file there on every raw agent
/// command; on a disk that costs milliseconds a call).
pub(super) const BIND_MOUNTS: &[(&str, &str)] = &[
    ("etc", "/etc/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("log", "/var/log/libvirt"),
    ("cache", "/var/cache/libvirt"),
];

/// PID 1 of the private namespace: mounts, then reaps children forever.
const NS_INIT: &str = r#"# PID 1 of the PID and mount namespace of a nova-guest test libvirtd.
set -eu
S=$1
mount -t tmpfs -o mode=0755,size=64m nova-libvirt-run /run
mkdir -p /run/libvirt /run/lock
ln -s /dev/shm /run/shm
mount --bind "$S/etc" /etc/libvirt
mount --bind "$S/lib" /var/lib/libvirt
mount --bind "$S/log" /var/log/libvirt
mount --bind "$S/cache" /var/cache/libvirt
echo ready >"$S/ns-ready"
set +e
# bash reaps every child on SIGCHLD, including the QEMU processes libvirtd daemonizes (they
# are reparented to this PID 1); a zombie QEMU would make `virsh destroy` hang.
while :; do sleep 3600 & wait $!; done
"#;

pub(super) fn check_prerequisites() -> Result<(), String> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Err(format!(
            "the private libvirtd needs root (mount namespaces, QEMU as root); effective uid is {euid}"
        ));
    }
    let missing: Vec<&str> = PROGRAMS
        .iter()
        .filter(|(name, _)| locate_program(name).is_none())
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        let names: Vec<&str> = PROGRAMS
            .iter()
            .filter(|(name, _)| locate_program(name).is_none())
            .map(|(name, _)| *name)
            .collect();
        return Err(format!(
            "{} not installed: run `apt-get install --no-install-recommends {}` (./scripts/test installs them)",
            names.join(", "),
            dedup(&missing).join(" ")
        ));
    }
    for (_, mount) in BIND_MOUNTS {
        if !Path::new(mount).is_dir() {
            return Err(format!(
                "{mount} is missing (the private libvirtd mounts over it): run `apt-get install --no-install-recommends libvirt-daemon-system`"
            ));
        }
    }
    Ok(())
}

fn dedup<'a>(items: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for item in items {
        if !out.contains(item) {
            out.push(item);
        }
    }
    out
}

pub(super) fn write_layout(dir: &Path, options: &super::LibvirtdOptions) -> Result<(), String> {
    let write = |rel: &str, text: &str| {
        let path = dir.join(rel);
        fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    for sub in ["etc/qemu", "lib", "log/qemu", "cache", "sock"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    }
    write(
        "etc/libvirtd.conf",
        &libvirtd_conf(&dir.join("sock"), options),
    )?;
    write("etc/qemu.conf", QEMU_CONF)?;
    write("ns-init.sh", NS_INIT)
}

fn libvirtd_conf(sock_dir: &Path, options: &super::LibvirtdOptions) -> String {
    let mut keepalive = String::new();
    if let Some((interval, count)) = options.keepalive {
        keepalive = format!("keepalive_interval = {interval}\nkeepalive_count = {count}\n");
    }
    format!(
        r#"# Written by qga-testing for a private test libvirtd.
unix_sock_dir = "{}"
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
listen_tls = 0
listen_tcp = 0
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
{keepalive}"#,
        sock_dir.display()
    )
}

const QEMU_CONF: &str = r#"# Written by qga-testing for a private test libvirtd.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_points_sockets_outside_the_bind_mounts() {
        let conf = libvirtd_conf(Path::new("/tmp/nova-lv-x/sock"), &Default::default());
        assert!(conf.contains("unix_sock_dir = \"/tmp/nova-lv-x/sock\""));
        assert!(conf.contains("auth_unix_rw = \"none\""));
        assert!(!conf.contains("keepalive"));
        let options = super::super::LibvirtdOptions {
            keepalive: Some((1, 2)),
        };
        let conf = libvirtd_conf(Path::new("/s"), &options);
        assert!(
            conf.contains("keepalive_interval = 1\nkeepalive_count = 2\n"),
            "{conf}"
        );
        assert!(QEMU_CONF.contains("security_driver = \"none\""));
        assert!(QEMU_CONF.contains("stdio_handler = \"file\""));
    }

    #[test]
    fn dedup_keeps_order() {
        assert_eq!(dedup(&["a", "b", "a"]), ["a", "b"]);
    }
}
