//! The configuration: `/etc/nova-guest/nova-guest.conf`, the INI file shared with
//! nova-guest-agent.
//!
//! The API reads `[api]`, `[keystone_authtoken]`, `[instances]` and `[policy]`, and `debug` from
//! `[DEFAULT]`. The agent's keys (`[DEFAULT]`, `[agent]`) are skipped without a look. Any other
//! section, unknown key or bad value is an error naming the file, line, section and key, and
//! the daemon refuses to start (a reload keeps the previous configuration).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use nova_guest_conf::{ConfigError, ConfigErrors, LogFormat, Secret};

pub use crate::notifications::url::TransportUrl;
use nova_guest_conf::{Daemon, Document, values};
use uuid::Uuid;

use crate::policy::{Policy, Target};

/// The default configuration file.
pub use nova_guest_daemon::process::DEFAULT_CONFIG_FILE;
/// The default `[api] listen_port`.
pub const DEFAULT_PORT: u16 = 4224;
/// The default `[api] max_request_body_bytes`: 96 MiB, room for a 64 MiB file in base64.
pub const DEFAULT_MAX_BODY: u64 = 96 * 1024 * 1024;

/// How callers are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStrategy {
    /// Keystone tokens, instances looked up in Nova.
    Keystone,
    /// No authentication: the project in the URL is trusted and instances come from the
    /// static `[instances]` map. For a demo or a single machine only.
    Noauth,
}

/// `[notifications] auto_apply_networking`: which instances get apply-networking when Neutron
/// says their networking changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoApply {
    /// None (the default): notifications are consumed and acked, nothing is applied.
    Off,
    /// Instances whose Nova server carries the tag `auto_apply_tag`.
    Tagged,
    /// Every instance (with noauth: every instance of the `[instances]` map).
    All,
}

/// `[notifications]`: the consumer of Neutron's notifications (on when `transport_url` is set).
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationsConfig {
    /// `transport_url`: oslo.messaging's `rabbit://user:pass@host:port[,...]/vhost`.
    pub transport_url: TransportUrl,
    /// `neutron_exchange`: the topic exchange Neutron notifies on (its `control_exchange`).
    pub neutron_exchange: String,
    /// `topic`: the notification topic (`[oslo_messaging_notifications] topics` in
    /// neutron.conf): the queue is bound with `<topic>.info`, results go to
    /// `<topic>.info`/`<topic>.error`.
    pub topic: String,
    /// `queue`: our own durable queue, shared by every API replica.
    pub queue: String,
    /// `prefetch`: messages delivered and not yet acked, at most.
    pub prefetch: u16,
    /// `results_exchange`: where results are published.
    pub results_exchange: String,
    /// `auto_apply_networking`.
    pub auto_apply: AutoApply,
    /// `auto_apply_tag`: the Nova server tag of `tagged`.
    pub auto_apply_tag: String,
    /// `debounce`: events for one instance within this time become one apply.
    pub debounce: Duration,
    /// `retry_for`: how long a failing apply (agent unreachable, guest agent not connected)
    /// is retried before it is given up.
    pub retry_for: Duration,
    /// `max_concurrent_applies`: automatic applies running at once.
    pub max_concurrent_applies: usize,
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
    /// `[api] header_timeout`: how long a client may take to send its first bytes and each
    /// request head (and to finish a TLS handshake).
    pub header_timeout: Duration,
    /// `[api] max_connections`: client connections served at once; more are closed at once.
    pub max_connections: usize,
    /// `[api] auth_strategy`.
    pub auth_strategy: AuthStrategy,
    /// `[api] admin_project_ids`: projects whose admins act on every project's instances
    /// (besides system-scoped admins).
    pub admin_project_ids: Vec<String>,
    /// `[api] public_endpoint`: the API's public URL, for the links of the version documents
    /// (without it, they follow the request's `Host` header).
    pub public_endpoint: Option<String>,
    /// `[api] metrics_address`: where `/metrics` is served (off when unset; never on the
    /// public port).
    pub metrics_address: Option<std::net::SocketAddr>,
    /// `[api] max_body_without_inject`: largest request body from a caller the policy does not
    /// let inject files (and on the networking route).
    pub max_body_without_inject: u64,
    /// `[api] body_timeout`: how long reading a request body may take.
    pub body_timeout: Duration,
    /// `[api] agent_url_template`, e.g. `https://{host}:4225`.
    pub agent_url_template: String,
    /// `[api] allow_insecure_agent_http`: accept an `http://` agent URL.
    pub allow_insecure_agent_http: bool,
    /// `[api] agent_auth_token_file`.
    pub agent_auth_token_file: PathBuf,
    /// The master secret read from it: each agent's token is derived from it and the host
    /// name ([`nova_guest_conf::agent_token`]).
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
    /// `[api] fleet_concurrency`: instances a fleet apply works on at once.
    pub fleet_concurrency: usize,
    /// `[api] fleet_instance_timeout`: the deadline of each instance of a fleet apply.
    pub fleet_instance_timeout: Duration,
    /// `[keystone_authtoken]` (required with `auth_strategy = keystone`).
    pub keystone: Option<KeystoneConfig>,
    /// `[notifications]` (`None` unless `transport_url` is set).
    pub notifications: Option<NotificationsConfig>,
    /// `[instances]`: the static map used with `auth_strategy = noauth`.
    pub instances: BTreeMap<Uuid, StaticInstance>,
    /// `[policy]`, over the defaults.
    pub policy: Policy,
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
    read(Document::load(file, Daemon::Api)?)
}

