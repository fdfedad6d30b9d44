//! The project's own daemons (nova-guest-agent, nova-guest-api) as real processes for tests:
//! started with `--config-file` and `--print-address`, ready once they print
//! `listening on ADDRESS`, their log (stderr) in a file, killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// How long a daemon may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running daemon.
pub struct Daemon {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Daemon {
    /// Starts `binary --config-file CONFIG --print-address` with `env`, its stderr written to
    /// `log`, and waits until it prints `listening on ADDRESS`.
    ///
    /// # Panics
    ///
    /// When it cannot be started or does not print its address in time (with its log).
    pub fn start(binary: &Path, config: &Path, log: &Path, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(binary);
        command
            .arg("--config-file")
            .arg(config)
            .arg("--print-address")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("create the daemon's log file"));
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let Some(addr) = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} did not start ({line:?}); log:\n{}",
                binary.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
        };
        Self {
            child,
            addr,
            log: log.to_owned(),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Sends a signal (`TERM`, `HUP`, `STOP`...).
    pub fn signal(&self, sig: &str) {
        crate::signal(self.child.id(), sig);
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then its exit status.
    ///
    /// # Panics
    ///
    /// When it has not exited within `within`.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(within)
            .unwrap_or_else(|| panic!("no exit within {within:?} after SIGTERM"))
    }

    /// Kills it now (as a crash would).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn newest(dir: &Path, newest_so_far: &mut SystemTime) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            newest(&p, newest_so_far);
        } else if let Ok(m) = e.metadata().and_then(|m| m.modified())
            && m > *newest_so_far
        {
            *newest_so_far = m;
        }
    }
}

/// The binary `bin` of workspace package `package`, up to date, for a test of another package
/// (which cannot name it with `CARGO_BIN_EXE_*`): the one `cargo test --workspace` built next
/// to the running test when it is newer than every workspace source, else built now into a
/// target directory of its own (no lock shared with the running cargo).
///
/// # Panics
///
/// When cargo fails to build it.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("qga-testing sits in the workspace")
        .to_owned();
    let mut sources = SystemTime::UNIX_EPOCH;
    if let Ok(entries) = std::fs::read_dir(&root) {
        for e in entries.flatten() {
            if e.path().join("Cargo.toml").is_file() {
                newest(&e.path().join("src"), &mut sources);
                newest(&e.path().join("Cargo.toml"), &mut sources);
            }
        }
    }
    newest(&root.join("Cargo.lock"), &mut sources);
    // <target>/<profile>/deps/<test exe> → <target>/<profile>/<bin>
    let exe = std::env::current_exe().expect("the test's own path");
    let sibling = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join(bin))
        .unwrap_or_else(|| PathBuf::from(bin));
    let fresh = std::fs::metadata(&sibling)
        .and_then(|m| m.modified())
        .is_ok_and(|m| m >= sources);
    if fresh {
        return sibling;
    }
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|t| t.join("test-daemon-build"))
        .unwrap_or_else(|| std::env::temp_dir().join("test-daemon-build"));
    eprintln!("building {bin} into {}", target.display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--locked", "-p", package, "--bin", bin])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building {bin} failed");
    target.join("debug").join(bin)
}

/// Writes a harmless stand-in for the original nova-guest's guest script at `script`
/// (executable): it decodes the base64 network_data it is given into `out`, then runs the
/// shell lines `then` (e.g. `echo applied`). For apply-networking in script mode against a
/// host-mode qemu-ga, where a real script would change this machine's network.
///
/// # Panics
///
/// When the file cannot be written.
pub fn recording_script(script: &Path, out: &Path, then: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(
        script,
        format!(
            "#!/bin/sh\nprintf '%s' \"$1\" | base64 -d > '{}'\n{then}\n",
            out.display()
        ),
    )
    .expect("write the stand-in script");
    std::fs::set_permissions(script, std::fs::Permissions::from_mode(0o755))
        .expect("make the stand-in script executable");
}

/// A finished command's stdout then stderr, as text, for assertion messages.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Checks, with raw sockets, that the daemon at `addr` bounds its connections as configured
/// with `header_timeout` and `max_connections` (both daemons serve through the same code and
/// call this from their own tests):
///
/// - a connection that sends nothing is closed after about `header_timeout`;
/// - so is one that stops in the middle of its request head;
/// - with `max_connections` connections open, one more is closed at once, and once one of
///   them is gone a new connection is served (`GET /healthz` → 200).
///
/// # Panics
///
/// When any of these does not hold.
pub fn check_connection_limits(addr: SocketAddr, header_timeout: Duration, max_connections: usize) {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let slack = Duration::from_secs(3);
    let closed_within = |stream: &mut TcpStream, within: Duration| -> Duration {
        let started = Instant::now();
        stream
            .set_read_timeout(Some(within + slack))
            .expect("set a read timeout");
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return started.elapsed(),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return started.elapsed();
                }
                Err(e) => panic!("the daemon kept the connection open ({e}) past {within:?}"),
            }
        }
    };
    // Silence.
    let mut silent = TcpStream::connect(addr).expect("connect");
    let took = closed_within(&mut silent, header_timeout);
    assert!(
        took + Duration::from_millis(300) >= header_timeout,
        "closed too early: {took:?} < {header_timeout:?}"
    );
    // Half a request head.
    let mut half = TcpStream::connect(addr).expect("connect");
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .expect("write");
    closed_within(&mut half, header_timeout);
    // The cap: fill every slot with connections that are mid-request, then one more.
    let held: Vec<TcpStream> = (0..max_connections)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET").expect("write");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(addr).expect("the listener still accepts");
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let took = closed_within(&mut over, Duration::ZERO);
    assert!(
        took < Duration::from_secs(1),
        "the connection over max_connections waited {took:?} instead of being refused"
    );
    drop(held);
    // Slots free up as the daemon sees the closes.
    let served = crate::wait_until(Duration::from_secs(5), || {
        let Ok(mut s) = TcpStream::connect(addr) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply.starts_with("HTTP/1.1 200")
    });
    assert!(served, "no connection served after the held ones closed");
}

/// Writes a secret file as both daemons accept it: mode 0600 (they refuse a file group or
/// others may read).
///
/// # Panics
///
/// When the file cannot be written.
pub fn write_secret(path: &Path, secret: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{secret}\n")).expect("write the secret file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod 600 the secret file");
}
