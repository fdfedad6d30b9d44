//! The four ways of sending one agent command to the same guest.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use qga_client::Client;
use qga_client::proto::RawCommand;

/// The command measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Case {
    Ping,
    Info,
}

impl Case {
    pub(crate) const ALL: [Self; 2] = [Self::Ping, Self::Info];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Ping => "guest-ping",
            Self::Info => "guest-info",
        }
    }

    pub(crate) fn json(self) -> String {
        format!(r#"{{"execute":"{}"}}"#, self.name())
    }
}

/// Times `calls` calls of `one`, after `warm` untimed ones; per-call latencies in ns.
fn time_calls(warm: usize, calls: usize, mut one: impl FnMut()) -> Vec<u64> {
    for _ in 0..warm {
        one();
    }
    (0..calls)
        .map(|_| {
            let t = Instant::now();
            one();
            t.elapsed().as_nanos() as u64
        })
        .collect()
}

/// Our client: `Client::call_raw` (`QEMU_DOMAIN_AGENT_COMMAND` over libvirt, or the agent's
/// socket directly), on a current-thread runtime as a CLI or a small daemon would run it.
pub(crate) fn ours(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    case: Case,
    warm: usize,
    calls: usize,
) -> Vec<u64> {
    let command = RawCommand::new(case.name());
    time_calls(warm, calls, || {
        rt.block_on(client.call_raw(&command))
            .unwrap_or_else(|e| panic!("{}: {e}", case.name()));
    })
}

/// Our typed `Client::ping` over libvirt (`DOMAIN_GET_TIME`, which does not taint).
pub(crate) fn ours_typed_ping(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    warm: usize,
    calls: usize,
) -> Vec<u64> {
    time_calls(warm, calls, || {
        rt.block_on(client.ping())
            .unwrap_or_else(|e| panic!("ping: {e}"));
    })
}

fn virsh_command(uri: &str) -> Command {
    let mut cmd = Command::new("virsh");
    cmd.args(["-q", "-c", uri])
        .env("LC_ALL", "C")
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env_remove("VIRSH_DEFAULT_CONNECT_URI");
    cmd
}

/// One `virsh qemu-agent-command` process per call.
pub(crate) fn virsh_per_call(
    uri: &str,
    domain: &str,
    case: Case,
    warm: usize,
    calls: usize,
) -> Vec<u64> {
    let json = case.json();
    time_calls(warm, calls, || {
        let out = virsh_command(uri)
            .args(["qemu-agent-command", domain, &json])
            .stdin(Stdio::null())
            .output()
            .expect("run virsh");
        assert!(
            out.status.success(),
            "virsh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
}

/// One long-lived `virsh` reading commands on its standard input (libvirt's own C client,
/// one connection). Its stdout is made line-buffered with `stdbuf -oL`, so that each reply can
/// be read as it comes.
pub(crate) struct VirshShell {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl VirshShell {
    pub(crate) fn start(uri: &str) -> Self {
        let virsh = virsh_command(uri);
        let mut cmd = Command::new("stdbuf");
        cmd.arg("-oL")
            .arg(virsh.get_program())
            .args(virsh.get_args())
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn stdbuf virsh");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// One command and its reply (the line starting with `{`).
    fn call(&mut self, domain: &str, json: &str) {
        writeln!(self.stdin, "qemu-agent-command {domain} '{json}'").expect("write to virsh");
        self.stdin.flush().expect("flush virsh stdin");
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.stdout.read_line(&mut line).expect("read virsh");
            assert!(n > 0, "virsh exited");
            if line.starts_with('{') {
                assert!(line.contains("\"return\""), "virsh: {line}");
                return;
            }
        }
    }

    pub(crate) fn measure(
        &mut self,
        domain: &str,
        case: Case,
        warm: usize,
        calls: usize,
    ) -> Vec<u64> {
        let json = case.json();
        time_calls(warm, calls, || self.call(domain, &json))
    }
}

impl Drop for VirshShell {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our client on the agent's socket itself (libvirtd stopped, so the socket is free).
pub(crate) fn direct(
    rt: &tokio::runtime::Runtime,
    socket: &Path,
    case: Case,
    warm: usize,
    calls: usize,
) -> Vec<u64> {
    let client = rt
        .block_on(Client::connect(socket))
        .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    let out = ours(rt, &client, case, warm, calls);
    rt.block_on(client.disconnect());
    out
}
