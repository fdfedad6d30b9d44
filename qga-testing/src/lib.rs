//! Peers for tests: a host-mode qemu-ga with every destructive command blocked, QEMU's QMP
//! monitor (`-machine none`), (in [`vm`]) a tiny guest booted under TCG, (in [`libvirt`]) a
//! private libvirtd that boots the same guest as a transient domain, (in [`rabbitmq`]) a
//! private RabbitMQ node, and (in [`fake`]) a scripted fake qemu-ga for the faults a real one
//! cannot produce on demand.
//!
//! Every helper that runs a process kills it when dropped, also while a test panics. A missing
//! binary is a test failure that says how to install it, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod daemon;
pub mod fake;
pub mod libvirt;
pub mod rabbitmq;
pub mod vm;

/// Commands a host-mode qemu-ga must never run on this machine: they would shut it down,
/// suspend it, change its clock, passwords, SSH keys, CPUs or memory, or freeze or trim its
/// filesystems. They are tested against the VM only.
pub const BLOCKED_RPCS: &[&str] = &[
    "guest-shutdown",
    "guest-suspend-disk",
    "guest-suspend-ram",
    "guest-suspend-hybrid",
    "guest-set-time",
    "guest-fsfreeze-freeze",
    "guest-fsfreeze-freeze-list",
    "guest-fsfreeze-thaw",
    "guest-set-user-password",
    "guest-set-vcpus",
    "guest-set-memory-blocks",
    "guest-ssh-add-authorized-keys",
    "guest-ssh-remove-authorized-keys",
    "guest-fstrim",
];

/// Finds a program in PATH or the usual system directories.
///
/// # Panics
///
/// When it is not installed, with the Debian package to install.
pub fn find_program(name: &str, package: &str) -> PathBuf {
    locate_program(name).unwrap_or_else(|| {
        panic!(
            "{name} is not installed: run `apt-get install {package}` (./scripts/test installs it)"
        )
    })
}

/// Finds a program in PATH or the usual system directories, or `None`.
pub fn locate_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(
        ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .map(PathBuf::from),
    );
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
    }
    None
}

/// Polls `done` every 10 ms until it is true or `timeout` passes; returns the last result.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True once a process listens on the UNIX socket at `path`, read from `/proc/net/unix`
/// without connecting (a probe connection would take the peer's one client slot, and its
/// backlog entry could make the next connect fail with EAGAIN).
pub fn accepts(path: &Path) -> bool {
    /// `__SO_ACCEPTCON`: the socket is listening.
    const ACCEPTCON: u32 = 0x0001_0000;
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return path.exists();
    };
    let want = path.to_string_lossy();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() >= 8
            && fields[7] == want
            && u32::from_str_radix(fields[3], 16).is_ok_and(|flags| flags & ACCEPTCON != 0)
    })
}

/// Sends a signal to a process with `kill(1)` (the crate forbids unsafe code).
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// A real qemu-ga serving a UNIX socket in host mode, with [`BLOCKED_RPCS`] blocked.
///
/// qemu-ga 7.2 in `unix-listen` mode exits when a client disconnects with a reply unread;
/// [`QemuGa::ensure_running`] starts it again on the same socket.
pub struct QemuGa {
    dir: tempfile::TempDir,
    socket: PathBuf,
    child: Child,
    extra_blocked: Vec<String>,
    starts: u32,
}

impl QemuGa {
    /// Starts an agent in a fresh temporary directory.
    ///
    /// # Panics
    ///
    /// When qemu-ga is not installed or does not start.
    pub fn start() -> Self {
        Self::start_blocking(&[])
    }

