//! What one configuration builds (Keystone, Nova/Neutron, the agent client, the request
//! limit), and the shared application whose state a SIGHUP reload replaces.

use std::sync::{Arc, OnceLock, RwLock};

use tokio::sync::Semaphore;

use crate::agent::AgentClient;
use crate::cloud::Cloud;
use crate::config::{AuthStrategy, Config};
use crate::keystone::Keystone;
use crate::metrics::Metrics;
use crate::outbound::Outbound;

/// Everything built from one configuration. Requests hold an `Arc` to the state they
/// started with, so a reload never changes a request halfway.
#[derive(Debug)]
pub struct State {
    /// The configuration.
    pub config: Config,
    /// Keystone (with `auth_strategy = keystone`).
    pub keystone: Option<Arc<Keystone>>,
    /// Nova and Neutron (with `auth_strategy = keystone`).
    pub cloud: Option<Cloud>,
    /// nova-guest-agent.
    pub agent: AgentClient,
    /// Bounds the requests handled at once.
    pub limiter: Arc<Semaphore>,
}

impl State {
    /// Builds the clients of `config`.
    ///
    /// # Errors
    ///
    /// A CA file cannot be read.
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Result<Self, String> {
        let connect = config
            .outbound_timeout
            .min(std::time::Duration::from_secs(5));
        let agent_http = Outbound::new(config.agent_ca_file.as_deref(), connect)
            .map_err(|e| format!("[api] agent_ca_file: {e}"))?;
        let agent = AgentClient::new(
            agent_http,
            config.agent_url_template.clone(),
            config.agent_auth_token.clone(),
            config.agent_timeout,
            metrics.clone(),
        );
        let (keystone, cloud) = match (&config.auth_strategy, &config.keystone) {
            (AuthStrategy::Keystone, Some(ks)) => {
                let http = Outbound::new(ks.cafile.as_deref(), connect)
                    .map_err(|e| format!("[keystone_authtoken] cafile: {e}"))?;
                let keystone = Arc::new(Keystone::new(
                    ks.clone(),
                    http.clone(),
                    config.outbound_timeout,
                    metrics.clone(),
                ));
                let cloud = Cloud::new(
                    keystone.clone(),
                    http,
                    config.outbound_timeout,
                    config.endpoint_interface.clone(),
                    config.region_name.clone(),
                    metrics,
                );
                (Some(keystone), Some(cloud))
            }
            _ => (None, None),
        };
        Ok(Self {
            limiter: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            config,
            keystone,
            cloud,
            agent,
        })
    }
}

/// The running application.
#[derive(Debug)]
pub struct App {
    state: RwLock<Arc<State>>,
    /// Process-wide metrics (kept across reloads).
    pub metrics: Arc<Metrics>,
    /// The notification consumer, when `[notifications] transport_url` is set.
    pub notifications: OnceLock<Arc<crate::notifications::Handle>>,
}

impl App {
    /// The application on its first state.
    pub fn new(state: State, metrics: Arc<Metrics>) -> Self {
        Self {
            state: RwLock::new(Arc::new(state)),
            metrics,
            notifications: OnceLock::new(),
        }
    }

    /// The current state.
    pub fn state(&self) -> Arc<State> {
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the state (reload); requests in flight keep theirs.
    pub fn replace(&self, state: State) {
        let state = Arc::new(state);
        match self.state.write() {
            Ok(mut s) => *s = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }
}
