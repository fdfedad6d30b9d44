//! A real qemu-ga in a tiny Linux guest under QEMU TCG, as a test fixture.
//!
//! [`VmImage::build`] runs `tests/vm/build-guest.sh`, which builds (once, then from its cache) a
//! Debian kernel plus an initramfs holding busybox, the distribution's `qemu-ga` and an `/init`
//! that keeps the agent running on the virtio-serial port `org.qemu.guest_agent.0`.
//! [`Vm::boot`] starts QEMU as a foreground child with the agent's chardev and a QMP monitor on
//! UNIX sockets in a short temporary directory, and returns once the agent has answered
//! `guest-sync-delimited`.
//!
//! The guest is disposable, so every dangerous command is fair game: guest-shutdown,
//! guest-set-user-password (user `tester`), fsfreeze (an ext4 disk is mounted on `/mnt/data`),
//! guest-exec, guest-file-*, and killing qemu-ga (`/init` restarts it after 1 s).
//!
//! QEMU always runs with TCG (never KVM) and is killed with SIGKILL when the [`Vm`] is dropped,
//! also while unwinding from a panic. As a second line of defence QEMU is started through
//! `setpriv --pdeathsig KILL` from a thread that lives as long as the process, so it also dies
//! when the test process itself is killed.
//!
//! The module is split by job: `image` builds and finds the guest image, `qemu` turns
//! [`VmOptions`] into a QEMU command line and spawns it, `machine` is the running [`Vm`]
//! (boot, logs, exit, kill) and `agent` waits for the guest's qemu-ga with the
//! `guest-sync-delimited` handshake.
//!
//! ```no_run
//! use qga_testing::vm::{Vm, VmImage, VmOptions};
//!
//! let image = VmImage::build().unwrap();
//! let vm = Vm::boot(&image, VmOptions::default()).unwrap();
//! println!("agent answered {:?} after QEMU started", vm.boot_time());
//! let socket = vm.qga_socket(); // connect, 0xFF + guest-sync-delimited, talk
//! # let _ = socket;
//! ```

mod agent;
mod image;
mod machine;
mod qemu;

pub use self::image::VmImage;
pub use self::machine::Vm;
pub use self::qemu::VmOptions;
pub(crate) use self::qemu::spawn_from_reaper_thread;

/// The QEMU binary that is run.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";
/// Name of the agent's virtio-serial port.
pub const AGENT_PORT_NAME: &str = "org.qemu.guest_agent.0";
/// QEMU id of the agent's `virtserialport` device (`data.id` of `VSERPORT_CHANGE`).
pub const AGENT_PORT_ID: &str = "channel0";
/// The guest's static IPv4 address on the slirp network.
pub const GUEST_IP: &str = "10.0.2.15";
/// The NIC's MAC address unless [`VmOptions::mac`] says otherwise.
pub const DEFAULT_MAC: &str = "52:54:00:12:34:56";
/// Guest host name.
pub const GUEST_HOSTNAME: &str = "nova-test-vm";
/// Where the guest mounts the virtio disk (ext4), when one is attached.
pub const GUEST_DATA_MOUNT: &str = "/mnt/data";
/// Longest path a UNIX socket address can hold on Linux (108 bytes including the NUL).
pub const MAX_UNIX_SOCKET_PATH: usize = 107;

/// Lines of console output quoted in error messages.
const ERROR_TAIL_LINES: usize = 40;

/// The last `n` lines of `text`, with a final newline unless empty.
/// The interface with hardware address `mac` (any case) in a `guest-network-get-interfaces`
/// result.
pub fn nic_with_mac<'a>(
    interfaces: &'a serde_json::Value,
    mac: &str,
) -> Option<&'a serde_json::Value> {
    interfaces.as_array()?.iter().find(|i| {
        i["hardware-address"]
            .as_str()
            .is_some_and(|m| m.eq_ignore_ascii_case(mac))
    })
}

pub(crate) fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    let mut out = lines[start..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
