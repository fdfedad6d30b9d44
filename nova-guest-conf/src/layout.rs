//! The layout of `/etc/nova-guest/nova-guest.conf`: which daemon reads which section, and the
//! keys each section may hold. Both daemons read the same file; each reads its own sections
//! and skips the other's without a look, and both call anything else an error.

/// Who reads a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    /// nova-guest-agent, on each compute host.
    Agent,
    /// nova-guest-api.
    Api,
}

impl Daemon {
    /// The program name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Agent => "nova-guest-agent",
            Self::Api => "nova-guest-api",
        }
    }
}

/// One section of the file.
#[derive(Debug, Clone, Copy)]
pub struct SectionLayout {
    /// The name between the brackets.
    pub name: &'static str,
    /// The daemons that read it.
    pub readers: &'static [Daemon],
    /// Its keys; `None` when the keys are data (instance ids, action names) checked by the
    /// daemon that reads them.
    pub keys: Option<&'static [&'static str]>,
}

impl SectionLayout {
    /// Whether `daemon` reads this section.
    pub fn read_by(&self, daemon: Daemon) -> bool {
        self.readers.contains(&daemon)
    }
}

const BOTH: &[Daemon] = &[Daemon::Agent, Daemon::Api];
const AGENT: &[Daemon] = &[Daemon::Agent];
const API: &[Daemon] = &[Daemon::Api];

/// Every section of the file, in the order the sample configuration documents them.
pub const SECTIONS: &[SectionLayout] = &[
    SectionLayout {
        name: "DEFAULT",
        readers: BOTH,
        keys: Some(&["host", "debug"]),
    },
    SectionLayout {
        name: "agent",
        readers: AGENT,
        keys: Some(&[
            "listen_address",
            "listen_port",
            "auth_token_file",
            "tls_cert_file",
            "tls_key_file",
            "transport",
            "libvirt_socket",
            "socket_path_template",
            "qmp_socket_path_template",
            "enabled_actions",
            "apply_networking_mode",
            "apply_networking_script",
            "apply_networking_script_windows",
            "command_timeout",
            "list_timeout",
            "max_concurrent_operations",
            "max_queued_per_guest",
            "max_file_size",
            "idle_connection_timeout",
            "shutdown_timeout",
            "header_timeout",
            "max_connections",
            "log_format",
        ]),
    },
    SectionLayout {
        name: "api",
        readers: API,
        keys: Some(&[
            "listen_address",
            "listen_port",
            "auth_strategy",
            "admin_project_ids",
            "public_endpoint",
            "metrics_address",
            "max_body_without_inject",
            "body_timeout",
            "agent_url_template",
            "allow_insecure_agent_http",
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
            "header_timeout",
            "max_connections",
            "fleet_concurrency",
            "fleet_instance_timeout",
        ]),
    },
    SectionLayout {
        name: "notifications",
        readers: API,
        keys: Some(&[
            "transport_url",
            "neutron_exchange",
            "topic",
            "queue",
            "prefetch",
            "results_exchange",
            "auto_apply_networking",
            "auto_apply_tag",
            "debounce",
            "retry_for",
            "max_concurrent_applies",
        ]),
    },
    SectionLayout {
        name: "keystone_authtoken",
        readers: API,
        keys: Some(&[
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
        ]),
    },
    SectionLayout {
        name: "instances",
        readers: API,
        keys: None,
    },
    SectionLayout {
        name: "policy",
        readers: API,
        keys: None,
    },
];

/// The section called `name`.
pub fn section(name: &str) -> Option<&'static SectionLayout> {
    SECTIONS.iter().find(|s| s.name == name)
}

/// The keys of section `name` (empty for data sections and unknown ones).
pub fn keys(name: &str) -> &'static [&'static str] {
    section(name).and_then(|s| s.keys).unwrap_or(&[])
}

/// `[a], [b] and [c]`: every section, for messages.
pub(crate) fn all_sections() -> String {
    let names: Vec<String> = SECTIONS.iter().map(|s| format!("[{}]", s.name)).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}
