//! The test guest as a transient libvirt domain, and the agent helpers that go through
//! libvirt (`virsh`).
//!
//! Taint: libvirt marks a domain `custom-ga-command` the first time `qemu-agent-command`
//! (`virDomainQemuAgentCommand`) is used on it, and logs it once, as
//! `Domain id=N is tainted: custom-ga-command`, in the domain log
//! `/var/log/libvirt/qemu/NAME.log` (and in libvirtd's log, the status XML
//! `/run/libvirt/qemu/NAME.xml` as `<taint flag='custom-ga-command'/>`, and `virsh dominfo` as
//! `Messages: tainted: custom guest agent control commands issued`). [`Domain::agent_command`],
//! [`Domain::exec`], [`Domain::spawn`] and [`Domain::kill_agent`] use it; nothing else here
//! does. [`Domain::wait_agent`] uses `virsh domtime` (`virDomainGetTime`, the agent's
//! guest-get-time), which does not taint. To prove that an API does not taint, check
//! [`Domain::taints`] before any of the tainting helpers is used. Every domain of this
//! harness is tainted `high-privileges` from the start (QEMU runs as root).

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Libvirtd;
use super::text::{decode_output, domain_xml, parse_messages, parse_taints};
use crate::vm::{AGENT_PORT_NAME, DEFAULT_MAC, VmImage, tail_lines};

/// Default for [`Domain::wait_agent`] in [`Libvirtd::boot_test_vm`]: boot takes about 4 s on
/// an idle machine and much longer under load.
pub const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(120);
/// How often `virsh domtime` is retried while waiting for the agent.
const AGENT_POLL: Duration = Duration::from_millis(200);
/// Seconds libvirt waits for the agent in [`Domain::agent_command`].
const AGENT_COMMAND_TIMEOUT_S: &str = "10";
/// How long [`Domain::exec`] waits for the command to finish.
const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// How to create the domain. `DomainOptions::default()` matches `vm::VmOptions::default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainOptions {
    /// Guest memory in MiB (default 256).
    pub memory_mib: u32,
    /// The NIC's MAC address (default [`DEFAULT_MAC`]).
    pub mac: String,
    /// Extra kernel command line words (`qga.verbose=1`, `qga.respawn=0`, … as in
    /// `vm::VmOptions::append`).
    pub append: Vec<String>,
}

impl Default for DomainOptions {
    fn default() -> Self {
        Self {
            memory_mib: 256,
            mac: DEFAULT_MAC.to_owned(),
            append: Vec::new(),
        }
    }
}

/// What a command run with [`Domain::exec`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code, if it exited normally.
    pub exit_code: Option<i64>,
    /// Signal that ended it, if any.
    pub signal: Option<i64>,
    /// Its standard output (lossy UTF-8).
    pub stdout: String,
    /// Its standard error (lossy UTF-8).
    pub stderr: String,
}

impl ExecOutput {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// A transient domain running the test guest. Dropping it destroys the domain.
#[derive(Debug)]
pub struct Domain<'a> {
    libvirtd: &'a Libvirtd,
    name: String,
    uuid: String,
    id: u32,
    dir: PathBuf,
    console: PathBuf,
    created: Instant,
    boot_time: Option<Duration>,
}

impl Libvirtd {
    /// Creates a transient domain from `image` with default options and waits (up to
    /// [`DEFAULT_AGENT_TIMEOUT`]) until the agent answers through libvirt.
    ///
    /// # Errors
    ///
    /// When `virsh create` fails or the agent does not answer in time; the message holds the
    /// tail of the guest console.
    pub fn boot_test_vm(&self, image: &VmImage) -> Result<Domain<'_>, String> {
        let mut domain = self.create_domain(image, &DomainOptions::default())?;
        domain.wait_agent(DEFAULT_AGENT_TIMEOUT)?;
        domain.boot_time = Some(domain.created.elapsed());
        Ok(domain)
    }

    /// Creates (`virsh create`) a transient domain from `image` without waiting for the agent.
    ///
    /// # Errors
    ///
    /// When the disk cannot be copied or `virsh create` fails.
    pub fn create_domain(
        &self,
        image: &VmImage,
        options: &DomainOptions,
    ) -> Result<Domain<'_>, String> {
        let name = self.next_domain_name();
        let dir = self.dir().join(&name);
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let disk = dir.join("disk.img");
        fs::copy(&image.disk_template, &disk).map_err(|e| {
            format!(
                "cannot copy {} to {}: {e}",
                image.disk_template.display(),
                disk.display()
            )
        })?;
        let console = dir.join("console.log");
        let xml_path = dir.join("domain.xml");
        let xml = domain_xml(&name, image, &disk, &console, options);
        fs::write(&xml_path, xml)
            .map_err(|e| format!("cannot write {}: {e}", xml_path.display()))?;
        let created = Instant::now();
        self.virsh_ok(&["create", &xml_path.to_string_lossy()])
            .map_err(|e| format!("{e}\n{}", self.diagnostics()))?;
        let mut domain = Domain {
            libvirtd: self,
            name,
            uuid: String::new(),
            id: 0,
            dir,
            console,
            created,
            boot_time: None,
        };
        domain.uuid = self.virsh_ok(&["domuuid", &domain.name])?;
        domain.id = self
            .virsh_ok(&["domid", &domain.name])?
            .parse()
            .map_err(|e| format!("`virsh domid {}`: {e}", domain.name))?;
        Ok(domain)
    }
}

