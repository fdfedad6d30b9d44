//! The accept loop both daemons serve with.
//!
//! One task per connection, HTTP/1.1 and HTTP/2 (hyper-util's auto builder), TLS when an
//! acceptor is given, and two bounds against clients that hold connections open:
//!
//! - `header_timeout`: the TLS handshake, the first bytes of the connection (which decide
//!   between HTTP/1.1 and HTTP/2, a read hyper-util's auto builder has no deadline for) and
//!   every HTTP/1.1 request head must arrive within it, else the connection is closed; an idle
//!   keep-alive connection is closed after it too;
//! - `max_connections`: connections beyond it are closed at once, not queued.
//!
//! When the shutdown token is cancelled the listener is closed at once, each connection
//! finishes the request it is serving and closes, and [`Draining::wait`] bounds how long that
//! may take.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::prefixed::sniff;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How connections are served.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// How long a client may take to finish a TLS handshake, to send its first bytes and each
    /// request head.
    pub header_timeout: Duration,
    /// Connections served at once; more are closed at once.
    pub max_connections: usize,
}

impl ServeOptions {
    /// Options with these bounds.
    pub fn new(header_timeout: Duration, max_connections: usize) -> Self {
        Self {
            header_timeout,
            max_connections,
        }
    }
}

/// Logs the bound address, and with `print` also writes `listening on ADDRESS` to stdout (for
/// tests and scripts that start the daemon on port 0).
pub fn announce(bound: SocketAddr, print: bool) {
    tracing::info!(address = %bound, "listening");
    if print {
        use std::io::Write as _;
        println!("listening on {bound}");
        let _ = std::io::stdout().flush();
    }
}

/// The connections still open after the listener closed.
#[derive(Debug)]
#[must_use = "wait for the requests in flight to finish"]
pub struct Draining {
    tracker: TaskTracker,
}

impl Draining {
    /// Connections still open.
    pub fn connections(&self) -> usize {
        self.tracker.len()
    }

    /// Waits up to `timeout` for every connection to finish its request and close; returns
    /// false when some were still open (they are abandoned when the runtime stops).
    pub async fn wait(self, timeout: Duration) -> bool {
        self.tracker.close();
        tracing::info!(
            connections = self.tracker.len(),
            ?timeout,
            "shutting down: no new connections; draining requests in flight"
        );
        if tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = self.tracker.len(),
                "requests still in flight after shutdown_timeout; stopping anyway"
            );
            false
        } else {
            tracing::info!("drained; exiting");
            true
        }
    }
}

/// Serves `listener` until `shutdown` is cancelled. `tls` is asked for an acceptor at each
/// new connection (so a reload can change it); `handle` answers each request.
pub async fn serve<T, H, Fut>(
    listener: TcpListener,
    options: &ServeOptions,
    tls: T,
    handle: H,
    shutdown: CancellationToken,
) -> Draining
where
    T: Fn() -> Option<TlsAcceptor>,
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(options.max_connections));
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            biased;
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
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Refused at once: a client holding every slot must not make others wait.
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    %peer,
                    refused,
                    max_connections = options.max_connections,
                    "connection refused: max_connections reached"
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let work = connection(
            stream,
            peer,
            tls(),
            options.header_timeout,
            handle.clone(),
            shutdown.clone(),
        );
        tracker.spawn(async move {
            work.await;
            drop(slot);
        });
    }
    drop(listener);
    crate::notify::stopping();
    Draining { tracker }
}

async fn connection<H, Fut>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
    handle: H,
    shutdown: CancellationToken,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    match tls {
        None => match sniff(stream, header_timeout).await {
            Ok(io) => http(TokioIo::new(io), header_timeout, handle, shutdown).await,
            Err(e) => tracing::debug!(%peer, error = %e, "no request from the client"),
        },
        Some(acceptor) => {
            let tls = match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            match sniff(tls, header_timeout).await {
                Ok(io) => http(TokioIo::new(io), header_timeout, handle, shutdown).await,
                Err(e) => tracing::debug!(%peer, error = %e, "no request from the client"),
            }
        }
    }
}

async fn http<I, H, Fut>(
    io: TokioIo<I>,
    header_timeout: Duration,
    handle: H,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = service_fn(move |req| {
        let response = handle(req);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
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
