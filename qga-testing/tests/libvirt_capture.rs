//! Records real libvirt RPC sessions (virsh ↔ the private libvirtd, through a recording proxy)
//! as seeds for protocol tests and fuzzing. Ignored by default:
//!
//! ```text
//! NOVA_LIBVIRT_CAPTURE_DIR=/some/dir cargo test -p qga-testing --test libvirt_capture -- --ignored
//! ```
//!
//! Writes `<session>.c2s.bin`, `<session>.s2c.bin`, `<session>.timeline.txt` and `README.txt`
//! (default directory: `target/libvirt-captures`).

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use qga_testing::libvirt::{Libvirtd, RecordingProxy, rpc_headers};
use qga_testing::vm::VmImage;

struct Session {
    name: String,
    what: String,
    args: Vec<String>,
    output: Output,
}

struct Recorder<'a> {
    proxy: &'a RecordingProxy,
    sessions: Vec<Session>,
}

impl Recorder<'_> {
    /// Runs `virsh -c <proxy uri> ARGS` as session `name`.
    fn run(&mut self, name: &str, what: &str, args: &[&str]) -> &Output {
        self.proxy.set_session(name);
        let output = virsh(&self.proxy.uri(), args, None);
        self.push(name, what, args, output)
    }

    fn push(&mut self, name: &str, what: &str, args: &[&str], output: Output) -> &Output {
        self.sessions.push(Session {
            name: name.to_owned(),
            what: what.to_owned(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            output,
        });
        &self.sessions.last().unwrap().output
    }
}

