//! The daemon: serves the routes with [`nova_guest_daemon::serve`], drains on shutdown through
//! one cancellation token, reloads on SIGHUP.

use std::net::SocketAddr;
use std::sync::Arc;

use nova_guest_daemon::process::RunOptions;
use nova_guest_daemon::serve::ServeOptions;
use nova_guest_daemon::{notify, signals};
use tokio::net::TcpListener;

use crate::config::{self, AuthStrategy, Config};
use crate::metrics::Metrics;
use crate::routes;
use crate::state::{App, State};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration cannot be turned into clients (a CA file, ...).
    #[error("configuration: {0}")]
    Setup(String),
    /// The listening socket.
    #[error("cannot listen on {address}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn warn_noauth(config: &Config) {
    if config.auth_strategy == AuthStrategy::Noauth {
        tracing::warn!(
            instances = config.instances.len(),
            "auth_strategy = noauth: NO AUTHENTICATION. Every caller may act on every instance \
             of the static [instances] map; the project id in the URL is trusted. For a demo \
             or a single machine only."
        );
    }
}

/// Runs the API with `config` until `options.shutdown` is cancelled, then drains in-flight
/// requests for up to `[api] shutdown_timeout`. SIGHUP reloads the configuration file (new
/// requests see it; the listening address needs a restart).
///
/// # Errors
///
/// See [`RunError`].
pub async fn run(config: Config, options: RunOptions) -> Result<(), RunError> {
    let address = SocketAddr::new(config.listen_address, config.listen_port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| RunError::Listen { address, source })?;
    let metrics = Arc::new(Metrics::default());
    warn_noauth(&config);
    let shutdown_timeout = config.shutdown_timeout;
    let serve_options = ServeOptions::new(config.header_timeout, config.max_connections);
    let config_metrics_address = config.metrics_address;
    let file = config.file.clone();
    let notifications = config.notifications.clone();
    if let Some(n) = &notifications
        && n.auto_apply == config::AutoApply::Tagged
        && config.auth_strategy == AuthStrategy::Noauth
    {
        tracing::warn!(
            "auto_apply_networking = tagged with auth_strategy = noauth: there are no Nova \
             tags here, so nothing will be applied (use `all`)"
        );
    }
    let state = State::new(config, metrics.clone()).map_err(RunError::Setup)?;
    let app = Arc::new(App::new(state, metrics));
    let consumer = notifications.map(|n| {
        let consumer = crate::notifications::Consumer::start(
            app.clone(),
            n,
            options.shutdown.clone(),
            shutdown_timeout,
        );
        let _ = app.notifications.set(consumer.handle.clone());
        consumer
    });
    if let Ok(bound) = listener.local_addr() {
        nova_guest_daemon::serve::announce(bound, options.print_address);
    }
    notify::ready();
    let reload_app = app.clone();
    tokio::spawn(signals::reload_on_sighup(
        options.shutdown.clone(),
        move || reload(reload_app.clone(), file.clone()),
    ));
    let metrics_server = match config_metrics_address {
        Some(address) => {
            let listener = TcpListener::bind(address)
                .await
                .map_err(|source| RunError::Listen { address, source })?;
            let bound = listener.local_addr().unwrap_or(address);
            tracing::info!(address = %bound, "serving /metrics");
            let metrics_app = app.clone();
            let stop = options.shutdown.clone();
            let metrics_options = serve_options.clone();
            Some(tokio::spawn(async move {
                nova_guest_daemon::serve::serve(
                    listener,
                    &metrics_options,
                    || None,
                    move |req| routes::metrics(metrics_app.clone(), req),
                    stop,
                )
                .await
            }))
        }
        None => None,
    };
    let handler_app = app.clone();
    let draining = nova_guest_daemon::serve::serve(
        listener,
        &serve_options,
        || None,
        move |req| routes::handle(handler_app.clone(), req),
        options.shutdown,
    )
    .await;
    draining.wait(shutdown_timeout).await;
    if let Some(consumer) = consumer {
        consumer.stopped().await;
    }
    if let Some(metrics) = metrics_server
        && let Ok(draining) = metrics.await
    {
        draining.wait(shutdown_timeout).await;
    }
    Ok(())
}

/// Reloads the configuration file (SIGHUP): new requests see it; a bad file changes nothing.
async fn reload(app: Arc<App>, file: std::path::PathBuf) {
    let old = app.state();
    let config = match tokio::task::spawn_blocking(move || config::load(&file)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::error!(errors = %e, "reload failed; keeping the previous configuration");
            return;
        }
        Err(e) => {
            tracing::error!(error = %e, "reload failed; keeping the previous configuration");
            return;
        }
    };
    if (config.listen_address, config.listen_port)
        != (old.config.listen_address, old.config.listen_port)
    {
        tracing::warn!("listen_address/listen_port changed: takes effect on restart only");
    }
    if config.notifications != old.config.notifications {
        tracing::warn!("[notifications] changed: takes effect on restart only");
    }
    warn_noauth(&config);
    let file = config.file.clone();
    match State::new(config, app.metrics.clone()) {
        Ok(state) => {
            app.replace(state);
            tracing::info!(file = %file.display(), "configuration reloaded");
        }
        Err(e) => {
            tracing::error!(error = %e, "reload failed; keeping the previous configuration");
        }
    }
}
