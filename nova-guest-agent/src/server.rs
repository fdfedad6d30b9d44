//! The daemon: binds the listener, serves the HTTP API with [`nova_guest_daemon::serve`],
//! reloads on SIGHUP, sweeps idle guest connections, and on shutdown drains for
//! `[agent] shutdown_timeout`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nova_guest_daemon::process::RunOptions;
use nova_guest_daemon::serve::{self, ServeOptions};
use nova_guest_daemon::{notify, signals};
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::Config;
use crate::http;

/// How often idle guest connections are looked for.
const SWEEP_PERIOD: Duration = Duration::from_secs(30);

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TLS could not be set up.
    #[error("{0}")]
    Tls(String),
}

/// Runs the daemon until `options.shutdown` is cancelled, then drains for
/// `[agent] shutdown_timeout` and returns.
///
/// # Errors
///
/// When the listener or TLS cannot be set up.
pub async fn run(config: Config, options: RunOptions) -> Result<(), RunError> {
    let address = SocketAddr::new(config.listen_address, config.listen_port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| RunError::Bind { address, source })?;
    let bound = listener.local_addr().unwrap_or(address);
    let actions: Vec<&str> = config.enabled_actions.iter().map(|a| a.name()).collect();
    tracing::info!(
        tls = config.tls.is_some(),
        host = %config.host,
        socket_path_template = %config.socket_path_template.as_str(),
        enabled_actions = %actions.join(","),
        "serving guests"
    );
    let (config_header_timeout, max_connections) = (config.header_timeout, config.max_connections);
    if config.tls.is_none() && !bound.ip().is_loopback() {
        tracing::warn!(
            address = %bound,
            "listening on a non-loopback address without TLS: the API's token and guests' \
             passwords cross the network in clear (set tls_cert_file and tls_key_file)"
        );
    }
    let app = Arc::new(App::new(config).map_err(RunError::Tls)?);
    serve::announce(bound, options.print_address);
    notify::ready();

    // Both end with the shutdown token.
    let reload_app = app.clone();
    let shutdown = options.shutdown.clone();
    tokio::spawn(signals::reload_on_sighup(shutdown.clone(), move || {
        let app = reload_app.clone();
        async move {
            let _ = tokio::task::spawn_blocking(move || app.reload()).await;
        }
    }));
    tokio::spawn(crate::ops::sweep_idle(
        app.clone(),
        SWEEP_PERIOD,
        shutdown.clone(),
    ));
    let tls_app = app.clone();
    let handler_app = app.clone();
    let draining = serve::serve(
        listener,
        &ServeOptions::new(config_header_timeout, max_connections),
        move || tls_app.tls(),
        move |req| http::handle(handler_app.clone(), req),
        shutdown,
    )
    .await;
    let (config, _) = app.snapshot();
    draining.wait(config.shutdown_timeout).await;
    Ok(())
}
