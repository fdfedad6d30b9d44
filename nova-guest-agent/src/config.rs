//! The configuration: `/etc/nova-guest/nova-guest.conf`, INI in the OpenStack style, shared
//! with nova-guest-api.
//!
//! The agent reads `[DEFAULT]` and `[agent]`. The sections of nova-guest-api (`[api]`,
//! `[keystone_authtoken]`, `[instances]`, `[policy]`) are skipped without a look. Any other
//! section, any unknown key and any bad value is an error naming the file, line, section and
//! key; the daemon refuses to start (and a reload keeps the previous configuration).

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::action::Action;
use crate::ini;
use crate::template::SocketTemplate;

/// The default configuration file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/nova-guest/nova-guest.conf";
/// The default `[agent] listen_port`.
pub const DEFAULT_PORT: u16 = 4225;
/// The default socket location (one socket per instance, named by its uuid).
pub const DEFAULT_SOCKET_TEMPLATE: &str = "/run/nova-guest/qga/{uuid}.sock";
/// The default script-mode path on Linux guests (the original nova-guest's).
pub const DEFAULT_SCRIPT: &str = "/scripts/apply-network-config";
/// The default script-mode path on Windows guests (the original nova-guest's).
pub const DEFAULT_SCRIPT_WINDOWS: &str = r"C:\scripts\apply-network-config.ps1";

/// Sections that belong to nova-guest-api.
const API_SECTIONS: &[&str] = &["api", "keystone_authtoken", "instances", "policy"];

/// Every key the agent knows, by section (for the unknown-key error).
const DEFAULT_KEYS: &[&str] = &["host", "debug"];
const AGENT_KEYS: &[&str] = &[
    "listen_address",
    "listen_port",
    "auth_token_file",
    "tls_cert_file",
    "tls_key_file",
    "transport",
    "socket_path_template",
    "enabled_actions",
    "apply_networking_mode",
    "apply_networking_script",
    "apply_networking_script_windows",
    "command_timeout",
    "list_timeout",
    "max_concurrent_operations",
    "max_file_size",
    "idle_connection_timeout",
    "shutdown_timeout",
    "log_format",
];

/// How guests are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// The agent's UNIX socket, directly.
    Unix,
}

/// How apply-networking works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkingMode {
    /// Render network_data.json into a script for the guest's OS and run it.
    Render,
    /// Run a script that exists in the guest with base64(network_data) as its argument.
    Script,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The shared secret nova-guest-api presents. Never printed.
#[derive(Clone)]
pub struct Secret {
    digest: [u8; 32],
}