impl Domain<'_> {
    /// The domain's name (`nova-test-N`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The UUID libvirt generated.
    pub fn uuid(&self) -> &str {
        &self.uuid
    }

    /// The domain id (1 for the first domain of a libvirtd).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Time from `virsh create` to the agent's first answer, when
    /// [`Libvirtd::boot_test_vm`] waited for it.
    pub fn boot_time(&self) -> Option<Duration> {
        self.boot_time
    }

    /// When `virsh create` was started.
    pub fn created_at(&self) -> Instant {
        self.created
    }

    /// The directory with the domain's XML, disk copy and console file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Polls `virsh domtime` until the agent answers or `timeout` passes; returns how long it
    /// took. Does not taint the domain.
    ///
    /// # Errors
    ///
    /// On timeout or when the domain stops running, with virsh's last error and the console
    /// tail.
    pub fn wait_agent(&self, timeout: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let out = self
                .libvirtd
                .virsh_timeout(&["domtime", &self.name], Duration::from_secs(30));
            if out.status.success() {
                return Ok(start.elapsed());
            }
            let last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            if !last.contains("agent") {
                // Not "agent is not connected / not responding": the domain is gone or broken.
                if self.state() != "running" {
                    return Err(
                        self.failure(&format!("domain {} is not running: {last}", self.name))
                    );
                }
            }
            if start.elapsed() >= timeout {
                return Err(self.failure(&format!(
                    "the agent of {} did not answer `virsh domtime` within {timeout:?} ({last})",
                    self.name
                )));
            }
            thread::sleep(AGENT_POLL);
        }
    }

    /// `virsh domstate` (`running`, `shut off`, …), or the error text.
    pub fn state(&self) -> String {
        match self.libvirtd.virsh_ok(&["domstate", &self.name]) {
            Ok(s) | Err(s) => s,
        }
    }

    /// Sends a raw agent command with `virsh qemu-agent-command` and returns the `return`
    /// member of the reply. **Taints the domain** (`custom-ga-command`).
    ///
    /// # Errors
    ///
    /// virsh's error, e.g. `error: Guest agent is not responding: QEMU guest agent is not
    /// connected` while the agent is down, or when the reply is not JSON with `return`.
    pub fn agent_command(&self, command: &Value) -> Result<Value, String> {
        let text = command.to_string();
        let out = self.libvirtd.virsh_ok(&[
            "qemu-agent-command",
            "--timeout",
            AGENT_COMMAND_TIMEOUT_S,
            &self.name,
            &text,
        ])?;
        let mut reply: Value =
            serde_json::from_str(&out).map_err(|e| format!("reply {out:?} is not JSON: {e}"))?;
        reply
            .get_mut("return")
            .map(Value::take)
            .ok_or_else(|| format!("reply {out:?} has no `return`"))
    }

    /// Starts `/bin/sh -c SCRIPT` in the guest with guest-exec and returns its guest pid,
    /// without waiting. **Taints the domain.**
    ///
    /// # Errors
    ///
    /// As for [`agent_command`](Self::agent_command).
    pub fn spawn(&self, script: &str) -> Result<i64, String> {
        let reply = self.agent_command(&json!({
            "execute": "guest-exec",
            "arguments": {"path": "/bin/sh", "arg": ["-c", script]},
        }))?;
        reply["pid"]
            .as_i64()
            .ok_or_else(|| format!("guest-exec returned {reply}"))
    }

    /// Runs `/bin/sh -c SCRIPT` in the guest (guest-exec with captured output, then
    /// guest-exec-status every 100 ms until it exited). **Taints the domain.**
    ///
    /// # Errors
    ///
    /// When an agent call fails or the command runs longer than 30 s.
    pub fn exec(&self, script: &str) -> Result<ExecOutput, String> {
        let reply = self.agent_command(&json!({
            "execute": "guest-exec",
            "arguments": {"path": "/bin/sh", "arg": ["-c", script], "capture-output": true},
        }))?;
        let pid = reply["pid"]
            .as_i64()
            .ok_or_else(|| format!("guest-exec returned {reply}"))?;
        let deadline = Instant::now() + EXEC_TIMEOUT;
        loop {
            let status = self.agent_command(&json!({
                "execute": "guest-exec-status",
                "arguments": {"pid": pid},
            }))?;
            if status["exited"].as_bool() == Some(true) {
                return Ok(ExecOutput {
                    exit_code: status["exitcode"].as_i64(),
                    signal: status["signal"].as_i64(),
                    stdout: decode_output(&status["out-data"])?,
                    stderr: decode_output(&status["err-data"])?,
                });
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "guest command still running after {EXEC_TIMEOUT:?}"
                ));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills qemu-ga inside the guest (SIGKILL, 0.2 s after the guest-exec reply was sent);
    /// the guest's `/init` starts a new one 1 s after it died. **Taints the domain.**
    ///
    /// # Errors
    ///
    /// As for [`spawn`](Self::spawn).
    pub fn kill_agent(&self) -> Result<(), String> {
        self.spawn("sleep 0.2; kill -KILL $(pidof qemu-ga)")
            .map(drop)
    }

    /// The taint flags libvirt logged for this domain (`high-privileges`,
    /// `custom-ga-command`, …), in order, from `Domain id=N is tainted: FLAG` lines of the
    /// domain log.
    pub fn taints(&self) -> Vec<String> {
        parse_taints(&self.log_text(), self.id)
    }

    /// The `Messages:` lines of `virsh dominfo` (`virDomainGetMessages`), e.g.
    /// `tainted: custom guest agent control commands issued`.
    pub fn messages(&self) -> Vec<String> {
        let info = self
            .libvirtd
            .virsh_ok(&["dominfo", &self.name])
            .unwrap_or_default();
        parse_messages(&info)
    }

    /// The domain log (`S/log/qemu/NAME.log`: QEMU's command line, taint lines, QEMU's
    /// stderr).
    pub fn log_path(&self) -> PathBuf {
        self.libvirtd
            .dir()
            .join("log/qemu")
            .join(format!("{}.log", self.name))
    }

    /// The domain log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The guest serial console file.
    pub fn console_path(&self) -> &Path {
        &self.console
    }

    /// The last `lines` lines of the console.
    pub fn console_tail(&self, lines: usize) -> String {
        let bytes = fs::read(&self.console).unwrap_or_default();
        tail_lines(&String::from_utf8_lossy(&bytes), lines)
    }

    /// The host path of the agent socket libvirt created and holds open, from `virsh
    /// dumpxml`. libvirt is its one client: never connect to it while libvirt runs.
    pub fn agent_socket_path(&self) -> Option<PathBuf> {
        let xml = self.libvirtd.virsh_ok(&["dumpxml", &self.name]).ok()?;
        let suffix = format!("/{AGENT_PORT_NAME}'");
        let line = xml
            .lines()
            .find(|l| l.contains("<source") && l.contains(&suffix))?;
        let start = line.find("path='")? + "path='".len();
        let end = start + line[start..].find('\'')?;
        Some(self.libvirtd.host_path(Path::new(&line[start..end])))
    }

    /// Destroys the domain (`virsh destroy`). Also done on drop.
    ///
    /// # Errors
    ///
    /// virsh's error, e.g. when it is not running any more.
    pub fn destroy(&self) -> Result<(), String> {
        self.libvirtd.virsh_ok(&["destroy", &self.name]).map(drop)
    }

    fn failure(&self, what: &str) -> String {
        format!(
            "{what}\n--- last 30 lines of {} ---\n{}--- domain log ---\n{}",
            self.console.display(),
            self.console_tail(30),
            tail_lines(&self.log_text(), 10)
        )
    }
}

impl Drop for Domain<'_> {
    fn drop(&mut self) {
        let _ = self
            .libvirtd
            .virsh_timeout(&["destroy", &self.name], Duration::from_secs(20));
    }
}