fn virsh(uri: &str, args: &[&str], stdin_for: Option<(Duration, &str)>) -> Output {
    let mut child = Command::new("virsh")
        .args(["-c", uri])
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some((wait, input)) = stdin_for {
        thread::sleep(wait);
        stdin.write_all(input.as_bytes()).unwrap();
    }
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
#[ignore = "writes capture files; run explicitly with --ignored"]
fn capture_rpc_sessions() {
    let out_dir = std::env::var_os("NOVA_LIBVIRT_CAPTURE_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/libvirt-captures"),
        PathBuf::from,
    );
    let image = VmImage::build().unwrap_or_else(|e| panic!("{e}"));
    let libvirtd = Libvirtd::start().unwrap_or_else(|e| panic!("{e}"));
    let domain = libvirtd
        .boot_test_vm(&image)
        .unwrap_or_else(|e| panic!("{e}"));
    let name = domain.name().to_owned();
    let proxy = RecordingProxy::start(
        &libvirtd.dir().join("capture.sock"),
        libvirtd.socket_path(),
        &out_dir,
    )
    .unwrap();
    let mut rec = Recorder {
        proxy: &proxy,
        sessions: Vec::new(),
    };
    let n = name.as_str();
    rec.run("version", "virsh version", &["version"]);
    rec.run(
        "list-all",
        "virsh list --all (one running domain)",
        &["list", "--all"],
    );
    rec.run("domuuid", "virsh domuuid DOM", &["domuuid", n]);
    rec.run(
        "error-unknown-domain",
        "virsh domuuid no-such-domain: lookup fails with VIR_ERR_NO_DOMAIN",
        &["domuuid", "no-such-domain"],
    );
    rec.run(
        "domtime",
        "virsh domtime DOM (agent guest-get-time)",
        &["domtime", n],
    );
    rec.run(
        "set-user-password",
        "virsh set-user-password DOM tester capture-pw-1 (password in clear in c2s)",
        &["set-user-password", n, "tester", "capture-pw-1"],
    );
    rec.run(
        "guestinfo",
        "virsh guestinfo DOM (all info types)",
        &["guestinfo", n],
    );
    rec.run(
        "domifaddr-agent",
        "virsh domifaddr --source agent DOM",
        &["domifaddr", "--source", "agent", n],
    );
    rec.run(
        "qemu-agent-command-ping",
        "virsh qemu-agent-command DOM guest-ping (QEMU program; taints the domain)",
        &["qemu-agent-command", n, r#"{"execute":"guest-ping"}"#],
    );
    rec.run(
        "qemu-agent-command-info",
        "virsh qemu-agent-command DOM guest-info",
        &["qemu-agent-command", n, r#"{"execute":"guest-info"}"#],
    );
    rec.run(
        "qemu-agent-command-bad-json",
        "virsh qemu-agent-command DOM with a command qemu-ga does not know (agent error)",
        &["qemu-agent-command", n, r#"{"execute":"no-such-command"}"#],
    );

    // agent-lifecycle events around an agent kill, and a call while the agent is down.
    proxy.set_session("event-agent-lifecycle");
    let uri = proxy.uri();
    let event_args = [
        "event",
        "--domain",
        n,
        "--event",
        "agent-lifecycle",
        "--loop",
        "--timeout",
        "8",
    ];
    let watcher = {
        let uri = uri.clone();
        let args: Vec<String> = event_args.iter().map(|s| (*s).to_owned()).collect();
        thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            virsh(&uri, &args, None)
        })
    };
    // Nothing shows when virsh has registered its callback; 1 s is ample.
    thread::sleep(Duration::from_secs(1));
    domain.kill_agent().unwrap();
    let killed = Instant::now();
    // Pings until one fails with "not connected" (agent gone). A ping in flight when qemu-ga
    // dies fails differently ("disappeared while executing command"); that one is kept too.
    let rename = |from: &str, to: &str| {
        for suffix in ["c2s.bin", "s2c.bin", "timeline.txt"] {
            let _ = fs::rename(
                out_dir.join(format!("{from}.{suffix}")),
                out_dir.join(format!("{to}.{suffix}")),
            );
        }
    };
    let args = ["qemu-agent-command", n, r#"{"execute":"guest-ping"}"#];
    let mut down = false;
    while killed.elapsed() < Duration::from_secs(10) {
        proxy.set_session("agent-ping-try");
        let out = virsh(&uri, &args, None);
        let last = proxy.recordings().last().unwrap().name.clone();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            rename(&last, &format!("scratch-{last}"));
        } else if stderr.contains("disappeared") {
            rename(&last, "agent-disappeared-error");
            rec.push(
                "agent-disappeared-error",
                "virsh qemu-agent-command DOM guest-ping in flight when qemu-ga died (VIR_ERR_AGENT_UNRESPONSIVE)",
                &args,
                out,
            );
        } else {
            rename(&last, "agent-down-error");
            rec.push(
                "agent-down-error",
                "virsh qemu-agent-command DOM guest-ping while qemu-ga is dead (VIR_ERR_AGENT_UNRESPONSIVE)",
                &args,
                out,
            );
            down = true;
            break;
        }
    }
    assert!(down, "no ping failed with the agent down");
    let events = watcher.join().unwrap();
    rec.push(
        "event-agent-lifecycle",
        "virsh event --event agent-lifecycle --loop --timeout 8 while qemu-ga is killed and restarted",
        &event_args,
        events,
    );
    domain.wait_agent(Duration::from_secs(60)).unwrap();

    // An idle virsh shell: keepalive PING/PONG in both directions (5 s intervals).
    proxy.set_session("keepalive-idle-shell");
    let idle = virsh(&uri, &[], Some((Duration::from_secs(17), "list\nquit\n")));
    rec.push(
        "keepalive-idle-shell",
        "interactive virsh (commands on stdin) idle for 17 s, then `list` and `quit`",
        &[],
        idle,
    );

    let sessions = rec.sessions;
    drop(proxy);
    write_readme(&out_dir, &libvirtd, &sessions);
    for f in fs::read_dir(&out_dir).unwrap().flatten() {
        let file_name = f.file_name().to_string_lossy().into_owned();
        if file_name.starts_with("scratch") {
            let _ = fs::remove_file(f.path());
        }
    }
    eprintln!("captures in {}", out_dir.display());
}

fn write_readme(dir: &std::path::Path, libvirtd: &Libvirtd, sessions: &[Session]) {
    let version = libvirtd.virsh_ok(&["version"]).unwrap_or_default();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Real libvirt RPC sessions: virsh <-> libvirtd over a UNIX socket, recorded by\n\
         qga-testing's RecordingProxy (qga-testing/tests/libvirt_capture.rs, run with --ignored).\n\
         Files per session: NAME.c2s.bin (client to server) and NAME.s2c.bin (server to client),\n\
         bytes exactly as on the wire; NAME.timeline.txt: one line per read, 'ms-since-accept\n\
         direction bytes'. No TLS, no SASL (auth none on the UNIX socket).\n\n\
         Message layout: u32 length (big-endian, counts itself), then prog, vers, proc, type,\n\
         serial, status (u32 each), then the XDR body. Programs: REMOTE 0x20008086,\n\
         QEMU 0x20008087 (qemu-agent-command), KEEPALIVE 0x6b656570 (proc 1 PING, 2 PONG).\n\
         Types: 0 call, 1 reply, 2 message (event). Status: 0 ok, 1 error (body: remote_error,\n\
         shown as [code domain message]: 42 VIR_ERR_NO_DOMAIN, 86 VIR_ERR_AGENT_UNRESPONSIVE,\n\
         1 VIR_ERR_INTERNAL_ERROR; domain 10 VIR_FROM_QEMU). Keepalive PING/PONG are type 2,\n\
         serial 0, no body; both sides send PING after 5 s idle. Every session opens with\n\
         AUTH_LIST, CONNECT_SUPPORTS_FEATURE x3, CONNECT_OPEN and REGISTER_CLOSE_CALLBACK and\n\
         ends with UNREGISTER_CLOSE_CALLBACK and CONNECT_CLOSE. DOMAIN_GET_GUEST_INFO (418) is\n\
         named by elimination (the one call only guestinfo makes).\n\n\
         {version}\n"
    );
    for s in sessions {
        let _ = writeln!(text, "== {}: {}", s.name, s.what);
        let _ = writeln!(text, "   virsh -c URI {}", s.args.join(" "));
        let _ = writeln!(
            text,
            "   exit {}; stdout {:?}; stderr {:?}",
            s.output.status.code().unwrap_or(-1),
            clip(&String::from_utf8_lossy(&s.output.stdout)),
            clip(&String::from_utf8_lossy(&s.output.stderr))
        );
        for dir_name in ["c2s", "s2c"] {
            let bytes =
                fs::read(dir.join(format!("{}.{dir_name}.bin", s.name))).unwrap_or_default();
            let (headers, used) = rpc_headers(&bytes);
            let _ = writeln!(
                text,
                "   {dir_name}: {} bytes, {} messages{}",
                bytes.len(),
                headers.len(),
                if used == bytes.len() {
                    ""
                } else {
                    " (trailing bytes!)"
                }
            );
            let mut pos = 0;
            for h in headers {
                let _ = write!(
                    text,
                    "     len {:5} {:9} v{} proc {:3} type {} serial {:2} status {} {}",
                    h.len,
                    h.prog_name(),
                    h.vers,
                    h.proc_,
                    h.kind,
                    h.serial,
                    h.status,
                    proc_name(h.prog, h.proc_)
                );
                if h.status == 1 {
                    let _ = write!(
                        text,
                        " {}",
                        remote_error(&bytes[pos + 28..pos + h.len as usize])
                    );
                }
                text.push('\n');
                pos += h.len as usize;
            }
        }
        text.push('\n');
    }
    fs::write(dir.join("README.txt"), text).unwrap();
}

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// Names of the procedures these sessions use (remote_protocol.x, qemu_protocol.x,
/// virkeepaliveprotocol.x).
fn proc_name(prog: u32, proc_: i32) -> &'static str {
    match (prog, proc_) {
        (0x2000_8086, 1) => "CONNECT_OPEN",
        (0x2000_8086, 2) => "CONNECT_CLOSE",
        (0x2000_8086, 3) => "CONNECT_GET_TYPE",
        (0x2000_8086, 4) => "CONNECT_GET_VERSION",
        (0x2000_8086, 23) => "DOMAIN_LOOKUP_BY_NAME",
        (0x2000_8086, 60) => "CONNECT_SUPPORTS_FEATURE",
        (0x2000_8086, 66) => "AUTH_LIST",
        (0x2000_8086, 157) => "CONNECT_GET_LIB_VERSION",
        (0x2000_8086, 212) => "DOMAIN_GET_STATE",
        (0x2000_8086, 273) => "CONNECT_LIST_ALL_DOMAINS",
        (0x2000_8086, 316) => "CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY",
        (0x2000_8086, 317) => "CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY",
        (0x2000_8086, 337) => "DOMAIN_GET_TIME",
        (0x2000_8086, 348) => "DOMAIN_EVENT_CALLBACK_AGENT_LIFECYCLE",
        (0x2000_8086, 353) => "DOMAIN_INTERFACE_ADDRESSES",
        (0x2000_8086, 357) => "DOMAIN_SET_USER_PASSWORD",
        (0x2000_8086, 360) => "CONNECT_REGISTER_CLOSE_CALLBACK",
        (0x2000_8086, 361) => "CONNECT_UNREGISTER_CLOSE_CALLBACK",
        (0x2000_8086, 418) => "DOMAIN_GET_GUEST_INFO",
        (0x2000_8087, 3) => "QEMU_DOMAIN_AGENT_COMMAND",
        (0x6b65_6570, 1) => "PING",
        (0x6b65_6570, 2) => "PONG",
        _ => "",
    }
}

/// `code`, `domain` and `message` of a `remote_error` body (XDR: int, int, optional string).
fn remote_error(body: &[u8]) -> String {
    let word = |at: usize| {
        body.get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (Some(code), Some(domain), Some(present)) = (word(0), word(4), word(8)) else {
        return "(short remote_error)".into();
    };
    let message = if present == 1 {
        word(12)
            .and_then(|n| body.get(16..16 + n as usize))
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    format!("[code {code} domain {domain} {message:?}]")
}
