//! The processes of the private libvirtd: stopping it, waiting, signals, finding children.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{Daemon, STOP_TIMEOUT};
use crate::vm::spawn_from_reaper_thread;

pub(super) fn stop_daemon(mut daemon: Daemon) {
    if daemon.pid != 0 {
        send_signal(daemon.pid, "TERM");
    }
    if wait_child(&mut daemon.nsenter, STOP_TIMEOUT).is_none() {
        if daemon.pid != 0 {
            send_signal(daemon.pid, "KILL");
        }
        if wait_child(&mut daemon.nsenter, Duration::from_secs(5)).is_none() {
            let _ = daemon.nsenter.kill();
            let _ = daemon.nsenter.wait();
        }
    }
}

pub(super) fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => return None,
        }
    }
}

/// `kill -SIG PID`, ignoring failures (the process may be gone already).
pub(super) fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The first process whose parent is `parent`, from `/proc/*/stat`.
pub(super) fn child_of(parent: u32) -> Option<u32> {
    let entries = fs::read_dir("/proc").ok()?;
    entries.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')')? + 1..];
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent).then_some(pid)
    })
}

pub(super) fn spawn_logged(mut cmd: Command, log: &Path) -> Result<Child, String> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = file
        .try_clone()
        .map_err(|e| format!("cannot duplicate {}: {e}", log.display()))?;
    cmd.stdin(Stdio::null()).stdout(file).stderr(err);
    // From the long-lived spawner thread: --pdeathsig fires when the forking thread exits.
    spawn_from_reaper_thread(cmd).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_of_finds_a_grandchild() {
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 5; true"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(crate::wait_until(Duration::from_secs(5), || child_of(
            sh.id()
        )
        .is_some()));
        let sleep = child_of(sh.id()).unwrap();
        let comm = fs::read_to_string(format!("/proc/{sleep}/comm")).unwrap();
        assert_eq!(comm.trim(), "sleep");
        send_signal(sleep, "KILL");
        sh.wait().unwrap();
    }
}
