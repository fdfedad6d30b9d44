//! The running guest: booting it, its files and logs, waiting for it to exit, killing it.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::qemu::{qemu_args, setpriv_available, spawn_from_reaper_thread};
use super::{
    ERROR_TAIL_LINES, GUEST_IP, MAX_UNIX_SOCKET_PATH, QEMU_BINARY, VmImage, VmOptions, tail_lines,
};

/// How long QEMU may take to create its sockets.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

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

    pub(super) fn exited(&self) -> Result<(), String> {
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
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}
