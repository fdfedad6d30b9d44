//! The QEMU side: options, the command line, and spawning QEMU so that it dies with the test
//! process.

use std::io;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use super::{AGENT_PORT_ID, AGENT_PORT_NAME, DEFAULT_MAC, VmImage};

/// How to start the guest. `VmOptions::default()` is what the tests want.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmOptions {
    /// Guest memory in MiB (default 256).
    pub memory_mib: u32,
    /// The NIC's MAC address (default [`DEFAULT_MAC`]).
    pub mac: String,
    /// Attach a copy of the ext4 disk template as `/dev/vda`, mounted on `/mnt/data`
    /// (default true; fsfreeze freezes nothing without it).
    pub disk: bool,
    /// Extra kernel command line words. `/init` understands `qga.verbose=1` (qemu-ga `-v`),
    /// `qga.respawn=0` (do not restart qemu-ga), `qga.args=A,B` (extra qemu-ga arguments,
    /// comma separated) and `qga.disk=0` (do not mount the disk).
    pub append: Vec<String>,
    /// Extra QEMU arguments, appended last.
    pub qemu_args: Vec<String>,
    /// Deadline for QEMU start plus the first answered `guest-sync-delimited` (default 120 s;
    /// a loaded CI machine stretches a 3 s boot to 12 s and more).
    pub boot_timeout: Duration,
    /// Run QEMU under `nice -n N` (default none).
    pub niceness: Option<i32>,
    /// Keep the temporary directory (console.log, sockets, disk) after the VM is dropped
    /// (default: true if the environment variable `NOVA_GUEST_VM_KEEP` is set).
    pub keep_dir: bool,
}

impl Default for VmOptions {
    fn default() -> Self {
        Self {
            memory_mib: 256,
            mac: DEFAULT_MAC.to_owned(),
            disk: true,
            append: Vec::new(),
            qemu_args: Vec::new(),
            boot_timeout: Duration::from_secs(120),
            niceness: None,
            keep_dir: std::env::var_os("NOVA_GUEST_VM_KEEP").is_some(),
        }
    }
}

/// Doubles commas, as QEMU option values require.
pub(super) fn qemu_opt_value(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

pub(super) fn qemu_args(
    image: &VmImage,
    options: &VmOptions,
    dir: &Path,
    console_log: &Path,
    qmp_socket: &Path,
    qga_socket: &Path,
    disk: Option<&Path>,
) -> Vec<String> {
    let mut append = String::from("console=ttyS0 quiet panic=-1");
    for word in &options.append {
        append.push(' ');
        append.push_str(word);
    }
    let mut args: Vec<String> = [
        "-accel",
        "tcg",
        "-m",
        &options.memory_mib.to_string(),
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-kernel",
        &image.kernel.to_string_lossy(),
        "-initrd",
        &image.initrd.to_string_lossy(),
        "-append",
        &append,
        "-chardev",
        &format!("file,id=con0,path={}", qemu_opt_value(console_log)),
        "-serial",
        "chardev:con0",
        "-chardev",
        &format!(
            "socket,id=qmp0,path={},server=on,wait=off",
            qemu_opt_value(qmp_socket)
        ),
        "-mon",
        "chardev=qmp0,mode=control",
        "-device",
        "virtio-serial-pci,id=vser0",
        "-chardev",
        &format!(
            "socket,id=qga0,path={},server=on,wait=off",
            qemu_opt_value(qga_socket)
        ),
        "-device",
        &format!(
            "virtserialport,id={AGENT_PORT_ID},bus=vser0.0,chardev=qga0,name={AGENT_PORT_NAME}"
        ),
        "-netdev",
        "user,id=net0,restrict=on",
        "-device",
        &format!("virtio-net-pci,netdev=net0,mac={}", options.mac),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if let Some(disk) = disk {
        args.push("-drive".into());
        args.push(format!(
            "file={},if=virtio,format=raw",
            qemu_opt_value(disk)
        ));
    }
    args.push("-pidfile".into());
    args.push(dir.join("qemu.pid").to_string_lossy().into_owned());
    args.extend(options.qemu_args.iter().cloned());
    args
}

pub(super) fn setpriv_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the process. `--pdeathsig` fires when the
/// *thread* that forked the child exits, so spawning from a short-lived test thread would kill
/// a VM that outlives it.
pub(crate) fn spawn_from_reaper_thread(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        // If the thread cannot be started, `rx` is dropped, sending fails and the caller
        // spawns directly (losing only the parent-death safety net).
        let _ = thread::Builder::new()
            .name("nova-vm-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    let sent = spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx));
    match sent {
        Ok(()) => reply_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the VM spawner thread is gone"))),
        Err(mpsc::SendError((mut cmd, _))) => cmd.spawn(),
    }
}
