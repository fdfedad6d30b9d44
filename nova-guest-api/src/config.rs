//! The configuration: `/etc/nova-guest/nova-guest.conf`, the INI file shared with
//! nova-guest-agent.
//!
//! The API reads `[api]`, `[keystone_authtoken]`, `[instances]` and `[policy]`, and `debug` from
//! `[DEFAULT]`. The agent's keys (`[DEFAULT]`, `[agent]`) are skipped without a look. Any other
//! section, unknown key or bad value is an error naming the file, line, section and key, and
//! the daemon refuses to start (a reload keeps the previous configuration).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use uuid::Uuid;

use crate::ini;
use crate::policy::{Action, Policy};

/// The default configuration file.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/nova-guest/nova-guest.conf";
/// The default `[api] listen_port`.
pub const DEFAULT_PORT: u16 = 4224;
/// The default `[api] max_request_body_bytes`: 96 MiB, room for a 64 MiB file in base64.
pub const DEFAULT_MAX_BODY: u64 = 96 * 1024 * 1024;

const AGENT_SECTIONS: &[&str] = &["agent"];
const API_KEYS: &[&str] = &[
    "listen_address",
    "listen_port",
    "auth_strategy",
    "agent_url_template",
    "agent_auth_token_file",
    "agent_ca_file",
    "max_request_body_bytes",
    "max_concurrent_requests",
    "outbound_timeout",
    "agent_timeout",
    "shutdown_timeout",
    "endpoint_interface",
    "region_name",
    "log_format",
    "static_network_data_template",
];
const KEYSTONE_KEYS: &[&str] = &[
    "auth_url",
    "www_authenticate_uri",
    "username",
    "password",
    "project_name",
    "user_domain_name",
    "project_domain_name",
    "token_cache_time",
    "cafile",
    "auth_type",
];

/// How callers are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStrategy {
    /// Keystone tokens, instances looked up in Nova.
    Keystone,
    /// No authentication: the project in the URL is trusted and instances come from the
    /// static `[instances]` map. For a demo or a single machine only.
    Noauth,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A secret string (password, shared secret). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `[keystone_authtoken]`: how to reach Keystone and who we are there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoneConfig {
    /// `auth_url`, normalised to end in `/v3`.
    pub auth_url: String,
    /// `www_authenticate_uri`: what 401s point clients at (default: `auth_url`).
    pub www_authenticate_uri: String,
    /// `username` of the service user.
    pub username: String,
    /// `password` of the service user.
    pub password: Secret,
    /// `project_name` the service token is scoped to.
    pub project_name: String,
    /// `user_domain_name`.
    pub user_domain_name: String,
    /// `project_domain_name`.
    pub project_domain_name: String,
    /// `token_cache_time`: how long a validation is reused (0 or negative: not cached).
    pub token_cache_time: Duration,
    /// `cafile`: PEM bundle to verify Keystone, Nova and Neutron (default: system roots).
    pub cafile: Option<PathBuf>,
}

/// One `[instances]` line: `<instance uuid> = <host> <project id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticInstance {
    /// The compute host whose agent serves it.
    pub host: String,
    /// The project that owns it.
    pub project_id: String,
}

/// The API's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// `[DEFAULT] debug`.
    pub debug: bool,
    /// `[api] listen_address`.
    pub listen_address: IpAddr,
    /// `[api] listen_port` (0: any free port; the bound address is logged).
    pub listen_port: u16,
    /// `[api] auth_strategy`.
    pub auth_strategy: AuthStrategy,
    /// `[api] agent_url_template`, e.g. `https://{host}:4225`.
    pub agent_url_template: String,
    /// `[api] agent_auth_token_file`.
    pub agent_auth_token_file: PathBuf,
    /// The shared secret read from it (surrounding whitespace trimmed).
    pub agent_auth_token: Secret,
    /// `[api] agent_ca_file`: PEM bundle to verify the agents (default: system roots).
    pub agent_ca_file: Option<PathBuf>,
    /// `[api] max_request_body_bytes`.
    pub max_request_body_bytes: u64,
    /// `[api] max_concurrent_requests`: requests handled at once; more wait briefly, then 503.
    pub max_concurrent_requests: usize,
    /// `[api] outbound_timeout`: bound on each call to Keystone, Nova and Neutron.
    pub outbound_timeout: Duration,
    /// `[api] agent_timeout`: bound on each call to nova-guest-agent.
    pub agent_timeout: Duration,
    /// `[api] shutdown_timeout`: how long SIGTERM waits for in-flight requests.
    pub shutdown_timeout: Duration,
    /// `[api] endpoint_interface`: catalog interfaces tried in order for Nova and Neutron.
    pub endpoint_interface: Vec<String>,
    /// `[api] region_name`: catalog region (default: any).
    pub region_name: Option<String>,
    /// `[api] log_format`.
    pub log_format: LogFormat,
    /// `[api] static_network_data_template`: with noauth, a network_data.json file per
    /// instance (`{uuid}` in the path) sent with apply-networking.
    pub static_network_data_template: Option<String>,
    /// `[keystone_authtoken]` (required with `auth_strategy = keystone`).
    pub keystone: Option<KeystoneConfig>,
    /// `[instances]`: the static map used with `auth_strategy = noauth`.
    pub instances: BTreeMap<Uuid, StaticInstance>,
    /// `[policy]`, over the defaults.
    pub policy: Policy,
}

