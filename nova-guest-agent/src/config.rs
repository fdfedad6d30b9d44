//! The configuration: `/etc/nova-guest/nova-guest.conf`, INI in the OpenStack style, shared
//! with nova-guest-api and read with [`nova_guest_conf`].
//!
//! The agent reads `[DEFAULT]` and `[agent]`. The sections of nova-guest-api (`[api]`,
//! `[keystone_authtoken]`, `[instances]`, `[policy]`) are skipped without a look. Any other
//! section, any unknown key and any bad value is an error naming the file, line, section and
//! key; the daemon refuses to start (and a reload keeps the previous configuration).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use nova_guest_conf::{ConfigError, ConfigErrors, LogFormat, Secret};
use nova_guest_conf::{Daemon, Document, values};

use crate::action::Action;
use crate::template::SocketTemplate;

/// The default configuration file.
pub use nova_guest_daemon::process::DEFAULT_CONFIG_FILE;
/// The default `[agent] listen_port`.
pub const DEFAULT_PORT: u16 = 4225;
/// The default socket location (one socket per instance, named by its uuid).
pub const DEFAULT_SOCKET_TEMPLATE: &str = "/run/nova-guest/qga/{uuid}.sock";
/// The default script-mode path on Linux guests (the original nova-guest's).
pub const DEFAULT_SCRIPT: &str = "/scripts/apply-network-config";
/// The default script-mode path on Windows guests (the original nova-guest's).
pub const DEFAULT_SCRIPT_WINDOWS: &str = r"C:\scripts\apply-network-config.ps1";

/// How guests are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The agent's UNIX socket, directly (`socket`, or its old name `unix`).
    Socket,
    /// Through libvirt's RPC socket (`libvirt`): one connection for every guest, the domain
    /// found by the instance's UUID.
    Libvirt,
}

impl TransportKind {
    /// `socket` or `libvirt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Socket => "socket",
            Self::Libvirt => "libvirt",
        }
    }
}

/// How apply-networking works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkingMode {
    /// Render network_data.json into a script for the guest's OS and run it.
    Render,
    /// Run a script that exists in the guest with base64(network_data) as its argument.
    Script,
}

/// The TLS certificate chain and key files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The agent's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// `[DEFAULT] host`: this compute host's name as nova-compute reports it.
    pub host: String,
    /// `[DEFAULT] debug`: log at debug level.
    pub debug: bool,
    /// `[agent] listen_address`.
    pub listen_address: IpAddr,
    /// `[agent] listen_port` (0: any free port; the bound address is logged).
    pub listen_port: u16,
    /// `[agent] header_timeout`: how long a client may take to send its first bytes and each
    /// request head (and to finish a TLS handshake).
    pub header_timeout: Duration,
    /// `[agent] max_connections`: client connections served at once; more are closed at once.
    pub max_connections: usize,
    /// `[agent] auth_token_file`.
    pub auth_token_file: PathBuf,
    /// The secret read from it.
    pub auth_token: Secret,
    /// `[agent] tls_cert_file` and `tls_key_file`.
    pub tls: Option<TlsFiles>,
    /// `[agent] transport`.
    pub transport: TransportKind,
    /// `[agent] libvirt_socket`: libvirt's socket (default: the first of
    /// `qga_client::libvirt::SOCKET_CANDIDATES` that exists, when connecting).
    pub libvirt_socket: Option<PathBuf>,
    /// `[agent] socket_path_template`.
    pub socket_path_template: SocketTemplate,
    /// `[agent] qmp_socket_path_template`: each instance's QMP socket, when the agent may use
    /// it to learn at once whether the guest agent runs (QEMU's `VSERPORT_CHANGE`).
    pub qmp_socket_path_template: Option<SocketTemplate>,
    /// `[agent] enabled_actions`.
    pub enabled_actions: BTreeSet<Action>,
    /// `[agent] apply_networking_mode`.
    pub apply_networking_mode: NetworkingMode,
    /// `[agent] apply_networking_script`: the guest path run in script mode (Linux guests).
    pub apply_networking_script: String,
    /// `[agent] apply_networking_script_windows`: the same for Windows guests (run with
    /// powershell.exe).
    pub apply_networking_script_windows: String,
    /// `[agent] command_timeout`: bound on one guest operation, handshake and queueing
    /// included.
    pub command_timeout: Duration,
    /// `[agent] list_timeout`: bound on each ping of `GET /v1/instances`.
    pub list_timeout: Duration,
    /// `[agent] max_concurrent_operations`: guest operations running at once, all guests.
    pub max_concurrent_operations: usize,
    /// `[agent] max_queued_per_guest`: requests waiting for one guest (the running one
    /// included); the next gets 429 guest_queue_full.
    pub max_queued_per_guest: usize,
    /// `[agent] max_file_size`: largest inject-file payload (decoded bytes).
    pub max_file_size: usize,
    /// `[agent] idle_connection_timeout`: guest connections unused this long are closed.
    pub idle_connection_timeout: Duration,
    /// `[agent] shutdown_timeout`: how long SIGTERM waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// `[agent] log_format`.
    pub log_format: LogFormat,
}

