//! A private libvirtd (system mode, run as root without systemd) that boots the test guest of
//! [`vm`](crate::vm) as a transient domain with a guest-agent channel.
//!
//! # Isolation
//!
//! [`Libvirtd::start`] makes a short temporary directory `S` (`/tmp/nova-lv-XXXXXX`) and starts
//! `unshare --mount --propagation private --pid --fork --kill-child --mount-proc` with a bash
//! script as PID 1 of a new PID and mount namespace. The script mounts a tmpfs on `/run` (the
//! host has no `/run/libvirt` to mount over, and creating one would touch host state), where
//! `/run/libvirt` lives as on a real host, and bind-mounts `S/etc`, `S/lib`, `S/log` and
//! `S/cache` over `/etc/libvirt`, `/var/lib/libvirt`, `/var/log/libvirt` and
//! `/var/cache/libvirt`. Nothing of
//! the machine's own libvirt configuration or state is read or written: `S/etc` holds only the
//! `libvirtd.conf` and `qemu.conf` written here. libvirtd then runs in the foreground inside
//! that namespace (`nsenter -t <PID 1> -m -p libvirtd -f /etc/libvirt/libvirtd.conf`). Its
//! sockets are in `S/sock` (`unix_sock_dir`, outside the bind mounts, so visible to the host);
//! `auth_unix_rw = "none"`. QEMU runs as root, with no security driver, no cgroups, no
//! namespaces, no virtlogd (`stdio_handler = "file"`), and always with TCG.
//!
//! Because the bind mounts' sources are plain directories under `S`, the host sees every file
//! libvirt writes without entering the namespace: the domain log is
//! `S/log/qemu/<name>.log`, the agent socket `S/lib/qemu/channel/target/domain-<id>-<name>/…`
//! (see [`Libvirtd::host_path`]). The guest console is a file in `S` itself.
//!
//! # Lifetime
//!
//! libvirtd daemonizes each QEMU; the orphans are reparented to the namespace's PID 1 (bash,
//! which reaps them), so QEMU survives a [`Libvirtd::restart`], as with a real host. When the
//! [`Libvirtd`] is dropped it destroys every domain, stops libvirtd and kills PID 1, and the
//! kernel kills whatever is left in the namespace. If the test process itself is killed,
//! `setpriv --pdeathsig KILL` kills `unshare`, whose `--kill-child` kills PID 1 and with it
//! libvirtd and every QEMU. With `NOVA_LIBVIRT_KEEP` set, `S` is kept (and its path printed)
//! for post-mortems.
//!
//! Only the monolithic `libvirtd` exists on Debian bookworm (libvirt 9.0): there is no
//! `virtqemud`. A client for other hosts must also look for the modular daemon's
//! `/run/libvirt/virtqemud-sock` next to `/run/libvirt/libvirt-sock`.
//!
//! ```no_run
//! use qga_testing::libvirt::Libvirtd;
//! use qga_testing::vm::VmImage;
//!
//! let image = VmImage::build().unwrap();
//! let libvirtd = Libvirtd::start().unwrap();
//! let domain = libvirtd.boot_test_vm(&image).unwrap(); // the agent has answered
//! println!("{} {} on {}", domain.name(), domain.uuid(), libvirtd.socket_path().display());
//! assert!(!domain.taints().iter().any(|t| t == "custom-ga-command"));
//! ```

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::accepts;
use crate::vm::{MAX_UNIX_SOCKET_PATH, tail_lines};
use process::{child_of, send_signal, spawn_logged, stop_daemon, wait_child};
use setup::{BIND_MOUNTS, check_prerequisites, write_layout};

mod capture;
mod domain;
mod process;
mod setup;
mod text;

pub use capture::{Recording, RecordingProxy, RpcHeader, rpc_headers};
pub use domain::{DEFAULT_AGENT_TIMEOUT, Domain, DomainOptions, ExecOutput};