/// Checks configuration text; `file` names it in errors and anchors relative paths. The
/// agent token file is read here.
///
/// # Errors
///
/// Every syntax error, unknown section or key, bad or missing value.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
    read(Document::parse(file, text, Daemon::Api)?)
}

fn http_url(v: &str) -> bool {
    v.starts_with("http://") || v.starts_with("https://")
}

impl nova_guest_daemon::process::Logging for Config {
    fn logging(&self) -> (LogFormat, bool) {
        (self.log_format, self.debug)
    }
}

fn read(mut doc: Document) -> Result<Config, ConfigErrors> {
    let file = doc.file().to_owned();
    // DEFAULT: only `debug` is ours; the agent owns the rest (host, ...).
    let debug = doc
        .section("DEFAULT")
        .parse("debug", false, values::boolean);

    let mut api = doc.section("api");
    let listen = api.listen(DEFAULT_PORT);
    let (header_timeout, max_connections) = api.connection_limits(1024);
    let auth_strategy = api.parse("auth_strategy", AuthStrategy::Keystone, |v| {
        values::choice(
            v,
            &[
                ("keystone", AuthStrategy::Keystone),
                ("noauth", AuthStrategy::Noauth),
            ],
        )
    });
    let agent_url_template = api.parse(
        "agent_url_template",
        "https://{host}:4225".to_owned(),
        |v| {
            if !http_url(v) || !v.contains("{host}") {
                return Err("must be an http:// or https:// URL containing {host}".into());
            }
            Ok(v.trim_end_matches('/').to_owned())
        },
    );
    let admin_project_ids = api
        .string("admin_project_ids")
        .map(|v| values::list(&v))
        .unwrap_or_default();
    let public_endpoint = api.parse("public_endpoint", None, |v| {
        if !http_url(v) || v.contains(char::is_whitespace) {
            return Err("expected the API's public http(s) URL".into());
        }
        Ok(Some(v.trim_end_matches('/').to_owned()))
    });
    let metrics_address = api.parse("metrics_address", None, |v| {
        v.parse::<std::net::SocketAddr>()
            .map(Some)
            .map_err(|_| "expected an address:port such as 127.0.0.1:9224".into())
    });
    let max_body_without_inject = api.parse("max_body_without_inject", 1024 * 1024, |v| {
        values::count(v, 1024, 1 << 30)
    });
    let body_timeout = api.parse("body_timeout", Duration::from_secs(60), |v| {
        values::seconds(v, 0.1, 3600.0)
    });
    let allow_insecure_agent_http = api.parse("allow_insecure_agent_http", false, values::boolean);
    if agent_url_template.starts_with("http://") && !allow_insecure_agent_http {
        let entry = api.get("agent_url_template").cloned();
        api.error(
            entry.as_ref(),
            "agent_url_template",
            "is plain http: the agents' tokens and the guests' passwords would cross the \
             network in clear; use https:// (agent TLS), or set allow_insecure_agent_http = \
             true for a management network you trust",
        );
    }
    let (agent_auth_token_file, agent_auth_token) = api.secret_file(
        "agent_auth_token_file",
        "the file holding the master secret each agent's token is derived from",
    );
    let agent_ca_file = api.path("agent_ca_file");
    let max_request_body_bytes = api.parse("max_request_body_bytes", DEFAULT_MAX_BODY, |v| {
        values::count(v, 1024, 1 << 40)
    });
    let max_concurrent_requests = api.parse("max_concurrent_requests", 512, |v| {
        values::count(v, 1, 1 << 20)
    });
    let outbound_timeout = api.parse("outbound_timeout", Duration::from_secs(10), |v| {
        values::seconds(v, 0.01, 3600.0)
    });
    let agent_timeout = api.parse("agent_timeout", Duration::from_secs(65), |v| {
        values::seconds(v, 0.01, 3600.0)
    });
    let shutdown_timeout = api.parse("shutdown_timeout", Duration::from_secs(30), |v| {
        values::seconds(v, 0.0, 3600.0)
    });
    let endpoint_interface = api.parse(
        "endpoint_interface",
        vec!["internal".to_owned(), "public".to_owned()],
        |v| {
            let list = values::list(v);
            if list.is_empty()
                || list
                    .iter()
                    .any(|i| !matches!(i.as_str(), "public" | "internal" | "admin"))
            {
                return Err("expected a list of public, internal, admin".into());
            }
            Ok(list)
        },
    );
    let region_name = api.string("region_name");
    let log_format = api.parse("log_format", LogFormat::Text, LogFormat::parse);
    let static_network_data_template = api
        .path("static_network_data_template")
        .map(|p| p.to_string_lossy().into_owned());
    let fleet_concurrency = api.parse("fleet_concurrency", 16, |v| values::count(v, 1, 1024));
    let fleet_instance_timeout =
        api.parse("fleet_instance_timeout", Duration::from_secs(90), |v| {
            values::seconds(v, 0.1, 3600.0)
        });

    let notifications = notifications(&mut doc.section("notifications"));

    let mut ks = doc.section("keystone_authtoken");
    let keystone = if auth_strategy == AuthStrategy::Keystone {
        let why = "with auth_strategy = keystone";
        let auth_url = ks.required("auth_url", why);
        if !(auth_url.is_empty() || http_url(&auth_url)) {
            let e = ks.get("auth_url").cloned();
            ks.error(
                e.as_ref(),
                "auth_url",
                format!("expected an http(s) URL (got {auth_url:?})"),
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
            _ => Err("expected a number of seconds up to 86400 (<= 0 disables)".into()),
        });
        let cafile = ks.path("cafile");
        if let Some(e) = ks.get("auth_type").cloned()
            && e.value != "password"
        {
            ks.error(Some(&e), "auth_type", "only `password` is supported");
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

    let mut inst = doc.section("instances");
    let mut instances = BTreeMap::new();
    for e in inst.entries() {
        let Ok(id) = Uuid::parse_str(&e.key) else {
            inst.error(Some(&e), &e.key, "is not an instance uuid");
            continue;
        };
        let words: Vec<&str> = e.value.split_whitespace().collect();
        let [host, project] = words[..] else {
            inst.error(
                Some(&e),
                &e.key,
                format!("expected `<host> <project id>` (got {:?})", e.value),
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

    let mut pol = doc.section("policy");
    let mut policy = Policy::default();
    for e in pol.entries() {
        let Some(target) = Target::from_name(&e.key) else {
            pol.error(
                Some(&e),
                &e.key,
                format!("unknown action (one of {})", Target::names().join(", ")),
            );
            continue;
        };
        policy.set(target, values::list(&e.value));
    }

    doc.finish()?;
    Ok(Config {
        file,
        debug,
        listen_address: listen.ip(),
        listen_port: listen.port(),
        header_timeout,
        max_connections,
        auth_strategy,
        admin_project_ids,
        public_endpoint,
        metrics_address,
        max_body_without_inject,
        body_timeout,
        agent_url_template,
        allow_insecure_agent_http,
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
        fleet_concurrency,
        fleet_instance_timeout,
        keystone,
        notifications,
        instances,
        policy,
    })
}

/// A name RabbitMQ accepts for an exchange, queue or routing key part (and that is safe in
/// logs): 1-255 bytes of letters, digits, `-_.:`.
fn amqp_name(v: &str) -> Result<String, String> {
    if v.is_empty()
        || v.len() > 255
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err("expected 1-255 letters, digits, or - _ . :".into());
    }
    Ok(v.to_owned())
}

fn notifications(sec: &mut nova_guest_conf::Section<'_>) -> Option<NotificationsConfig> {
    // Not `parse`: its errors repeat the value, and this one holds a password.
    let transport_url = match sec.get("transport_url").cloned() {
        Some(e) if !e.value.is_empty() => match TransportUrl::parse(&e.value) {
            Ok(u) => Some(u),
            Err(message) => {
                sec.error(Some(&e), "transport_url", message);
                None
            }
        },
        _ => None,
    };
    let neutron_exchange = sec.parse("neutron_exchange", "neutron".to_owned(), amqp_name);
    let topic = sec.parse("topic", "notifications".to_owned(), amqp_name);
    let queue = sec.parse(
        "queue",
        "nova-guest-api.notifications".to_owned(),
        amqp_name,
    );
    let prefetch = sec.parse("prefetch", 256, |v| values::count(v, 1, 65_535));
    let results_exchange = sec.parse("results_exchange", "nova-guest".to_owned(), amqp_name);
    let auto_apply = sec.parse("auto_apply_networking", AutoApply::Off, |v| {
        values::choice(
            v,
            &[
                ("off", AutoApply::Off),
                ("tagged", AutoApply::Tagged),
                ("all", AutoApply::All),
            ],
        )
    });
    let auto_apply_tag = sec.parse(
        "auto_apply_tag",
        "nova-guest-auto-networking".to_owned(),
        |v| {
            // Nova: a tag is 1-60 characters, no '/' or ','.
            if v.is_empty() || v.chars().count() > 60 || v.contains(['/', ',']) {
                return Err("expected a Nova server tag (1-60 characters, no / or ,)".into());
            }
            Ok(v.to_owned())
        },
    );
    let debounce = sec.parse("debounce", Duration::from_secs(2), |v| {
        values::seconds(v, 0.0, 3600.0)
    });
    let retry_for = sec.parse("retry_for", Duration::from_secs(600), |v| {
        values::seconds(v, 0.0, 86_400.0)
    });
    let max_concurrent_applies =
        sec.parse("max_concurrent_applies", 16, |v| values::count(v, 1, 4096));
    let Some(transport_url) = transport_url else {
        if auto_apply != AutoApply::Off {
            let e = sec.get("auto_apply_networking").cloned();
            sec.error(
                e.as_ref(),
                "auto_apply_networking",
                "needs transport_url (the notifications it acts on come from RabbitMQ)",
            );
        }
        return None;
    };
    Some(NotificationsConfig {
        transport_url,
        neutron_exchange,
        topic,
        queue,
        prefetch,
        results_exchange,
        auto_apply,
        auto_apply_tag,
        debounce,
        retry_for,
        max_concurrent_applies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_config_documents_every_key_and_parses() {
        let sample = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../etc/nova-guest.conf"),
        )
        .unwrap();
        for section in ["api", "keystone_authtoken", "notifications"] {
            for key in nova_guest_conf::layout::keys(section) {
                assert!(
                    sample.contains(&format!("\n#{key} = "))
                        || sample.contains(&format!("\n{key} = ")),
                    "etc/nova-guest.conf does not document [{section}] {key}"
                );
            }
        }
        // The sample as shipped, with a master secret where it points, is a valid API
        // configuration once Keystone's required keys are uncommented.
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("api-master-secret");
        std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = sample
            .replace(
                "#agent_auth_token_file = /etc/nova-guest/api-master-secret",
                "agent_auth_token_file = api-master-secret",
            )
            .replace("#auth_url = ", "auth_url = ")
            .replace("#username = ", "username = ")
            .replace("#password = ", "password = ")
            .replace("#project_name = ", "project_name = ");
        let c = parse(&dir.path().join("nova-guest.conf"), &text).unwrap();
        assert_eq!(c.listen_port, DEFAULT_PORT);
        assert_eq!(c.max_body_without_inject, 1024 * 1024);
        assert!(c.keystone.is_some());
    }
}