pub use nova_guest_conf::{ConfigError, ConfigErrors};

struct Reader<'a> {
    file: &'a Path,
    section: &'static str,
    entries: Vec<&'a ini::Entry>,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    fn error(&mut self, entry: Option<&ini::Entry>, key: &str, message: String) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            line: entry.map(|e| e.line),
            section: Some(self.section.to_owned()),
            key: Some(key.to_owned()),
            message,
        });
    }

    /// The last occurrence wins, as in oslo.config.
    fn get(&self, key: &str) -> Option<&ini::Entry> {
        self.entries.iter().rev().find(|e| e.key == key).copied()
    }

    fn parse<T>(&mut self, key: &str, default: T, f: impl Fn(&str) -> Result<T, String>) -> T {
        let Some(entry) = self.get(key).cloned() else {
            return default;
        };
        match f(&entry.value) {
            Ok(v) => v,
            Err(message) => {
                self.error(Some(&entry), key, message);
                default
            }
        }
    }

    fn string(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|e| e.value.clone())
            .filter(|v| !v.is_empty())
    }

    fn required(&mut self, key: &str, why: &str) -> String {
        match self.string(key) {
            Some(v) => v,
            None => {
                let entry = self.get(key).cloned();
                self.error(entry.as_ref(), key, format!("is required {why}"));
                String::new()
            }
        }
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("{v:?} is not a boolean (true/false)")),
    }
}

fn parse_seconds(v: &str, min: f64, max: f64) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= min && s <= max => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{v:?} is not a number of seconds in {min}..={max}")),
    }
}

fn parse_count(v: &str, min: u64, max: u64) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("{v:?} is not a whole number in {min}..={max}")),
    }
}