/// How long libvirtd may take to answer `virsh version` after it was spawned (the first start
/// probes QEMU's capabilities, about 1.5 s on an idle machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one `virsh` call may take before it is killed.
pub const VIRSH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long libvirtd may take to exit after SIGTERM before it gets SIGKILL.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A private libvirtd in its own mount and PID namespace. Dropping it destroys every domain
/// and kills libvirtd, QEMU and the namespace.
#[derive(Debug)]
pub struct Libvirtd {
    tempdir: Option<tempfile::TempDir>,
    dir: PathBuf,
    socket: PathBuf,
    unshare: Mutex<Child>,
    ns_init_pid: u32,
    daemon: Mutex<Option<Daemon>>,
    next_domain: AtomicU32,
}

#[derive(Debug)]
pub(crate) struct Daemon {
    nsenter: Child,
    pid: u32,
    start_time: Duration,
}

/// Settings of the private libvirtd that differ from libvirt's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LibvirtdOptions {
    /// libvirtd.conf `keepalive_interval` and `keepalive_count` (the daemon's pings to its
    /// clients, and how many may go unanswered before it drops one). Default: libvirt's, 5 s
    /// and 5. A short interval makes a client that does not answer pings fail within seconds.
    pub keepalive: Option<(u32, u32)>,
}

impl Libvirtd {
    /// Starts libvirtd in a fresh temporary directory and waits until it answers
    /// `virsh version`.
    ///
    /// # Errors
    ///
    /// When not run as root, when a program is missing (the message names the Debian package
    /// to install), or when libvirtd does not answer within [`START_TIMEOUT`] (the message
    /// holds the tail of its log).
    pub fn start() -> Result<Self, String> {
        Self::start_with(&LibvirtdOptions::default())
    }