    /// Starts an agent that additionally blocks `extra` (to test disabled commands).
    ///
    /// # Panics
    ///
    /// As for [`start`](Self::start).
    pub fn start_blocking(extra: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("qga-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let socket = dir.path().join("qga.sock");
        std::fs::create_dir_all(dir.path().join("state")).expect("state dir");
        std::fs::write(dir.path().join("qga.conf"), "").expect("empty config");
        let extra_blocked: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let child = spawn_agent(dir.path(), &socket, &extra_blocked);
        let mut agent = Self {
            dir,
            socket,
            child,
            extra_blocked,
            starts: 1,
        };
        agent.wait_listening();
        agent
    }

    fn wait_listening(&mut self) {
        let socket = self.socket.clone();
        let child = &mut self.child;
        // The socket file appears at bind(), before listen().
        let ok = wait_until(Duration::from_secs(10), || {
            accepts(&socket) || child.try_wait().ok().flatten().is_some()
        });
        if !ok || !accepts(&self.socket) {
            panic!("qemu-ga did not start; its log:\n{}", self.log());
        }
    }

    /// The socket to connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A scratch directory (removed on drop) for files the tests create.
    pub fn scratch(&self) -> PathBuf {
        let d = self.dir.path().join("files");
        std::fs::create_dir_all(&d).expect("scratch dir");
        d
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many times the agent was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("qga.log")).unwrap_or_default()
    }

    /// Starts the agent again if it exited.
    pub fn ensure_running(&mut self) {
        if !self.is_running() {
            self.respawn();
        }
    }

    /// Kills the agent and starts a new one on the same socket.
    pub fn restart(&mut self) {
        self.kill();
        self.respawn();
    }

    fn respawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let _ = std::fs::remove_file(self.dir.path().join("qga.pid"));
        self.child = spawn_agent(self.dir.path(), &self.socket, &self.extra_blocked);
        self.starts += 1;
        self.wait_listening();
    }

    /// Kills the agent (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freezes the agent process (`kill -STOP`): it stays connected but silent.
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// Resumes it (`kill -CONT`).
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }
}

fn spawn_agent(dir: &Path, socket: &Path, extra: &[String]) -> Child {
    let qemu_ga = find_program("qemu-ga", "qemu-guest-agent");
    let mut blocked: Vec<&str> = BLOCKED_RPCS.to_vec();
    blocked.extend(extra.iter().map(String::as_str));
    let log = std::fs::File::create(dir.join("qga.stderr")).expect("stderr log");
    Command::new(qemu_ga)
        .env("QGA_CONF", dir.join("qga.conf"))
        .arg("-m")
        .arg("unix-listen")
        .arg("-p")
        .arg(socket)
        .arg("-t")
        .arg(dir.join("state"))
        .arg("-f")
        .arg(dir.join("qga.pid"))
        .arg("-l")
        .arg(dir.join("qga.log"))
        .arg("-b")
        .arg(blocked.join(","))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn qemu-ga")
}

impl Drop for QemuGa {
    fn drop(&mut self) {
        if self.is_running() {
            // A stopped process must be continued to die promptly on some kernels.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(self.pid().to_string())
                .status();
        }
        self.kill();
    }
}

/// A real QEMU with no machine, exposing QMP on a UNIX socket.
pub struct QemuQmp {
    dir: tempfile::TempDir,
    socket: PathBuf,
    child: Child,
}

impl QemuQmp {
    /// Starts `qemu-system-x86_64 -machine none -display none -nodefaults -qmp unix:SOCK`.
    ///
    /// # Panics
    ///
    /// When QEMU is not installed or does not start.
    pub fn start() -> Self {
        let qemu = find_program("qemu-system-x86_64", "qemu-system-x86");
        let dir = tempfile::Builder::new()
            .prefix("qmp-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let socket = dir.path().join("qmp.sock");
        let log = std::fs::File::create(dir.path().join("qemu.log")).expect("log");
        let mut child = Command::new(qemu)
            .args([
                "-machine",
                "none",
                "-display",
                "none",
                "-nodefaults",
                "-no-user-config",
            ])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn qemu-system-x86_64");
        // As for qemu-ga: the file exists before QEMU listens.
        let ok = wait_until(Duration::from_secs(20), || {
            accepts(&socket) || child.try_wait().ok().flatten().is_some()
        });
        if !ok || !socket.exists() {
            let log = std::fs::read_to_string(dir.path().join("qemu.log")).unwrap_or_default();
            panic!("QEMU did not start:\n{log}");
        }
        Self { dir, socket, child }
    }

    /// The QMP socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// QEMU's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for QEMU to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let child = &mut self.child;
        wait_until(timeout, || child.try_wait().ok().flatten().is_some())
    }

    /// The directory QEMU runs in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for QemuQmp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
