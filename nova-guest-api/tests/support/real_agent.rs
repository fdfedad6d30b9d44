//! The REAL nova-guest-agent binary in front of a real host-mode qemu-ga
//! (`qga_testing::QemuGa`: destructive commands blocked), apply-networking in script mode
//! pointed at a harmless script that only writes what it receives to a file.
//!
//! nova-guest-api does not depend on nova-guest-agent: the binary is the one `cargo test
//! --workspace` builds next to ours when it is up to date, else it is built here into its own
//! target directory (no lock shared with the running cargo).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use qga_testing::QemuGa;

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

/// The nova-guest-agent binary, up to date.
pub fn binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned();
    let mut sources = SystemTime::UNIX_EPOCH;
    for dir in ["nova-guest-agent/src", "qga-client/src", "qga-proto/src"] {
        newest(&root.join(dir), &mut sources);
    }
    newest(&root.join("Cargo.lock"), &mut sources);
    if let Ok(m) = std::fs::metadata(root.join("Cargo.lock")).and_then(|m| m.modified()) {
        sources = sources.max(m);
    }
    // <target>/<profile>/deps/<test exe> → <target>/<profile>/nova-guest-agent
    let exe = std::env::current_exe().unwrap();
    let sibling = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("nova-guest-agent");
    let fresh = |p: &Path| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .is_ok_and(|m| m >= sources)
    };
    if fresh(&sibling) {
        return sibling;
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("api-agent-build");
    let built = target.join("debug/nova-guest-agent");
    eprintln!("building nova-guest-agent into {}", target.display());
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--quiet",
            "--locked",
            "-p",
            "nova-guest-agent",
            "--bin",
            "nova-guest-agent",
        ])
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo build nova-guest-agent");
    assert!(status.success(), "building nova-guest-agent failed");
    built
}

/// The real agent, its qemu-ga and the configuration file both daemons read.
pub struct RealAgent {
    pub child: Child,
    pub addr: SocketAddr,
    pub qga: QemuGa,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// Where the harmless apply-networking script writes the decoded network_data.
    pub applied: PathBuf,
    pub log: PathBuf,
}

impl RealAgent {
    /// Starts qemu-ga for `instance` and the agent; `api_sections` is appended to the
    /// shared file (the agent skips them).
    pub fn start(instance: &str, api_sections: &str) -> Self {
        let qga = QemuGa::start();
        let dir = tempfile::tempdir().unwrap();
        let socks = dir.path().join("socks");
        std::fs::create_dir_all(&socks).unwrap();
        std::os::unix::fs::symlink(qga.socket(), socks.join(format!("{instance}.sock"))).unwrap();
        std::fs::write(
            dir.path().join("agent-token"),
            format!("{}\n", super::AGENT_SECRET),
        )
        .unwrap();
        let applied = dir.path().join("applied.json");
        let script = dir.path().join("apply-network-config");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s' \"$1\" | base64 -d > '{}'\necho applied\n",
                applied.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let config = dir.path().join("nova-guest.conf");
        let text = format!(
            "# One file for both daemons, as in production.\n[DEFAULT]\nhost = 127.0.0.1\n\n\
             [agent]\nlisten_address = 127.0.0.1\nlisten_port = 0\nauth_token_file = {d}/agent-token\n\
             socket_path_template = {d}/socks/{{uuid}}.sock\ncommand_timeout = 2\n\
             enabled_actions = ping, set-password, inject-file, apply-networking\n\
             apply_networking_mode = script\napply_networking_script = {script}\n\n{api_sections}\n",
            d = dir.path().display(),
            script = script.display(),
        );
        std::fs::write(
            &config,
            text.replace("{dir}", &dir.path().display().to_string()),
        )
        .unwrap();
        let log = dir.path().join("agent.log");
        let mut child = Command::new(binary())
            .arg("--config-file")
            .arg(&config)
            .arg("--print-address")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start nova-guest-agent");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            panic!(
                "nova-guest-agent did not start ({line:?}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Self {
            addr: addr.parse().unwrap(),
            child,
            qga,
            dir,
            config,
            applied,
            log,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for RealAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