fn relative_to(file: &Path, value: &str) -> PathBuf {
    let p = PathBuf::from(value);
    if p.is_absolute() {
        p
    } else {
        file.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// `auth_url` with or without `/v3` (and with or without a trailing slash) → `…/v3`.
pub fn normalise_auth_url(url: &str) -> String {
    let base = url.trim_end_matches('/');
    let base = base.strip_suffix("/v3").unwrap_or(base);
    format!("{base}/v3")
}

/// Reads and checks a configuration file.
///
/// # Errors
///
/// The file cannot be read, or any problem [`parse`] reports.
pub fn load(file: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.to_owned(),
            line: None,
            section: None,
            key: None,
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse(file, &text)
}

/// Checks configuration text; `file` names it in errors and anchors relative paths. The
/// agent token file is read here.
///
/// # Errors
///
/// Every syntax error, unknown section or key, bad or missing value.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let sections = ini::parse(text).map_err(|errors| {
        ConfigErrors(
            errors
                .into_iter()
                .map(|e| ConfigError {
                    file: file.to_owned(),
                    line: Some(e.line),
                    section: None,
                    key: None,
                    message: e.message,
                })
                .collect(),
        )
    })?;
    let mut errors = Vec::new();
    let mut by_name: BTreeMap<&'static str, Vec<&ini::Entry>> = BTreeMap::new();
    for s in &sections {
        let name: &'static str = match s.name.as_str() {
            "DEFAULT" => "DEFAULT",
            "api" => "api",
            "keystone_authtoken" => "keystone_authtoken",
            "instances" => "instances",
            "policy" => "policy",
            n if AGENT_SECTIONS.contains(&n) => continue,
            n => {
                errors.push(ConfigError {
                    file: file.to_owned(),
                    line: Some(s.line),
                    section: Some(n.to_owned()),
                    key: None,
                    message: "unknown section (nova-guest reads [DEFAULT], [api], \
                              [keystone_authtoken], [instances], [policy] and [agent])"
                        .into(),
                });
                continue;
            }
        };
        by_name.entry(name).or_default().extend(s.entries.iter());
    }
    let mut take = |name: &'static str| Reader {
        file,
        section: name,
        entries: by_name.remove(name).unwrap_or_default(),
        errors: Vec::new(),
    };
    // DEFAULT: only `debug` is ours; the agent owns the rest (host, ...).
    let mut default = take("DEFAULT");
    let debug = default.parse("debug", false, parse_bool);
    errors.append(&mut default.errors);

    let mut api = take("api");
    let unknown: Vec<ini::Entry> = api
        .entries
        .iter()
        .filter(|e| !API_KEYS.contains(&e.key.as_str()))
        .map(|e| (*e).clone())
        .collect();
    for e in &unknown {
        api.error(Some(e), &e.key, "unknown key".into());
    }
    let listen_address = api.parse("listen_address", IpAddr::from([0, 0, 0, 0]), |v| {
        v.parse().map_err(|_| format!("{v:?} is not an IP address"))
    });
    let listen_port = api.parse("listen_port", DEFAULT_PORT, |v| {
        v.parse()
            .map_err(|_| format!("{v:?} is not a port number (0..=65535)"))
    });
    let auth_strategy = api.parse("auth_strategy", AuthStrategy::Keystone, |v| match v {
        "keystone" => Ok(AuthStrategy::Keystone),
        "noauth" => Ok(AuthStrategy::Noauth),
        _ => Err(format!("{v:?} is not one of keystone, noauth")),
    });
    let agent_url_template = api.parse(
        "agent_url_template",
        "https://{host}:4225".to_owned(),
        |v| {
            if !(v.starts_with("http://") || v.starts_with("https://")) || !v.contains("{host}") {
                return Err(format!(
                    "{v:?} must be an http:// or https:// URL containing {{host}}"
                ));
            }
            Ok(v.trim_end_matches('/').to_owned())
        },
    );
    let token_file = api.required(
        "agent_auth_token_file",
        "(the file holding the secret nova-guest-agent expects)",
    );
    let agent_auth_token_file = relative_to(file, &token_file);
    let mut agent_auth_token = Secret::new("");
    if !token_file.is_empty() {
        match std::fs::read_to_string(&agent_auth_token_file) {
            Ok(s) if !s.trim().is_empty() => agent_auth_token = Secret::new(s.trim()),
            Ok(_) => {
                let e = api.get("agent_auth_token_file").cloned();
                api.error(
                    e.as_ref(),
                    "agent_auth_token_file",
                    "the file is empty".into(),
                );
            }
            Err(err) => {
                let e = api.get("agent_auth_token_file").cloned();
                api.error(
                    e.as_ref(),
                    "agent_auth_token_file",
                    format!("cannot read {}: {err}", agent_auth_token_file.display()),
                );
            }
        }
    }
    let agent_ca_file = api.string("agent_ca_file").map(|v| relative_to(file, &v));
    let max_request_body_bytes = api.parse("max_request_body_bytes", DEFAULT_MAX_BODY, |v| {
        parse_count(v, 1024, 1 << 40)
    });
    let max_concurrent_requests = api.parse("max_concurrent_requests", 512, |v| {
        parse_count(v, 1, 1 << 20).map(|n| n as usize)
    });
    let outbound_timeout = api.parse("outbound_timeout", Duration::from_secs(10), |v| {
        parse_seconds(v, 0.01, 3600.0)
    });
    let agent_timeout = api.parse("agent_timeout", Duration::from_secs(65), |v| {
        parse_seconds(v, 0.01, 3600.0)
    });
    let shutdown_timeout = api.parse("shutdown_timeout", Duration::from_secs(30), |v| {
        parse_seconds(v, 0.0, 3600.0)
    });
    let endpoint_interface = api.parse(
        "endpoint_interface",
        vec!["internal".to_owned(), "public".to_owned()],
        |v| {
            let list: Vec<String> = v
                .split([',', '\n'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if list.is_empty()
                || list
                    .iter()
                    .any(|i| !matches!(i.as_str(), "public" | "internal" | "admin"))
            {
                return Err(format!("{v:?} is not a list of public, internal, admin"));
            }
            Ok(list)
        },
    );
    let region_name = api.string("region_name");
    let log_format = api.parse("log_format", LogFormat::Text, |v| match v {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{v:?} is not one of text, json")),
    });
    let static_network_data_template = api
        .string("static_network_data_template")
        .map(|v| relative_to(file, &v).to_string_lossy().into_owned());
    errors.append(&mut api.errors);

    let mut ks = take("keystone_authtoken");
    let unknown: Vec<ini::Entry> = ks
        .entries
        .iter()
        .filter(|e| !KEYSTONE_KEYS.contains(&e.key.as_str()))
        .map(|e| (*e).clone())
        .collect();
    for e in &unknown {
        ks.error(Some(e), &e.key, "unknown key".into());
    }
    let keystone = if auth_strategy == AuthStrategy::Keystone {
        let why = "with auth_strategy = keystone";
        let auth_url = ks.required("auth_url", why);
        if !(auth_url.is_empty()
            || auth_url.starts_with("http://")
            || auth_url.starts_with("https://"))
        {
            let e = ks.get("auth_url").cloned();
            ks.error(
                e.as_ref(),
                "auth_url",
                format!("{auth_url:?} is not an http(s) URL"),
            );
        }
        let auth_url = normalise_auth_url(&auth_url);
        let www_authenticate_uri = ks
            .string("www_authenticate_uri")
            .unwrap_or_else(|| auth_url.clone());
        let username = ks.required("username", why);
        let password = Secret::new(ks.required("password", why));
        let project_name = ks.required("project_name", why);
        let user_domain_name = ks.string("user_domain_name").unwrap_or("Default".into());
        let project_domain_name = ks.string("project_domain_name").unwrap_or("Default".into());
        let token_cache_time = ks.parse("token_cache_time", Duration::from_secs(300), |v| match v
            .parse::<i64>()
        {
            Ok(n) if n <= 0 => Ok(Duration::ZERO),
            Ok(n) if n <= 86_400 => Ok(Duration::from_secs(n as u64)),
            _ => Err(format!("{v:?} is not a number of seconds (<= 0 disables)")),
        });
        let cafile = ks.string("cafile").map(|v| relative_to(file, &v));
        if let Some(e) = ks.get("auth_type").cloned()
            && e.value != "password"
        {
            ks.error(Some(&e), "auth_type", "only `password` is supported".into());
        }
        Some(KeystoneConfig {
            auth_url,
            www_authenticate_uri,
            username,
            password,
            project_name,
            user_domain_name,
            project_domain_name,
            token_cache_time,
            cafile,
        })
    } else {
        None
    };
    errors.append(&mut ks.errors);

    let mut inst = take("instances");
    let mut instances = BTreeMap::new();
    let entries: Vec<ini::Entry> = inst.entries.iter().map(|e| (*e).clone()).collect();
    for e in &entries {
        let Ok(id) = Uuid::parse_str(&e.key) else {
            inst.error(Some(e), &e.key, "is not an instance uuid".into());
            continue;
        };
        let words: Vec<&str> = e.value.split_whitespace().collect();
        let [host, project] = words[..] else {
            inst.error(
                Some(e),
                &e.key,
                format!("{:?} is not `<host> <project id>`", e.value),
            );
            continue;
        };
        instances.insert(
            id,
            StaticInstance {
                host: host.to_owned(),
                project_id: project.to_owned(),
            },
        );
    }
    errors.append(&mut inst.errors);

    let mut pol = take("policy");
    let mut policy = Policy::default();
    let entries: Vec<ini::Entry> = pol.entries.iter().map(|e| (*e).clone()).collect();
    for e in &entries {
        let Some(action) = Action::from_name(&e.key) else {
            pol.error(
                Some(e),
                &e.key,
                format!("unknown action (one of {})", Action::names().join(", ")),
            );
            continue;
        };
        let roles: Vec<String> = e
            .value
            .split([',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        policy.set(action, roles);
    }
    errors.append(&mut pol.errors);

    if errors.is_empty() {
        Ok(Config {
            file: file.to_owned(),
            debug,
            listen_address,
            listen_port,
            auth_strategy,
            agent_url_template,
            agent_auth_token_file,
            agent_auth_token,
            agent_ca_file,
            max_request_body_bytes,
            max_concurrent_requests,
            outbound_timeout,
            agent_timeout,
            shutdown_timeout,
            endpoint_interface,
            region_name,
            log_format,
            static_network_data_template,
            keystone,
            instances,
            policy,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}
