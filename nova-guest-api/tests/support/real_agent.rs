//! The REAL nova-guest-agent binary in front of a real host-mode qemu-ga
//! (`qga_testing::QemuGa`: destructive commands blocked), apply-networking in script mode
//! pointed at a harmless script that only writes what it receives to a file.
//!
//! nova-guest-api does not depend on nova-guest-agent: the binary comes from
//! `qga_testing::daemon::workspace_binary` (the one `cargo test --workspace` builds next to
//! ours when it is up to date, else built into a target directory of its own).

use std::net::SocketAddr;
use std::path::PathBuf;

use qga_testing::QemuGa;
use qga_testing::daemon::{Daemon, recording_script, workspace_binary, write_secret};

/// The real agent, its qemu-ga and the configuration file both daemons read.
pub struct RealAgent {
    pub process: Daemon,
    pub addr: SocketAddr,
    pub qga: QemuGa,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// Where the harmless apply-networking script writes the decoded network_data.
    pub applied: PathBuf,
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
        // The agent holds its own host's token, derived from the API's master secret.
        write_secret(
            &dir.path().join("agent-token"),
            &super::agent_token_for("127.0.0.1"),
        );
        // The API's master secret, for an API whose `{dir}` is this directory.
        write_secret(&dir.path().join("api-master-secret"), super::AGENT_SECRET);
        let applied = dir.path().join("applied.json");
        let script = dir.path().join("apply-network-config");
        recording_script(&script, &applied, "echo applied");
        let config = dir.path().join("nova-guest.conf");
        let text = format!(
            "# One file for both daemons, as in production.\n[DEFAULT]\nhost = 127.0.0.1\n\n\
             [agent]\nlisten_address = 127.0.0.1\nlisten_port = 0\nauth_token_file = {d}/agent-token\n\
             transport = socket\nsocket_path_template = {d}/socks/{{uuid}}.sock\ncommand_timeout = 2\n\
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
        let process = Daemon::start(
            &workspace_binary("nova-guest-agent", "nova-guest-agent"),
            &config,
            &dir.path().join("agent.log"),
            &[],
        );
        Self {
            addr: process.addr(),
            process,
            qga,
            dir,
            config,
            applied,
        }
    }

    pub fn logs(&self) -> String {
        self.process.logs()
    }
}