impl Secret {
    /// Wraps a secret (already trimmed).
    pub fn new(secret: &str) -> Self {
        Self {
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// Compares in constant time. Both sides are hashed first, so the time does not depend
    /// on the length of either.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let presented: [u8; 32] = Sha256::digest(presented).into();
        self.digest.ct_eq(&presented).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
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
    /// `[agent] auth_token_file`.
    pub auth_token_file: PathBuf,
    /// The secret read from it.
    pub auth_token: Secret,
    /// `[agent] tls_cert_file` and `tls_key_file`.
    pub tls: Option<TlsFiles>,
    /// `[agent] transport`.
    pub transport: TransportKind,
    /// `[agent] socket_path_template`.
    pub socket_path_template: SocketTemplate,
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

pub use nova_guest_conf::{ConfigError, ConfigErrors};

/// Collects the values of one section with their lines.
struct Values<'a> {
    file: &'a Path,
    section: &'static str,
    entries: Vec<&'a ini::Entry>,
    errors: &'a mut Vec<ConfigError>,
}

impl Values<'_> {
    fn error(&mut self, entry: Option<&ini::Entry>, key: &str, message: String) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: entry.map(|e| e.line),
            section: Some(self.section.to_owned()),
            key: Some(key.to_owned()),
            message,
        });
    }

    fn get(&self, key: &str) -> Option<&ini::Entry> {
        // The last occurrence wins, as in oslo.config.
        self.entries.iter().rev().find(|e| e.key == key).copied()
    }

    /// Parses `key` with `parse`, or returns `default` when the key is absent or bad.
    fn parse<T>(
        &mut self,
        key: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> T {
        let Some(entry) = self.get(key).cloned() else {
            return default;
        };
        match parse(&entry.value) {
            Ok(v) => v,
            Err(message) => {
                self.error(
                    Some(&entry),
                    key,
                    format!("{message} (got {:?})", entry.value),
                );
                default
            }
        }
    }

    fn string(&mut self, key: &str) -> Option<String> {
        self.get(key)
            .map(|e| e.value.clone())
            .filter(|v| !v.is_empty())
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

/// Seconds, fractions allowed, within `min..=max`.
fn parse_seconds(v: &str, min: f64, max: f64) -> Result<Duration, String> {
    let secs: f64 = v
        .parse()
        .map_err(|_| "expected a number of seconds".to_owned())?;
    if !secs.is_finite() || secs < min || secs > max {
        return Err(format!("must be between {min} and {max} seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

fn parse_count(v: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = v
        .parse()
        .map_err(|_| "expected a whole number".to_owned())?;
    if n < min || n > max {
        return Err(format!("must be between {min} and {max}"));
    }
    Ok(n)
}

/// Resolves a path relative to the configuration file's directory.
fn relative_to(file: &Path, value: &str) -> PathBuf {
    let p = PathBuf::from(value);
    if p.is_absolute() {
        p
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
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
    let fail = |message: String| {
        ConfigErrors(vec![ConfigError {
            file: file.to_owned(),
            line: None,
            section: None,
            key: None,
            message,
        }])
    };
    let text = std::fs::read_to_string(file).map_err(|e| fail(format!("cannot read: {e}")))?;
    parse(file, &text)
}

/// Validates configuration text as if read from `file`.
///
/// # Errors
///
/// As for [`load`].
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let sections = match ini::parse(text) {
        Ok(s) => s,
        Err(syntax) => {
            return Err(ConfigErrors(
                syntax
                    .into_iter()
                    .map(|e| ConfigError {
                        file: file.to_owned(),
                        line: Some(e.line),
                        section: None,
                        key: None,
                        message: e.message,
                    })
                    .collect(),
            ));
        }
    };
    let mut default_entries = Vec::new();
    let mut agent_entries = Vec::new();
    for section in &sections {
        let (entries, known) = match section.name.as_str() {
            "DEFAULT" => (&mut default_entries, DEFAULT_KEYS),
            "agent" => (&mut agent_entries, AGENT_KEYS),
            name if API_SECTIONS.contains(&name) => continue,
            name => {
                errors.push(ConfigError {
                    file: file.to_owned(),
                    line: Some(section.line),
                    section: Some(name.to_owned()),
                    key: None,
                    message: format!(
                        "unknown section (nova-guest-agent reads [DEFAULT] and [agent]; \
                         nova-guest-api reads [{}])",
                        API_SECTIONS.join("], [")
                    ),
                });
                continue;
            }
        };
        for entry in &section.entries {
            if known.contains(&entry.key.as_str()) {
                entries.push(entry);
            } else {
                errors.push(ConfigError {
                    file: file.to_owned(),
                    line: Some(entry.line),
                    section: Some(section.name.clone()),
                    key: Some(entry.key.clone()),
                    message: format!("unknown key (known keys: {})", known.join(", ")),
                });
            }
        }
    }

    let mut d = Values {
        file,
        section: "DEFAULT",
        entries: default_entries,
        errors: &mut errors,
    };
    let host = d.string("host").unwrap_or_else(system_hostname);
    let debug = d.parse("debug", false, parse_bool);

    let mut a = Values {
        file,
        section: "agent",
        entries: agent_entries,
        errors: &mut errors,
    };
    let listen_address = a.parse("listen_address", IpAddr::from([0, 0, 0, 0]), |v| {
        v.parse()
            .map_err(|_| "expected an IP address such as 0.0.0.0, 127.0.0.1 or ::".into())
    });
    let listen_port = a.parse("listen_port", DEFAULT_PORT, |v| {
        v.parse()
            .map_err(|_| "expected a port number 0-65535 (0: any free port)".into())
    });
    let (auth_token_file, auth_token) = match a.get("auth_token_file").cloned() {
        None => {
            a.error(
                None,
                "auth_token_file",
                "is required: the file holding the secret nova-guest-api presents".into(),
            );
            (PathBuf::new(), Secret::new(""))
        }
        Some(entry) => {
            let path = relative_to(file, &entry.value);
            match std::fs::read_to_string(&path) {
                Ok(s) if s.trim().is_empty() => {
                    a.error(
                        Some(&entry),
                        "auth_token_file",
                        format!("{} is empty", path.display()),
                    );
                    (path, Secret::new(""))
                }
                Ok(s) => {
                    let secret = Secret::new(s.trim());
                    (path, secret)
                }
                Err(e) => {
                    a.error(
                        Some(&entry),
                        "auth_token_file",
                        format!("cannot read {}: {e}", path.display()),
                    );
                    (path, Secret::new(""))
                }
            }
        }
    };
    let tls = match (
        a.get("tls_cert_file").cloned(),
        a.get("tls_key_file").cloned(),
    ) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            let files = TlsFiles {
                cert: relative_to(file, &c.value),
                key: relative_to(file, &k.value),
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
                "tls_cert_file and tls_key_file must be set together".into(),
            );
            None
        }
    };
    let transport = a.parse("transport", TransportKind::Unix, |v| match v {
        "unix" => Ok(TransportKind::Unix),
        "libvirt" => Err("the libvirt transport is not implemented yet; use unix".into()),
        _ => Err("expected unix (libvirt comes later)".into()),
    });
    let socket_path_template = a.parse(
        "socket_path_template",
        SocketTemplate::parse(DEFAULT_SOCKET_TEMPLATE).ok(),
        |v| SocketTemplate::parse(v).map(Some),
    );
    let enabled_actions = a.parse("enabled_actions", Action::default_enabled(), |v| {
        let mut set = BTreeSet::new();
        for name in v
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let action = Action::from_name(name).ok_or_else(|| {
                format!(
                    "unknown action {name:?} (known: {})",
                    Action::ALL.map(Action::name).join(", ")
                )
            })?;
            set.insert(action);
        }
        Ok(set)
    });
    let apply_networking_mode = a.parse(
        "apply_networking_mode",
        NetworkingMode::Render,
        |v| match v {
            "render" => Ok(NetworkingMode::Render),
            "script" => Ok(NetworkingMode::Script),
            _ => Err("expected render or script".into()),
        },
    );
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
        parse_seconds(v, 0.1, 3600.0)
    });
    let list_timeout = a
        .parse("list_timeout", Duration::from_secs(2), |v| {
            parse_seconds(v, 0.1, 3600.0)
        })
        .min(command_timeout);
    let max_concurrent_operations = a.parse("max_concurrent_operations", 64, |v| {
        parse_count(v, 1, 100_000)
    });
    let max_file_size = a.parse("max_file_size", 64 * 1024 * 1024, |v| {
        parse_count(v, 1, 1024 * 1024 * 1024)
    });
    let idle_connection_timeout =
        a.parse("idle_connection_timeout", Duration::from_secs(300), |v| {
            parse_seconds(v, 1.0, 86_400.0)
        });
    let shutdown_timeout = a.parse(
        "shutdown_timeout",
        command_timeout + Duration::from_secs(5),
        |v| parse_seconds(v, 0.0, 3600.0),
    );
    let log_format = a.parse("log_format", LogFormat::Text, |v| match v {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text or json".into()),
    });

    let Some(socket_path_template) = socket_path_template else {
        return Err(ConfigErrors(errors));
    };
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(Config {
        file: file.to_owned(),
        host,
        debug,
        listen_address,
        listen_port,
        auth_token_file,
        auth_token,
        tls,
        transport,
        socket_path_template,
        enabled_actions,
        apply_networking_mode,
        apply_networking_script,
        apply_networking_script_windows,
        command_timeout,
        list_timeout,
        max_concurrent_operations,
        max_file_size,
        idle_connection_timeout,
        shutdown_timeout,
        log_format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(text: &str) -> (tempfile::TempDir, Result<Config, ConfigErrors>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "  s3cret\n").unwrap();
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
        assert!(c.auth_token.matches(b"s3cret"));
        assert!(!c.auth_token.matches(b"s3cret "));
        assert!(!c.enabled_actions.contains(&Action::Exec));
        assert!(c.enabled_actions.contains(&Action::Ping));
        assert_eq!(c.command_timeout, Duration::from_secs(30));
        assert_eq!(c.apply_networking_mode, NetworkingMode::Render);
        assert_eq!(format!("{:?}", c.auth_token), "Secret(<redacted>)");
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn errors_name_file_line_section_and_key() {
        let (_d, c) = with_token(
            "[agent]\nauth_token_file = token\nlisten_prot = 1\ncommand_timeout = soon\n\
             enabled_actions = ping, reboot\ntransport = libvirt\n[agnet]\n",
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
            e.contains(":6: [agent] transport: the libvirt transport"),
            "{e}"
        );
        assert!(e.contains(":7: [agnet]: unknown section"), "{e}");
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
        std::fs::write(d.path().join("empty"), " \n").unwrap();
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
        for key in DEFAULT_KEYS.iter().chain(AGENT_KEYS) {
            assert!(
                sample.contains(&format!("\n#{key} = ")) || sample.contains(&format!("\n{key} = ")),
                "etc/nova-guest.conf does not document {key}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent-token"), "secret\n").unwrap();
        let text = sample.replace("/etc/nova-guest/agent-token", "agent-token");
        let c = parse(&dir.path().join("nova-guest.conf"), &text).unwrap();
        assert_eq!(c.listen_port, DEFAULT_PORT);
        // Uncommenting every agent option keeps it valid.
        let all: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest)
                    if AGENT_KEYS
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
