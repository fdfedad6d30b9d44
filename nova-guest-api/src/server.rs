//! The HTTP server: accept loop, per-connection hyper service, graceful shutdown through one
//! cancellation token, SIGHUP reload, and logging set-up for the binary.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{self, AuthStrategy, Config, LogFormat};
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
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// The cause.
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

/// Runs the API with `config` until `shutdown` is cancelled, then drains in-flight requests
/// for up to `[api] shutdown_timeout`. SIGHUP reloads the configuration file (new requests
/// see it; the listening address needs a restart).
///
/// # Errors
///
/// See [`RunError`].
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    let address = SocketAddr::new(config.listen_address, config.listen_port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| RunError::Listen { address, source })?;
    serve(listener, config, shutdown).await
}

/// [`run`] on a listener already bound.
///
/// # Errors
///
/// See [`RunError`].
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::default());
    warn_noauth(&config);
    let shutdown_timeout = config.shutdown_timeout;
    let file = config.file.clone();
    let state = State::new(config, metrics.clone()).map_err(RunError::Setup)?;
    let app = Arc::new(App::new(state, metrics));
    if let Ok(bound) = listener.local_addr() {
        tracing::info!(address = %bound, "listening");
    }
    tokio::spawn(reload_on_sighup(app.clone(), file, shutdown.clone()));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(routes::handle(app, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!(timeout = ?shutdown_timeout, "shutting down; draining requests in flight");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(shutdown_timeout) => {
            tracing::warn!("shutdown timeout reached; closing the remaining connections");
        }
    }
    Ok(())
}

async fn reload_on_sighup(app: Arc<App>, file: std::path::PathBuf, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGHUP; reload disabled");
            return;
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        let old = app.state();
        let config = match config::load(&file) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(errors = %e, "reload failed; keeping the previous configuration");
                continue;
            }
        };
        if (config.listen_address, config.listen_port)
            != (old.config.listen_address, old.config.listen_port)
        {
            tracing::warn!("listen_address/listen_port changed: takes effect on restart only");
        }
        warn_noauth(&config);
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
}

/// Installs the tracing subscriber of the binary (`RUST_LOG` overrides the level).
pub fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let default = if config.debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A token cancelled on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> CancellationToken {
    use tokio::signal::unix::{SignalKind, signal};
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM"),
                    _ = int.recv() => tracing::info!("SIGINT"),
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        t.cancel();
    });
    token
}