    /// [`start`](Self::start) with `options` in its configuration.
    ///
    /// # Errors
    ///
    /// As for [`start`](Self::start).
    pub fn start_with(options: &LibvirtdOptions) -> Result<Self, String> {
        check_prerequisites()?;
        let tempdir = tempfile::Builder::new()
            .prefix("nova-lv-")
            .tempdir_in("/tmp")
            .map_err(|e| format!("cannot create a temporary directory in /tmp: {e}"))?;
        let dir = tempdir.path().to_path_buf();
        let socket = dir.join("sock/libvirt-sock");
        if socket.as_os_str().len() > MAX_UNIX_SOCKET_PATH - 10 {
            return Err(format!("socket path {} is too long", socket.display()));
        }
        write_layout(&dir, options)?;

        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "unshare", "--mount", "--propagation"])
            .args([
                "private",
                "--pid",
                "--fork",
                "--kill-child=KILL",
                "--mount-proc",
            ])
            .arg("bash")
            .arg(dir.join("ns-init.sh"))
            .arg(&dir);
        let mut unshare = spawn_logged(cmd, &dir.join("ns-init.log"))
            .map_err(|e| format!("cannot start unshare: {e}"))?;
        let ready = dir.join("ns-ready");
        let deadline = Instant::now() + Duration::from_secs(20);
        let ns_init_pid = loop {
            if let Ok(Some(status)) = unshare.try_wait() {
                return Err(format!(
                    "the namespace for libvirtd could not be set up (unshare {status}):\n{}",
                    fs::read_to_string(dir.join("ns-init.log")).unwrap_or_default()
                ));
            }
            if ready.exists() {
                if let Some(pid) = child_of(unshare.id()) {
                    break pid;
                }
            }
            if Instant::now() >= deadline {
                let _ = unshare.kill();
                let _ = unshare.wait();
                return Err("the namespace for libvirtd was not ready after 20 s".into());
            }
            thread::sleep(Duration::from_millis(10));
        };
        let libvirtd = Self {
            tempdir: Some(tempdir),
            dir,
            socket,
            unshare: Mutex::new(unshare),
            ns_init_pid,
            daemon: Mutex::new(None),
            next_domain: AtomicU32::new(1),
        };
        let daemon = libvirtd.spawn_daemon()?;
        *libvirtd.lock_daemon() = Some(daemon);
        Ok(libvirtd)
    }

    /// Stops libvirtd (SIGTERM) and starts it again in the same namespace with the same
    /// state. Running domains survive: their QEMU keeps running and the new libvirtd
    /// reconnects to its monitor and agent sockets. Returns the time from SIGTERM until the
    /// new libvirtd answered `virsh version`.
    ///
    /// # Errors
    ///
    /// When the new libvirtd does not answer within [`START_TIMEOUT`].
    pub fn restart(&self) -> Result<Duration, String> {
        let started = Instant::now();
        self.stop();
        self.start_again()?;
        Ok(started.elapsed())
    }

    /// Stops libvirtd (SIGTERM, then SIGKILL after 15 s); the domains keep running, and their
    /// agent sockets are free for another client until [`start_again`](Self::start_again).
    pub fn stop(&self) {
        if let Some(old) = self.lock_daemon().take() {
            stop_daemon(old);
        }
    }

    /// Starts libvirtd again after [`stop`](Self::stop) (a no-op while it runs).
    ///
    /// # Errors
    ///
    /// As for [`restart`](Self::restart).
    pub fn start_again(&self) -> Result<(), String> {
        let mut daemon = self.lock_daemon();
        if daemon.is_none() {
            *daemon = Some(self.spawn_daemon()?);
        }
        Ok(())
    }

    fn spawn_daemon(&self) -> Result<Daemon, String> {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "nsenter", "-t"])
            .arg(self.ns_init_pid.to_string())
            .args([
                "-m",
                "-p",
                "--",
                "libvirtd",
                "-f",
                "/etc/libvirt/libvirtd.conf",
            ])
            .args(["-p", "/run/libvirt/libvirtd.pid"]);
        let spawned = Instant::now();
        let mut nsenter = spawn_logged(cmd, &self.dir.join("libvirtd.stderr"))
            .map_err(|e| format!("cannot start nsenter: {e}"))?;
        let deadline = spawned + START_TIMEOUT;
        let mut pid = None;
        let mut last = String::from("the socket did not appear");
        loop {
            if let Ok(Some(status)) = nsenter.try_wait() {
                return Err(format!(
                    "libvirtd exited ({status})\n{}",
                    self.diagnostics()
                ));
            }
            if pid.is_none() {
                pid = child_of(nsenter.id());
            }
            if pid.is_some() && accepts(&self.socket) {
                let out = self.virsh_timeout(&["version"], Duration::from_secs(10));
                if out.status.success() {
                    break;
                }
                last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            }
            if Instant::now() >= deadline {
                let _ = nsenter.kill();
                let _ = nsenter.wait();
                return Err(format!(
                    "libvirtd did not answer `virsh version` within {START_TIMEOUT:?} ({last})\n{}",
                    self.diagnostics()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(Daemon {
            nsenter,
            pid: pid.unwrap_or_default(),
            start_time: spawned.elapsed(),
        })
    }

    /// The read-write UNIX socket (`S/sock/libvirt-sock`): what an RPC client connects to.
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The read-only socket (`S/sock/libvirt-sock-ro`).
    pub fn ro_socket_path(&self) -> PathBuf {
        self.dir.join("sock/libvirt-sock-ro")
    }

    /// `qemu:///system?socket=<socket_path>`.
    pub fn uri(&self) -> String {
        format!("qemu:///system?socket={}", self.socket.display())
    }

    /// libvirtd's process id (in the host's PID namespace), or 0 while it is not running.
    pub fn pid(&self) -> u32 {
        self.lock_daemon().as_ref().map_or(0, |d| d.pid)
    }

    /// The host pid of PID 1 of the private namespace (for `nsenter -t PID -m -p`).
    pub fn namespace_pid(&self) -> u32 {
        self.ns_init_pid
    }

    /// How long the last start (or restart) took from spawning libvirtd until it answered.
    pub fn start_time(&self) -> Duration {
        self.lock_daemon()
            .as_ref()
            .map_or(Duration::ZERO, |d| d.start_time)
    }

    /// The temporary directory `S`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// libvirtd's log file (warnings and errors; taint warnings too).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log/libvirtd.log")
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Where a path that libvirt (inside the namespace) uses is visible on the host, e.g.
    /// `/var/lib/libvirt/qemu/channel/…` → `S/lib/qemu/channel/…`, and `/run/libvirt/…`
    /// (the namespace's tmpfs) → `/proc/<namespace PID 1>/root/run/libvirt/…`. Other paths are
    /// returned unchanged.
    pub fn host_path(&self, path: &Path) -> PathBuf {
        for (name, mount) in BIND_MOUNTS {
            if let Ok(rest) = path.strip_prefix(mount) {
                return self.dir.join(name).join(rest);
            }
        }
        if path.starts_with("/run/libvirt") {
            return Path::new(&format!("/proc/{}/root", self.ns_init_pid))
                .join(path.strip_prefix("/").unwrap_or(path));
        }
        path.to_path_buf()
    }

    /// Runs `virsh -c <uri> ARGS` (killed after [`VIRSH_TIMEOUT`]). A failure to run virsh
    /// is reported as exit status 127 with the reason on stderr.
    pub fn virsh(&self, args: &[&str]) -> Output {
        self.virsh_timeout(args, VIRSH_TIMEOUT)
    }

    /// [`virsh`](Self::virsh) with another timeout (exit status 124 when it expires).
    pub fn virsh_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        let result = Command::new("timeout")
            .args(["-k", "5"])
            .arg(format!("{}", timeout.as_secs_f64()))
            .args(["virsh", "-c", &self.uri()])
            .args(args)
            .env("LC_ALL", "C")
            .env_remove("LIBVIRT_DEFAULT_URI")
            .env_remove("VIRSH_DEFAULT_CONNECT_URI")
            .stdin(Stdio::null())
            .output();
        result.unwrap_or_else(|e| Output {
            status: ExitStatus::from_raw(127 << 8),
            stdout: Vec::new(),
            stderr: format!("cannot run virsh: {e}").into_bytes(),
        })
    }

    /// Runs virsh and returns its trimmed stdout.
    ///
    /// # Errors
    ///
    /// When virsh fails; the message holds the command and virsh's stderr.
    pub fn virsh_ok(&self, args: &[&str]) -> Result<String, String> {
        let out = self.virsh(args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(format!(
                "`virsh {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn lock_daemon(&self) -> MutexGuard<'_, Option<Daemon>> {
        self.daemon.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_domain_name(&self) -> String {
        format!(
            "nova-test-{}",
            self.next_domain.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn diagnostics(&self) -> String {
        let stderr = fs::read_to_string(self.dir.join("libvirtd.stderr")).unwrap_or_default();
        format!(
            "--- libvirtd stderr ---\n{}--- {} ---\n{}",
            tail_lines(&stderr, 10),
            self.log_path().display(),
            tail_lines(&self.log_text(), 20)
        )
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        if self.pid() != 0 {
            let out = self.virsh_timeout(&["list", "--name"], Duration::from_secs(10));
            for name in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.virsh_timeout(&["destroy", name], Duration::from_secs(20));
            }
        }
        if let Some(daemon) = self.lock_daemon().take() {
            stop_daemon(daemon);
        }
        // SIGKILL to PID 1 kills everything left in the namespace; unshare then exits.
        send_signal(self.ns_init_pid, "KILL");
        let mut unshare = self.unshare.lock().unwrap_or_else(|e| e.into_inner());
        if wait_child(&mut unshare, Duration::from_secs(10)).is_none() {
            let _ = unshare.kill();
            let _ = unshare.wait();
        }
        if std::env::var_os("NOVA_LIBVIRT_KEEP").is_some() {
            if let Some(dir) = self.tempdir.take() {
                eprintln!("keeping {}", dir.keep().display());
            }
        }
    }
}
