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
//! ```no_run
//! use qga_testing::vm::{Vm, VmImage, VmOptions};
//!
//! let image = VmImage::build().unwrap();
//! let vm = Vm::boot(&image, VmOptions::default()).unwrap();
//! println!("agent answered {:?} after QEMU started", vm.boot_time());
//! let socket = vm.qga_socket(); // connect, 0xFF + guest-sync-delimited, talk
//! # let _ = socket;
//! ```

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use qga_proto::codec::FrameDecoder;
use qga_proto::sync::{Handshake, Progress};

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

/// How often a new `guest-sync-delimited` is sent while waiting for the agent.
const SYNC_RESEND: Duration = Duration::from_secs(2);
/// Read timeout on the agent socket while waiting.
const SYNC_READ_TIMEOUT: Duration = Duration::from_millis(200);
/// How long QEMU may take to create its sockets.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of console output quoted in error messages.
const ERROR_TAIL_LINES: usize = 40;

const INSTALL_HINT: &str = "the test VM needs Debian bookworm packages qemu-system-x86 qemu-guest-agent busybox-static cpio kmod e2fsprogs xz-utils \
     and a kernel .deb from apt; `sudo tests/vm/build-guest.sh` installs them and builds the image \
     (or: sudo apt-get install --no-install-recommends qemu-system-x86 qemu-guest-agent busybox-static cpio kmod e2fsprogs xz-utils)";

/// The built guest: kernel, initramfs and disk template, from the build script's cache
/// directory (`$NOVA_GUEST_VM_DIR`, default `<repo>/target/vm-guest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmImage {
    /// The cache directory printed by the build script.
    pub dir: PathBuf,
    /// `vmlinux` (uncompressed ELF, PVH boot) or, failing that, `vmlinuz`.
    pub kernel: PathBuf,
    /// `initramfs.cpio.gz`.
    pub initrd: PathBuf,
    /// `disk.img`: pristine raw ext4 image; [`Vm::boot`] copies it, never use it directly.
    pub disk_template: PathBuf,
}

impl VmImage {
    /// Runs the build script (a cache hit takes well under a second) and returns the image.
    /// The result, success or error, is computed once per process.
    ///
    /// The error says what to install or run.
    pub fn build() -> Result<Self, String> {
        static IMAGE: OnceLock<Result<VmImage, String>> = OnceLock::new();
        IMAGE.get_or_init(build_image).clone()
    }

    /// Path of `tests/vm/build-guest.sh`.
    pub fn script_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vm/build-guest.sh")
    }

    /// The image in an existing cache directory, without running the build script.
    pub fn from_dir(dir: impl Into<PathBuf>) -> Result<Self, String> {
        let dir = dir.into();
        let kernel = ["vmlinux", "vmlinuz"]
            .iter()
            .map(|name| dir.join(name))
            .find(|p| p.is_file())
            .ok_or_else(|| format!("no vmlinux or vmlinuz in {}", dir.display()))?;
        let initrd = dir.join("initramfs.cpio.gz");
        let disk_template = dir.join("disk.img");
        for path in [&initrd, &disk_template] {
            if !path.is_file() {
                return Err(format!("{} is missing", path.display()));
            }
        }
        Ok(Self {
            dir,
            kernel,
            initrd,
            disk_template,
        })
    }

    /// The build script's `manifest.txt` (package versions and artefact checksums).
    pub fn manifest(&self) -> String {
        fs::read_to_string(self.dir.join("manifest.txt")).unwrap_or_default()
    }
}

