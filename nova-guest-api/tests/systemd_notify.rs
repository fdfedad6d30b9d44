//! The binary under a stand-in for systemd's notification socket, as a `Type=notify` unit with
//! `WatchdogSec=` runs it: `READY=1` once it listens, `WATCHDOG=1` at half the interval while
//! it runs, `STOPPING=1` on SIGTERM, and no keep-alive after that. (The API stands for both
//! daemons: the keep-alives come from `nova_guest_daemon::process::main_with`, which both use.)

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A noauth configuration on 127.0.0.1 with a free port, and its master secret, in `dir`.
fn noauth_config(dir: &Path) -> PathBuf {
    let secret = dir.join("api-master-secret");
    std::fs::write(
        &secret,
        "0123456789abcdef0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.join("nova-guest.conf");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten_address = 127.0.0.1\nlisten_port = 0\nauth_strategy = noauth\n\
             agent_url_template = http://{{host}}:9\nallow_insecure_agent_http = true\n\
             agent_auth_token_file = {}\n",
            secret.display()
        ),
    )
    .unwrap();
    config
}

/// Every datagram received within `within`, split into lines.
fn receive(socket: &UnixDatagram, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut lines = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => lines.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned),
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    lines
}

#[test]
fn ready_watchdog_and_stopping_reach_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let config = noauth_config(dir.path());
    let notify = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();

    // systemd sets WATCHDOG_PID to the service's PID: `exec` keeps the shell's.
    let child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" --config-file \"$1\"")
        .arg(env!("CARGO_BIN_EXE_nova-guest-api"))
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "400000")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // 0.4 s interval: a keep-alive at start and then every 0.2 s.
    let running = receive(&socket, Duration::from_millis(1500));
    let ready = running.iter().position(|l| l == "READY=1");
    let keepalives = running.iter().filter(|l| *l == "WATCHDOG=1").count();
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let stopping = receive(&socket, Duration::from_millis(800));
    let exit = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&exit.stderr);

    assert!(ready.is_some(), "no READY=1 in {running:?}; log:\n{log}");
    assert!(
        keepalives >= 4,
        "{keepalives} keep-alives in 1.5 s at a 0.4 s interval: {running:?}; log:\n{log}"
    );
    assert!(
        stopping.iter().any(|l| l == "STOPPING=1"),
        "no STOPPING=1 in {stopping:?}"
    );
    let after = stopping
        .iter()
        .skip_while(|l| *l != "STOPPING=1")
        .filter(|l| *l == "WATCHDOG=1")
        .count();
    assert!(
        after <= 1,
        "keep-alives went on after shutdown: {stopping:?}"
    );
    assert!(exit.status.success(), "exit {:?}; log:\n{log}", exit.status);
    assert!(
        log.contains("systemd watchdog"),
        "the keep-alives are logged: {log}"
    );
}

#[test]
fn no_keepalives_for_another_pid() {
    // WATCHDOG_PID names another process (a parent's watchdog leaking through): ignored.
    let dir = tempfile::tempdir().unwrap();
    let config = noauth_config(dir.path());
    let notify = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&notify).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nova-guest-api"))
        .arg("--config-file")
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "200000")
        .env("WATCHDOG_PID", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = receive(&socket, Duration::from_millis(1000));
    let _ = child.kill();
    let _ = child.wait();
    assert!(lines.iter().any(|l| l == "READY=1"), "{lines:?}");
    assert!(!lines.iter().any(|l| l == "WATCHDOG=1"), "{lines:?}");
}