impl Config {
    /// The largest request body accepted: base64 of the largest file, plus room for JSON.
    pub fn max_body_size(&self) -> usize {
        self.max_file_size.div_ceil(3) * 4 + 1024 * 1024
    }
}

/// The machine's host name, the default of `[DEFAULT] host`.
fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Reads and validates a configuration file (and the secret file it names).
///
/// # Errors
///
/// Every problem found, each naming the file, line, section and key.
pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
    read(Document::load(file, Daemon::Agent)?)
}

/// Validates configuration text as if read from `file`.
///
/// # Errors
///
/// As for [`load`].
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
    read(Document::parse(file, text, Daemon::Agent)?)
}

impl nova_guest_daemon::process::Logging for Config {
    fn logging(&self) -> (LogFormat, bool) {
        (self.log_format, self.debug)
    }
}

fn read(mut doc: Document) -> Result<Config, ConfigErrors> {
    let file = doc.file().to_owned();
    let mut d = doc.section("DEFAULT");
    let host = d.string("host").unwrap_or_else(system_hostname);
    let debug = d.parse("debug", false, values::boolean);

    let mut a = doc.section("agent");
    let listen = a.listen(DEFAULT_PORT);
    let (header_timeout, max_connections) = a.connection_limits(256);
    let (auth_token_file, auth_token) = a.secret_file(
        "auth_token_file",
        "the file holding the secret nova-guest-api presents",
    );
    let tls = match (
        a.get("tls_cert_file").cloned(),
        a.get("tls_key_file").cloned(),
    ) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            let files = TlsFiles {
                cert: nova_guest_conf::relative_to(&file, &c.value),
                key: nova_guest_conf::relative_to(&file, &k.value),
            };
            for (entry, path) in [(&c, &files.cert), (&k, &files.key)] {
                if let Err(e) = std::fs::metadata(path) {
                    a.error(
                        Some(entry),
                        &entry.key,
                        format!("cannot read {}: {e}", path.display()),
                    );
                }
            }
            Some(files)
        }
        (Some(e), None) | (None, Some(e)) => {
            a.error(
                Some(&e),
                &e.key,
                "tls_cert_file and tls_key_file must be set together",
            );
            None
        }
    };
    let libvirt_socket = a.parse("libvirt_socket", None, |v| {
        let path = PathBuf::from(v);
        if path.is_absolute() {
            Ok(Some(path))
        } else {
            Err("expected an absolute path".to_owned())
        }
    });
    // libvirt owns the agents' sockets where it runs: go through it by default there.
    let libvirt_here = match &libvirt_socket {
        Some(path) => path.exists(),
        None => qga_client::libvirt::default_socket().is_some(),
    };
    let default_transport = if libvirt_here {
        TransportKind::Libvirt
    } else {
        TransportKind::Socket
    };
    let transport = a.parse("transport", default_transport, |v| match v {
        "socket" | "unix" => Ok(TransportKind::Socket),
        "libvirt" => Ok(TransportKind::Libvirt),
        _ => Err("expected libvirt or socket".into()),
    });
    let socket_path_template = a.parse(
        "socket_path_template",
        SocketTemplate::parse(DEFAULT_SOCKET_TEMPLATE).ok(),
        |v| SocketTemplate::parse(v).map(Some),
    );
    let qmp_socket_path_template = a.parse("qmp_socket_path_template", None, |v| {
        SocketTemplate::parse(v).map(Some)
    });
    let enabled_actions = a.parse("enabled_actions", Action::default_enabled(), |v| {
        let mut set = BTreeSet::new();
        for name in values::list(v) {
            let action = Action::from_name(&name)
                .ok_or_else(|| format!("unknown action {name:?} (known: {})", Action::names()))?;
            set.insert(action);
        }
        Ok(set)
    });
    let apply_networking_mode = a.parse("apply_networking_mode", NetworkingMode::Render, |v| {
        values::choice(
            v,
            &[
                ("render", NetworkingMode::Render),
                ("script", NetworkingMode::Script),
            ],
        )
    });
    let guest_path = |v: &str| {
        if v.is_empty() || v.contains('\0') {
            Err("expected a path in the guest".to_owned())
        } else {
            Ok(v.to_owned())
        }
    };
    let apply_networking_script =
        a.parse("apply_networking_script", DEFAULT_SCRIPT.into(), guest_path);
    let apply_networking_script_windows = a.parse(
        "apply_networking_script_windows",
        DEFAULT_SCRIPT_WINDOWS.into(),
        guest_path,
    );
    let command_timeout = a.parse("command_timeout", Duration::from_secs(30), |v| {
        values::seconds(v, 0.1, 3600.0)
    });
    let list_timeout = a
        .parse("list_timeout", Duration::from_secs(2), |v| {
            values::seconds(v, 0.1, 3600.0)
        })
        .min(command_timeout);
    let max_concurrent_operations = a.parse("max_concurrent_operations", 64, |v| {
        values::count(v, 1, 100_000)
    });
    let max_queued_per_guest = a.parse("max_queued_per_guest", 8, |v| values::count(v, 1, 100_000));
    let max_file_size = a.parse("max_file_size", 64 * 1024 * 1024, |v| {
        values::count(v, 1, 1024 * 1024 * 1024)
    });
    let idle_connection_timeout =
        a.parse("idle_connection_timeout", Duration::from_secs(300), |v| {
            values::seconds(v, 1.0, 86_400.0)
        });
    let shutdown_timeout = a.parse(
        "shutdown_timeout",
        command_timeout + Duration::from_secs(5),
        |v| values::seconds(v, 0.0, 3600.0),
    );
    let log_format = a.parse("log_format", LogFormat::Text, LogFormat::parse);

    doc.finish()?;
    let Some(socket_path_template) = socket_path_template else {
        // Unreachable: a bad template is recorded, and finish() returned it.
        return Err(ConfigErrors(vec![ConfigError::file(
            &file,
            "[agent] socket_path_template is invalid",
        )]));
    };
    Ok(Config {
        file,
        host,
        debug,
        listen_address: listen.ip(),
        listen_port: listen.port(),
        header_timeout,
        max_connections,
        auth_token_file,
        auth_token,
        tls,
        transport,
        libvirt_socket,
        socket_path_template,
        qmp_socket_path_template,
        enabled_actions,
        apply_networking_mode,
        apply_networking_script,
        apply_networking_script_windows,
        command_timeout,
        list_timeout,
        max_concurrent_operations,
        max_queued_per_guest,
        max_file_size,
        idle_connection_timeout,
        shutdown_timeout,
        log_format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret-s3cret-s3cret-s3cret-0123";

    fn write_secret(path: &Path, secret: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, format!("{secret}\n")).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn with_token(text: &str) -> (tempfile::TempDir, Result<Config, ConfigErrors>) {
        let dir = tempfile::tempdir().unwrap();
        write_secret(&dir.path().join("token"), &format!("  {SECRET}"));
        let file = dir.path().join("nova-guest.conf");
        let result = parse(&file, text);
        (dir, result)
    }

    #[test]
    fn defaults_and_api_sections_skipped() {
        let (_d, c) = with_token(
            "[DEFAULT]\nhost = cmp1\n[agent]\nauth_token_file = token\n\
             [api]\nwhatever = 1\n[keystone_authtoken]\npassword = x\n[instances]\n\
             b6b4177b-3ca1-4d0f-a3a4-ad46d82a6f62 = cmp1 p\n[policy]\nexec = admin\n",
        );
        let c = c.unwrap();
        assert_eq!(c.host, "cmp1");
        assert_eq!(c.listen_port, 4225);
        assert!(c.auth_token.matches(SECRET.as_bytes()));
        assert!(!c.auth_token.matches(format!("{SECRET} ").as_bytes()));
        assert!(!c.enabled_actions.contains(&Action::Exec));
        assert!(c.enabled_actions.contains(&Action::Ping));
        assert_eq!(c.command_timeout, Duration::from_secs(30));
        assert_eq!(c.apply_networking_mode, NetworkingMode::Render);
        assert_eq!(format!("{:?}", c.auth_token), "Secret(<redacted>)");
        assert!(!format!("{c:?}").contains(SECRET));
    }

    #[test]
    fn errors_name_file_line_section_and_key() {
        let (_d, c) = with_token(
            "[agent]\nauth_token_file = token\nlisten_prot = 1\ncommand_timeout = soon\n\
             enabled_actions = ping, reboot\ntransport = qmp\n[agnet]\n",
        );
        let e = c.unwrap_err().to_string();
        assert!(
            e.contains("nova-guest.conf:3: [agent] listen_prot: unknown key"),
            "{e}"
        );
        assert!(
            e.contains(":4: [agent] command_timeout: expected a number"),
            "{e}"
        );
        assert!(
            e.contains(":5: [agent] enabled_actions: unknown action \"reboot\""),
            "{e}"
        );
        assert!(
            e.contains(":6: [agent] transport: expected libvirt or socket"),
            "{e}"
        );
        assert!(e.contains(":7: [agnet]: unknown section"), "{e}");
    }

    #[test]
    fn transports_and_the_libvirt_socket() {
        let (d, c) = with_token("[agent]\nauth_token_file = token\ntransport = unix\n");
        assert_eq!(c.unwrap().transport, TransportKind::Socket);
        let (_d, c) = with_token("[agent]\nauth_token_file = token\ntransport = socket\n");
        assert_eq!(c.unwrap().transport, TransportKind::Socket);
        let c = parse(
            &d.path().join("x.conf"),
            "[agent]\nauth_token_file = token\ntransport = libvirt\nlibvirt_socket = /l/sock\n",
        )
        .unwrap();
        assert_eq!(c.transport, TransportKind::Libvirt);
        assert_eq!(c.libvirt_socket.as_deref(), Some(Path::new("/l/sock")));
        // Without `transport`: libvirt when its socket exists.
        let sock = d.path().join("libvirt-sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let text = format!(
            "[agent]\nauth_token_file = token\nlibvirt_socket = {}\n",
            sock.display()
        );
        assert_eq!(
            parse(&d.path().join("x.conf"), &text).unwrap().transport,
            TransportKind::Libvirt
        );
        let text = "[agent]\nauth_token_file = token\nlibvirt_socket = /no/such/sock\n";
        assert_eq!(
            parse(&d.path().join("x.conf"), text).unwrap().transport,
            TransportKind::Socket
        );
        let text = "[agent]\nauth_token_file = token\nlibvirt_socket = relative\n";
        assert!(
            parse(&d.path().join("x.conf"), text)
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
    }

    #[test]
    fn token_file_required_and_non_empty() {
        let (_d, c) = with_token("[agent]\n");
        assert!(
            c.unwrap_err()
                .to_string()
                .contains("auth_token_file: is required")
        );
        let (d, _) = with_token("");
        write_secret(&d.path().join("empty"), " ");
        let c = parse(
            &d.path().join("x.conf"),
            "[agent]\nauth_token_file = empty\n",
        );
        assert!(c.unwrap_err().to_string().contains("is empty"));
    }

    #[test]
    fn fractions_and_templates() {
        let (_d, c) = with_token(
            "[agent]\nauth_token_file = token\ncommand_timeout = 1.5\nlist_timeout = 9\n\
             socket_path_template = /run/qemu-server/{name}.qga\nenabled_actions = exec\n",
        );
        let c = c.unwrap();
        assert_eq!(c.command_timeout, Duration::from_millis(1500));
        assert_eq!(c.list_timeout, Duration::from_millis(1500));
        assert!(c.socket_path_template.uses_name());
        assert_eq!(c.enabled_actions.len(), 1);
        let (_d, c) = with_token("[agent]\nauth_token_file = token\nsocket_path_template = x\n");
        assert!(
            c.unwrap_err()
                .to_string()
                .contains("socket_path_template: must be an absolute")
        );
    }

    #[test]
    fn the_sample_config_documents_every_key_and_parses() {
        let sample = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/nova-guest.conf"),
        )
        .unwrap();
        let agent_keys = nova_guest_conf::layout::keys("agent");
        for key in nova_guest_conf::layout::keys("DEFAULT")
            .iter()
            .chain(agent_keys)
        {
            assert!(
                sample.contains(&format!("\n#{key} = ")) || sample.contains(&format!("\n{key} = ")),
                "etc/nova-guest.conf does not document {key}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        write_secret(&dir.path().join("agent-token"), SECRET);
        let text = sample.replace("/etc/nova-guest/agent-token", "agent-token");
        let c = parse(&dir.path().join("nova-guest.conf"), &text).unwrap();
        assert_eq!(c.listen_port, DEFAULT_PORT);
        // Uncommenting every agent option keeps it valid.
        let all: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest)
                    if agent_keys
                        .iter()
                        .any(|k| rest.starts_with(&format!("{k} = ")))
                        && !rest.starts_with("tls_")
                        && !rest.starts_with("socket_path_template = /run/qemu") =>
                {
                    rest
                }
                _ => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let c = parse(&dir.path().join("nova-guest.conf"), &all).unwrap();
        assert_eq!(c.shutdown_timeout, Duration::from_secs(35));
    }
}
