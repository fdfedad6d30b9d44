//! The listener: accepts connections (TLS optional), serves HTTP/1.1 and HTTP/2, reloads on
//! SIGHUP, and on shutdown stops accepting and drains in-flight requests for a bounded time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::config::Config;
use crate::http;

/// How long a client may take to send its request headers, or to finish a TLS handshake.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Options of [`run`] that do not come from the configuration file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print `listening on ADDRESS` on stdout once bound (for tests and scripts).
    pub print_address: bool,
}

/// Runs the daemon until `shutdown` is cancelled, then drains for
/// `[agent] shutdown_timeout` and returns.
///
/// # Errors
///
/// When the listener or TLS cannot be set up.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), RunError> {
    run_with(config, shutdown, RunOptions::default()).await
}

/// [`run`] with extra options.
///
/// # Errors
///
/// As for [`run`].
pub async fn run_with(
    config: Config,
    shutdown: CancellationToken,
    options: RunOptions,
) -> Result<(), RunError> {
    let address = SocketAddr::new(config.listen_address, config.listen_port);
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| RunError::Bind { address, source })?;
    let bound = listener.local_addr().unwrap_or(address);
    let tls = config.tls.is_some();
    let actions: Vec<&str> = config.enabled_actions.iter().map(|a| a.name()).collect();
    tracing::info!(
        address = %bound,
        tls,
        host = %config.host,
        socket_path_template = %config.socket_path_template.as_str(),
        enabled_actions = %actions.join(","),
        "listening"
    );
    let app = Arc::new(App::new(config).map_err(RunError::Tls)?);
    if options.print_address {
        println!("listening on {bound}");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

    // Both end with the shutdown token.
    tokio::spawn(reload_on_sighup(app.clone(), shutdown.clone()));
    tokio::spawn(crate::ops::sweep_idle(
        app.clone(),
        SWEEP_PERIOD,
        shutdown.clone(),
    ));
    // One task per connection.
    let tracker = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tracker.spawn(serve(app.clone(), stream, peer, shutdown.clone()));
    }
    drop(listener);
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    tracker.close();
    let (config, _) = app.snapshot();
    tracing::info!(
        connections = tracker.len(),
        timeout = ?config.shutdown_timeout,
        "shutting down: no new connections; draining requests in flight"
    );
    if tokio::time::timeout(config.shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tracker.len(),
            "requests still in flight after shutdown_timeout; stopping anyway"
        );
    } else {
        tracing::info!("drained; exiting");
    }
    Ok(())
}

async fn serve(app: Arc<App>, stream: TcpStream, peer: SocketAddr, shutdown: CancellationToken) {
    match app.tls() {
        None => serve_io(app, TokioIo::new(stream), shutdown).await,
        Some(acceptor) => {
            match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_io(app, TokioIo::new(tls), shutdown).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_io<I>(app: Arc<App>, io: TokioIo<I>, shutdown: CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| http::handle(app.clone(), req));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        }
        () = shutdown.cancelled() => {
            // Finish the request in flight (if any), then close.
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error while draining");
            }
        }
    }
}

async fn reload_on_sighup(app: Arc<App>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; reloading is off");
            return;
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        tracing::info!("SIGHUP: reloading the configuration");
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
        let reload_app = app.clone();
        let _ = tokio::task::spawn_blocking(move || reload_app.reload()).await;
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    }
}

/// Cancels `token` on SIGTERM or SIGINT.
///
/// # Errors
///
/// When the signal handlers cannot be installed.
pub fn cancel_on_signals(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let which = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = which, "stopping");
        token.cancel();
    });
    Ok(())
}
