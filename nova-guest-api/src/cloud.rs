//! Nova and Neutron, read-only, with the service token: the instance (owner, status, host)
//! and its network configuration. Endpoints come from the service token's catalog.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::catalog;
use crate::error::ApiError;
use crate::keystone::Keystone;
use crate::metrics::Metrics;
use crate::network_data::{self, Network, Port, Subnet};
use crate::outbound::Outbound;

/// What nova-guest-api needs to know about an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The owning project.
    pub project_id: String,
    /// Nova's status (`ACTIVE`, `SHUTOFF`, ...).
    pub status: String,
    /// The compute host (`OS-EXT-SRV-ATTR:host`).
    pub host: Option<String>,
    /// The libvirt domain name (`OS-EXT-SRV-ATTR:instance_name`).
    pub instance_name: Option<String>,
    /// The server's tags (Nova shows them from microversion 2.26 on).
    pub tags: Vec<String>,
}

/// Which compute ports to list.
#[derive(Debug, Clone, Copy)]
pub enum PortsOn<'a> {
    /// On this network.
    Network(&'a str),
    /// With a fixed IP on this subnet.
    Subnet(&'a str),
}

/// Ids go into URL paths and queries: only the characters Neutron ids are made of.
pub(crate) fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[derive(Deserialize)]
struct ServerBody {
    server: Server,
}

#[derive(Deserialize)]
struct Server {
    tenant_id: String,
    status: String,
    #[serde(rename = "OS-EXT-SRV-ATTR:host", default)]
    host: Option<String>,
    #[serde(rename = "OS-EXT-SRV-ATTR:instance_name", default)]
    instance_name: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// Nova and Neutron for one configuration.
#[derive(Debug)]
pub struct Cloud {
    keystone: Arc<Keystone>,
    http: Outbound,
    timeout: Duration,
    interfaces: Vec<String>,
    region: Option<String>,
    metrics: Arc<Metrics>,
}

#[derive(Clone, Copy)]
enum Service {
    Compute,
    Network,
}

impl Service {
    fn kind(self) -> &'static str {
        match self {
            Self::Compute => "compute",
            Self::Network => "network",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::Compute => "Nova",
            Self::Network => "Neutron",
        }
    }
}

fn unavailable(service: Service, e: impl std::fmt::Display) -> ApiError {
    tracing::error!(service = service.label(), error = %e, "upstream call failed");
    ApiError::Unavailable(format!(
        "The {} service is temporarily unavailable.",
        service.label()
    ))
}

impl Cloud {
    /// Nova and Neutron reached with `keystone`'s service token.
    pub fn new(
        keystone: Arc<Keystone>,
        http: Outbound,
        timeout: Duration,
        interfaces: Vec<String>,
        region: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            keystone,
            http,
            timeout,
            interfaces,
            region,
            metrics,
        }
    }

    /// `GET {service}{path}`; `None` on 404. One retry with a new service token on 401.
    async fn get<T: DeserializeOwned>(
        &self,
        service: Service,
        path: &str,
        request_id: &str,
    ) -> Result<Option<T>, ApiError> {
        self.get_as(service, path, request_id, "2.1").await
    }

    /// [`Self::get`] asking Nova for `microversion`.
    async fn get_as<T: DeserializeOwned>(
        &self,
        service: Service,
        path: &str,
        request_id: &str,
        microversion: &str,
    ) -> Result<Option<T>, ApiError> {
        let mut retried = false;
        loop {
            let token = self.keystone.service_token().await?;
            let url = catalog::find(
                &token.catalog,
                service.kind(),
                &self.interfaces,
                self.region.as_deref(),
            )
            .ok_or_else(|| {
                unavailable(
                    service,
                    format!(
                        "no {} endpoint ({}) in the service token's catalog",
                        service.kind(),
                        self.interfaces.join("/")
                    ),
                )
            })?;
            let base = match service {
                Service::Compute => catalog::compute_base(url),
                Service::Network => catalog::network_base(url),
            };
            let request = Request::builder()
                .method(Method::GET)
                .uri(format!("{base}{path}"))
                .header("x-auth-token", token.token.expose())
                .header("accept", "application/json")
                .header("user-agent", crate::USER_AGENT)
                .header("x-openstack-request-id", request_id)
                .header("x-openstack-nova-api-version", microversion)
                .header("openstack-api-version", format!("compute {microversion}"))
                .body(Full::new(Bytes::new()))
                .map_err(|e| unavailable(service, e))?;
            let reply = self.http.send(request, self.timeout).await;
            let result = match &reply {
                Ok(r) => r.status.as_str().to_owned(),
                Err(_) => "error".to_owned(),
            };
            self.metrics.inc(
                "nova_guest_api_upstream_requests_total",
                format!(
                    "service=\"{}\",call=\"get\",result=\"{result}\"",
                    service.kind()
                ),
            );
            let reply = reply.map_err(|e| unavailable(service, e))?;
            match reply.status {
                StatusCode::OK => {
                    return serde_json::from_slice(&reply.body)
                        .map(Some)
                        .map_err(|e| unavailable(service, format!("unexpected body: {e}")));
                }
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::UNAUTHORIZED if !retried => {
                    retried = true;
                    self.keystone.invalidate(&token);
                }
                status => return Err(unavailable(service, format!("status {status}"))),
            }
        }
    }

    /// The instance, or `None` when Nova does not know it.
    ///
    /// # Errors
    ///
    /// 503 when Keystone or Nova is unavailable.
    pub async fn server(&self, id: Uuid, request_id: &str) -> Result<Option<Instance>, ApiError> {
        self.server_as(id, request_id, "2.1").await
    }

    /// [`Self::server`] with its tags (microversion 2.26, where Nova's server tags appear).
    ///
    /// # Errors
    ///
    /// As [`Self::server`].
    pub async fn server_with_tags(
        &self,
        id: Uuid,
        request_id: &str,
    ) -> Result<Option<Instance>, ApiError> {
        self.server_as(id, request_id, "2.26").await
    }

    async fn server_as(
        &self,
        id: Uuid,
        request_id: &str,
        microversion: &str,
    ) -> Result<Option<Instance>, ApiError> {
        let body: Option<ServerBody> = self
            .get_as(
                Service::Compute,
                &format!("/servers/{id}"),
                request_id,
                microversion,
            )
            .await?;
        Ok(body.map(|b| Instance {
            project_id: b.server.tenant_id,
            status: b.server.status,
            host: b.server.host.filter(|h| !h.is_empty()),
            instance_name: b.server.instance_name,
            tags: b.server.tags,
        }))
    }

    /// The instances with a compute port on a network or subnet, each with its port's
    /// project, in Neutron's order, each instance once. With `project`, only that project's
    /// ports are asked for (and kept). Ports without an instance uuid as `device_id` or
    /// without a `compute:*` owner are not counted.
    ///
    /// # Errors
    ///
    /// 503 when Keystone or Neutron is unavailable; 400 for an id that is not an id.
    pub async fn compute_ports(
        &self,
        on: PortsOn<'_>,
        project: Option<&str>,
        request_id: &str,
    ) -> Result<Vec<(Uuid, String)>, ApiError> {
        #[derive(Deserialize)]
        struct Ports {
            ports: Vec<Port>,
        }
        let (id, filter) = match on {
            PortsOn::Network(id) => (id, format!("network_id={id}")),
            // Neutron's filter on a fixed IP's subnet: fixed_ips=subnet_id=<id>, encoded.
            PortsOn::Subnet(id) => (id, format!("fixed_ips=subnet_id%3D{id}")),
        };
        if !safe_id(id) || project.is_some_and(|p| !safe_id(p)) {
            return Err(ApiError::BadRequest(format!("{id:?} is not a Neutron id")));
        }
        let mut path = format!("/ports?{filter}");
        if let Some(p) = project {
            path.push_str(&format!("&tenant_id={p}"));
        }
        let listed: Ports = self
            .get(Service::Network, &path, request_id)
            .await?
            .unwrap_or(Ports { ports: Vec::new() });
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for p in listed.ports {
            let (Some(owner), Ok(device)) = (p.owner(), Uuid::parse_str(&p.device_id)) else {
                continue;
            };
            if !p.device_owner.starts_with("compute:") || project.is_some_and(|w| w != owner) {
                continue;
            }
            if seen.insert(device) {
                out.push((device, owner.to_owned()));
            }
        }
        Ok(out)
    }

    /// The instance's network_data.json from its Neutron ports. Only ports Nova itself would
    /// count as the instance's are used: asked for by device and by the instance's project
    /// (as Nova lists them), then checked again here — bound to this instance, owned by
    /// `project_id` (the server's project) and with a `compute:*` owner. Anything else (a port
    /// another project created with this instance's `device_id`, perhaps with a copy of its
    /// MAC) is dropped with a warning: it would hand the tenant's guest someone else's
    /// addresses, gateway and DNS.
    ///
    /// # Errors
    ///
    /// 503 when Keystone or Neutron is unavailable.
    pub async fn network_data(
        &self,
        id: Uuid,
        project_id: &str,
        request_id: &str,
    ) -> Result<serde_json::Value, ApiError> {
        #[derive(Deserialize)]
        struct Ports {
            ports: Vec<Port>,
        }
        #[derive(Deserialize)]
        struct NetworkBody {
            network: Network,
        }
        #[derive(Deserialize)]
        struct SubnetBody {
            subnet: Subnet,
        }
        let safe = safe_id;
        if !safe(project_id) {
            return Err(unavailable(
                Service::Compute,
                "the server's project id is not an id",
            ));
        }
        let listed: Ports = self
            .get(
                Service::Network,
                &format!("/ports?device_id={id}&tenant_id={project_id}"),
                request_id,
            )
            .await?
            .unwrap_or(Ports { ports: Vec::new() });
        let instance = id.to_string();
        let ports: Vec<Port> = listed
            .ports
            .into_iter()
            .filter(|p| {
                let ours = p.device_id == instance
                    && p.owner() == Some(project_id)
                    && p.device_owner.starts_with("compute:");
                if !ours {
                    tracing::warn!(
                        request_id,
                        instance = %id,
                        port = %p.id,
                        port_project = p.owner().unwrap_or("-"),
                        device_owner = %p.device_owner,
                        "Neutron port dropped: not a compute port of this instance's project"
                    );
                }
                ours
            })
            .collect();
        let ports = Ports { ports };
        let mut networks = HashMap::new();
        let mut subnets = HashMap::new();
        for port in &ports.ports {
            if !safe(&port.network_id) {
                tracing::warn!(port = %port.id, "Neutron port with a malformed network id; skipped");
                continue;
            }
            if !networks.contains_key(&port.network_id) {
                let n: Option<NetworkBody> = self
                    .get(
                        Service::Network,
                        &format!("/networks/{}", port.network_id),
                        request_id,
                    )
                    .await?;
                if let Some(n) = n {
                    networks.insert(port.network_id.clone(), n.network);
                }
            }
            for ip in port.fixed_ips.iter().filter(|ip| safe(&ip.subnet_id)) {
                if !subnets.contains_key(&ip.subnet_id) {
                    let s: Option<SubnetBody> = self
                        .get(
                            Service::Network,
                            &format!("/subnets/{}", ip.subnet_id),
                            request_id,
                        )
                        .await?;
                    if let Some(s) = s {
                        subnets.insert(ip.subnet_id.clone(), s.subnet);
                    }
                }
            }
        }
        Ok(network_data::render(&ports.ports, &networks, &subnets))
    }
}