fn build_image() -> Result<VmImage, String> {
    let script = VmImage::script_path();
    if !script.is_file() {
        return Err(format!(
            "the guest build script {} is missing (is this a checkout of the nova-guest workspace?)",
            script.display()
        ));
    }
    let output = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `bash {}`: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "`{}` failed ({}); {INSTALL_HINT}\n--- last lines of its output ---\n{}{}",
            script.display(),
            output.status,
            tail_lines(&stdout, 10),
            tail_lines(&stderr, ERROR_TAIL_LINES),
        ));
    }
    let dir = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| PathBuf::from(l.trim()))
        .ok_or_else(|| format!("`{}` printed no output directory", script.display()))?;
    let image = VmImage::from_dir(&dir)
        .map_err(|e| format!("`{}` reported {}: {e}", script.display(), dir.display()))?;
    check_qemu()?;
    Ok(image)
}

fn check_qemu() -> Result<(), String> {
    match Command::new(QEMU_BINARY)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{QEMU_BINARY} --version` failed ({}): {}; reinstall it: sudo apt-get install --no-install-recommends qemu-system-x86",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "cannot run {QEMU_BINARY}: {e}; install it: sudo apt-get install --no-install-recommends qemu-system-x86 (or run `sudo tests/vm/build-guest.sh`)"
        )),
    }
}

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

/// A running QEMU guest with a live qemu-ga. Dropping it kills QEMU (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct Vm {
    child: Mutex<Child>,
    pid: u32,
    tempdir: Option<tempfile::TempDir>,
    dir: PathBuf,
    qga_socket: PathBuf,
    qmp_socket: PathBuf,
    console_log: PathBuf,
    qemu_log: PathBuf,
    disk: Option<PathBuf>,
    mac: String,
    spawned: Instant,
    boot_time: Duration,
}

impl Vm {
    /// Starts QEMU and waits until qemu-ga answers `guest-sync-delimited`, or fails after
    /// `options.boot_timeout` with the tail of the guest console in the error.
    pub fn boot(image: &VmImage, options: VmOptions) -> Result<Self, String> {
        let tempdir = tempfile::Builder::new()
            .prefix("nova-vm-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("cannot create a temporary directory in /tmp: {e}"))?;
        let dir = tempdir.path().to_path_buf();
        let qga_socket = dir.join("qga.sock");
        let qmp_socket = dir.join("qmp.sock");
        for sock in [&qga_socket, &qmp_socket] {
            let len = sock.as_os_str().len();
            if len > MAX_UNIX_SOCKET_PATH {
                return Err(format!(
                    "socket path {} is {len} bytes, more than the {MAX_UNIX_SOCKET_PATH} a UNIX socket allows",
                    sock.display()
                ));
            }
        }
        let console_log = dir.join("console.log");
        let qemu_log = dir.join("qemu.log");
        let disk = if options.disk {
            let disk = dir.join("disk.img");
            fs::copy(&image.disk_template, &disk).map_err(|e| {
                format!(
                    "cannot copy {} to {}: {e}",
                    image.disk_template.display(),
                    disk.display()
                )
            })?;
            Some(disk)
        } else {
            None
        };

        let args = qemu_args(
            image,
            &options,
            &dir,
            &console_log,
            &qmp_socket,
            &qga_socket,
            disk.as_deref(),
        );
        let log = fs::File::create(&qemu_log)
            .map_err(|e| format!("cannot create {}: {e}", qemu_log.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot duplicate {}: {e}", qemu_log.display()))?;
        let mut cmd = if setpriv_available() {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--pdeathsig", "KILL"]);
            cmd
        } else {
            // Without setpriv QEMU outlives a test process that is killed (Drop still works).
            Command::new("env")
        };
        if let Some(n) = options.niceness {
            cmd.args(["nice", "-n", &n.to_string()]);
        }
        cmd.arg(QEMU_BINARY)
            .args(&args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);

        let spawned = Instant::now();
        let child = spawn_from_reaper_thread(cmd).map_err(|e| {
            format!(
                "cannot start {QEMU_BINARY}: {e}; install it: sudo apt-get install --no-install-recommends qemu-system-x86"
            )
        })?;
        let pid = child.id();
        let mut vm = Self {
            child: Mutex::new(child),
            pid,
            tempdir: Some(tempdir),
            dir,
            qga_socket,
            qmp_socket,
            console_log,
            qemu_log,
            disk,
            mac: options.mac.clone(),
            spawned,
            boot_time: Duration::ZERO,
        };
        if options.keep_dir {
            // Detach the directory from the guard so that it outlives the VM.
            let _kept = vm.tempdir.take().map(tempfile::TempDir::keep);
        }

        let deadline = spawned + options.boot_timeout;
        vm.wait_for_sockets(deadline.min(spawned + SOCKET_TIMEOUT))?;
        vm.sync_agent(deadline).map_err(|e| {
            format!(
                "{e} (QEMU started {:.1} s ago, TCG)\n{}",
                spawned.elapsed().as_secs_f64(),
                vm.diagnostics()
            )
        })?;
        vm.boot_time = spawned.elapsed();
        Ok(vm)
    }

    /// Time from spawning QEMU to the agent's first answered `guest-sync-delimited`.
    pub fn boot_time(&self) -> Duration {
        self.boot_time
    }

    /// When QEMU was spawned.
    pub fn spawned_at(&self) -> Instant {
        self.spawned
    }

    /// The host end of the agent's virtio-serial port (a QEMU chardev socket).
    pub fn qga_socket(&self) -> &Path {
        &self.qga_socket
    }

    /// QEMU's QMP monitor socket.
    pub fn qmp_socket(&self) -> &Path {
        &self.qmp_socket
    }

    /// The guest serial console (kernel, `/init` and qemu-ga's own log).
    pub fn console_log(&self) -> &Path {
        &self.console_log
    }

    /// The console so far (lossy UTF-8; empty if nothing was written yet).
    pub fn console_text(&self) -> String {
        fs::read(&self.console_log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// QEMU's own stdout and stderr.
    pub fn qemu_log(&self) -> &Path {
        &self.qemu_log
    }

    /// The temporary directory holding sockets, logs and the disk copy.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The guest's disk image (a private copy of the template), if one is attached.
    pub fn disk(&self) -> Option<&Path> {
        self.disk.as_deref()
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The guest NIC's MAC address.
    pub fn mac(&self) -> &str {
        &self.mac
    }

    /// The guest's IPv4 address.
    pub fn guest_ip(&self) -> &str {
        GUEST_IP
    }

    /// True while QEMU has not exited.
    pub fn is_running(&self) -> bool {
        matches!(self.lock_child().try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for QEMU to exit (e.g. after guest-shutdown) and returns its
    /// status, or `None` if it is still running.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.lock_child().try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => {}
                Err(_) => return None,
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills QEMU (SIGKILL) and reaps it. Harmless if it already exited.
    pub fn kill(&self) {
        let mut child = self.lock_child();
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// Connects to the agent socket and runs the `guest-sync-delimited` handshake (0xFF plus a
    /// fresh id, resent every 2 s) until the agent answers or `timeout` passes; then closes the
    /// connection. Returns how long it took. Use it to wait for a restarted agent.
    pub fn wait_for_agent(&self, timeout: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        self.sync_agent(start + timeout)
            .map_err(|e| format!("{e}\n{}", self.diagnostics()))?;
        Ok(start.elapsed())
    }

    /// The last `lines` lines of the console.
    pub fn console_tail(&self, lines: usize) -> String {
        tail_lines(&self.console_text(), lines)
    }

    fn lock_child(&self) -> MutexGuard<'_, Child> {
        // A panic while holding the lock leaves the Child intact: keep using it.
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn exited(&self) -> Result<(), String> {
        match self.lock_child().try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("QEMU exited ({status})")),
            Err(e) => Err(format!("cannot query QEMU's status: {e}")),
        }
    }

    fn diagnostics(&self) -> String {
        let mut out = String::new();
        let qemu = fs::read_to_string(&self.qemu_log).unwrap_or_default();
        if !qemu.trim().is_empty() {
            let _ = write!(out, "--- QEMU output ---\n{}", tail_lines(&qemu, 20));
        }
        let _ = write!(
            out,
            "--- last {ERROR_TAIL_LINES} lines of {} ---\n{}",
            self.console_log.display(),
            self.console_tail(ERROR_TAIL_LINES)
        );
        out
    }

    fn wait_for_sockets(&self, deadline: Instant) -> Result<(), String> {
        loop {
            if self.qga_socket.exists() && self.qmp_socket.exists() {
                return Ok(());
            }
            if let Err(e) = self.exited() {
                return Err(format!(
                    "{e} before creating its sockets; command line problem?\n{}",
                    self.diagnostics()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "QEMU did not create {} and {} in time\n{}",
                    self.qga_socket.display(),
                    self.qmp_socket.display(),
                    self.diagnostics()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn sync_agent(&self, deadline: Instant) -> Result<(), String> {
        let mut stream: Option<UnixStream> = None;
        let mut decoder = FrameDecoder::new();
        let mut hs = Handshake::start(fresh_sync_id(), &mut decoder);
        // The buffer type is whatever the decoder reads from; this call fixes it.
        let mut input = Default::default();
        let _ = hs.advance(&mut decoder, &mut input);
        let mut next_send = Instant::now();
        let mut buf = [0u8; 16 * 1024];
        let mut last_error = String::from("no answer");
        loop {
            self.exited()
                .map_err(|e| format!("{e} before the agent answered guest-sync-delimited"))?;
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "qemu-ga did not answer guest-sync-delimited on {} in time ({last_error})",
                    self.qga_socket.display()
                ));
            }
            let sock = match stream.as_mut() {
                Some(s) => s,
                None => match connect(&self.qga_socket) {
                    Ok(s) => {
                        decoder = FrameDecoder::new();
                        input.clear();
                        next_send = now;
                        stream.insert(s)
                    }
                    Err(e) => {
                        last_error = format!("connect: {e}");
                        thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                },
            };
            if now >= next_send {
                hs = Handshake::start(fresh_sync_id(), &mut decoder);
                next_send = now + SYNC_RESEND;
                if let Err(e) = sock.write_all(&hs.request()) {
                    last_error = format!("write: {e}");
                    stream = None;
                    continue;
                }
            }
            match sock.read(&mut buf) {
                Ok(0) => {
                    last_error = "EOF on the agent socket".into();
                    stream = None;
                    thread::sleep(Duration::from_millis(100));
                }
                Ok(n) => {
                    input.extend_from_slice(&buf[..n]);
                    if hs.advance(&mut decoder, &mut input) == Progress::Synced {
                        finish_line(sock, &mut input, &mut buf);
                        return Ok(());
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    last_error = format!("read: {e}");
                    stream = None;
                }
            }
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

/// After our reply, also read its trailing newline so that the next client finds an empty
/// channel (best effort, 300 ms at most).
fn finish_line(sock: &mut UnixStream, input: &mut impl AsRef<[u8]>, buf: &mut [u8]) {
    if input.as_ref().contains(&b'\n') {
        return;
    }
    let deadline = Instant::now() + Duration::from_millis(300);
    while Instant::now() < deadline {
        match sock.read(buf) {
            Ok(n) if n > 0 && buf[..n].contains(&b'\n') => return,
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn connect(path: &Path) -> io::Result<UnixStream> {
    let s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(SYNC_READ_TIMEOUT))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(s)
}

/// A random id below 2^53, never repeated within the process.
fn fresh_sync_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    if let Ok(t) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    (h.finish() & qga_proto::sync::MAX_SYNC_ID).max(1)
}

/// Doubles commas, as QEMU option values require.
fn qemu_opt_value(path: &Path) -> String {
    path.to_string_lossy().replace(',', ",,")
}

fn qemu_args(
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

pub(crate) fn setpriv_available() -> bool {
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
mod tests {
    use super::*;

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
}
