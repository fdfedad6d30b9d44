//! The daemon's shared state: the current configuration (swapped on SIGHUP), the global
//! operation bound, the guests and the metrics.

use std::sync::{Arc, RwLock};

use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::config::{self, Config};
use crate::guests::Guests;
use crate::metrics::Metrics;
use crate::tls;

/// Shared by every request.
pub struct App {
    current: RwLock<Current>,
    /// The guests of this host.
    pub guests: Guests,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
}

#[derive(Clone)]
struct Current {
    config: Arc<Config>,
    permits: Arc<Semaphore>,
    tls: Option<TlsAcceptor>,
}

impl App {
    /// State for a validated configuration.
    ///
    /// # Errors
    ///
    /// When the TLS certificate or key cannot be loaded.
    pub fn new(config: Config) -> Result<Self, String> {
        let tls = tls::acceptor(&config)?;
        Ok(Self {
            current: RwLock::new(Current {
                permits: Arc::new(Semaphore::new(config.max_concurrent_operations)),
                config: Arc::new(config),
                tls,
            }),
            guests: Guests::default(),
            metrics: Metrics::default(),
        })
    }

    fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The configuration and operation bound a new request works with.
    pub fn snapshot(&self) -> (Arc<Config>, Arc<Semaphore>) {
        let c = self.current();
        (c.config, c.permits)
    }

    /// The TLS acceptor for new connections, if TLS is on.
    pub fn tls(&self) -> Option<TlsAcceptor> {
        self.current().tls
    }

    /// Reloads the configuration file (SIGHUP). New requests see the new configuration;
    /// requests in flight finish with the one they started with. An invalid file changes
    /// nothing.
    pub fn reload(&self) {
        let (old, _) = self.snapshot();
        let loaded = config::load(&old.file)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                let tls = tls::acceptor(&c)?;
                Ok((c, tls))
            });
        let (new, tls) = match loaded {
            Ok(v) => v,
            Err(e) => {
                self.metrics.reload(false);
                for line in e.lines() {
                    tracing::error!(error = %line, "configuration reload failed; keeping the previous configuration");
                }
                return;
            }
        };
        if new.listen_address != old.listen_address || new.listen_port != old.listen_port {
            tracing::warn!("listen_address and listen_port changes take effect after a restart");
        }
        if new.log_format != old.log_format || new.debug != old.debug {
            tracing::warn!("log_format and debug changes take effect after a restart");
        }
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if new.max_concurrent_operations != old.max_concurrent_operations {
            current.permits = Arc::new(Semaphore::new(new.max_concurrent_operations));
        }
        let actions: Vec<&str> = new.enabled_actions.iter().map(|a| a.name()).collect();
        tracing::info!(
            enabled_actions = %actions.join(","),
            command_timeout = ?new.command_timeout,
            "configuration reloaded"
        );
        current.config = Arc::new(new);
        current.tls = tls;
        drop(current);
        self.metrics.reload(true);
    }
}
