//! python qemu.qmp as a peer: a venv under `target/qga-benches/venv` with the PyPI package
//! `qemu.qmp` installed by pip, and one long-lived worker process (`peer.py`) that runs blocks
//! on request, so interpreter start-up is never timed.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::clients::{Block, WARM};

/// The version installed.
const QEMU_QMP: &str = "qemu.qmp==0.0.6";

const SCRIPT: &str = include_str!("peer.py");

/// The running worker.
pub(crate) struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

fn dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("qga-benches")
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

impl Worker {
    /// Creates the venv and installs qemu.qmp if needed, then starts the worker.
    ///
    /// # Errors
    ///
    /// When python3, venv or pip fail.
    pub(crate) fn start() -> io::Result<Self> {
        let dir = dir();
        std::fs::create_dir_all(&dir)?;
        let venv = dir.join("venv");
        let python = venv.join("bin/python");
        if !python.exists() {
            eprintln!("creating {} ...", venv.display());
            run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        }
        let have = Command::new(&python)
            .args(["-c", "import qemu.qmp"])
            .stderr(Stdio::null())
            .status()?
            .success();
        if !have {
            eprintln!("installing {QEMU_QMP} into the venv ...");
            run(Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                QEMU_QMP,
            ]))?;
        }
        let script = dir.join("peer.py");
        std::fs::write(&script, SCRIPT)?;
        let mut child = Command::new(&python)
            .arg("-u")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other("worker pipes missing"));
        };
        Ok(Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// The worker's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs one block in the worker.
    pub(crate) fn block(
        &mut self,
        qmp: bool,
        sock: &Path,
        cmd: &str,
        n: usize,
    ) -> io::Result<Block> {
        let req = serde_json::json!({
            "qmp": qmp, "sock": sock, "cmd": cmd, "n": n, "warm": WARM,
        });
        writeln!(self.stdin, "{req}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err(io::Error::other("python worker exited"));
        }
        let v: serde_json::Value = serde_json::from_str(&line).map_err(io::Error::other)?;
        if let Some(e) = v.get("error") {
            return Err(io::Error::other(format!("python: {e}")));
        }
        let lat_ns = v["lat_ns"]
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_u64).collect())
            .unwrap_or_default();
        Ok(Block {
            lat_ns,
            wall_ns: v["wall_ns"].as_u64().unwrap_or(0),
            cpu_ns: v["cpu_ns"].as_u64().unwrap_or(0),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
