//! Unit tests of the VM fixture, and one boot of the real guest.

use super::agent::fresh_sync_id;
use super::qemu::{qemu_args, qemu_opt_value};
use super::*;

use std::fs;
use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

#[test]
fn option_values_double_commas() {
    assert_eq!(qemu_opt_value(Path::new("/tmp/a,b/c")), "/tmp/a,,b/c");
    assert_eq!(qemu_opt_value(Path::new("/tmp/x")), "/tmp/x");
}

#[test]
fn sync_ids_are_fresh_and_bounded() {
    let a = fresh_sync_id();
    let b = fresh_sync_id();
    assert_ne!(a, b);
    assert!(a <= qga_proto::sync::MAX_SYNC_ID && a > 0);
}

#[test]
fn tail_keeps_last_lines() {
    assert_eq!(tail_lines("a\nb\nc\n", 2), "b\nc\n");
    assert_eq!(tail_lines("", 2), "");
}

#[test]
fn command_line_has_the_agent_port_and_no_kvm() {
    let image = VmImage {
        dir: "/i".into(),
        kernel: "/i/vmlinux".into(),
        initrd: "/i/initramfs.cpio.gz".into(),
        disk_template: "/i/disk.img".into(),
    };
    let opts = VmOptions {
        append: vec!["qga.verbose=1".into()],
        ..VmOptions::default()
    };
    let d = Path::new("/tmp/nova-vm-x");
    let args = qemu_args(
        &image,
        &opts,
        d,
        &d.join("console.log"),
        &d.join("qmp.sock"),
        &d.join("qga.sock"),
        Some(&d.join("disk.img")),
    );
    let joined = args.join(" ");
    assert!(joined.contains("-accel tcg"));
    assert!(!joined.contains("kvm"));
    assert!(joined.contains(
        "virtserialport,id=channel0,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0"
    ));
    assert!(joined.contains("mac=52:54:00:12:34:56"));
    assert!(joined.contains("file=/tmp/nova-vm-x/disk.img,if=virtio,format=raw"));
    let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
    assert_eq!(append, "console=ttyS0 quiet panic=-1 qga.verbose=1");
}

/// Boots the real guest once: first sync, a second handshake on a new connection, then
/// guest-shutdown makes QEMU exit.
#[test]
fn boots_real_guest_and_shuts_down() {
    let image = VmImage::build().unwrap_or_else(|e| panic!("{e}"));
    let vm = Vm::boot(&image, VmOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("boot to first sync: {:?}", vm.boot_time());
    assert!(vm.is_running());
    assert!(vm.boot_time() > Duration::ZERO);
    assert_eq!(vm.guest_ip(), "10.0.2.15");
    assert_eq!(vm.mac(), DEFAULT_MAC);
    let pidfile = fs::read_to_string(vm.dir().join("qemu.pid")).unwrap();
    assert_eq!(pidfile.trim(), vm.pid().to_string());

    vm.wait_for_agent(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(vm.console_text().contains("nova-init: starting qemu-ga"));

    let mut s = UnixStream::connect(vm.qga_socket()).unwrap();
    s.write_all(b"{\"execute\":\"guest-shutdown\"}\n").unwrap();
    let status = vm.wait_exit(Duration::from_secs(60));
    assert!(
        status.is_some(),
        "QEMU still running 60 s after guest-shutdown\n{}",
        vm.console_tail(20)
    );
    assert!(!vm.is_running());
}
