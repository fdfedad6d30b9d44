//! What nova-guest-agent and nova-guest-api do the same way, so that they behave alike in
//! front of an operator:
//!
//! - [`serve`]: the accept loop — TLS optional, HTTP/1.1 and HTTP/2 on hyper, a bound on the
//!   time a client may take to send its headers, and on shutdown no new connections and a
//!   bounded drain of the requests in flight;
//! - [`signals`]: SIGTERM/SIGINT cancel one token; SIGHUP runs a reload;
//! - [`logging`]: tracing to stderr as text or JSON, `RUST_LOG` over the configured level;
//! - [`notify`]: systemd readiness, reload and stopping notifications;
//! - [`watchdog`]: systemd watchdog keep-alives (`WatchdogSec=`), started by [`process`];
//! - [`process`]: the body of both binaries' `main`, with their shared command line.
//!
//! It knows nothing of routes, guests, Keystone or the configuration's meaning.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use nova_guest_daemon::serve::{ServeOptions, serve};
//!
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let options = ServeOptions::new(Duration::from_secs(10), 1024);
//! serve(listener, &options, || None, |_request| async {
//!     hyper::Response::new(Full::new(Bytes::from_static(b"hello\n")))
//! }, shutdown).await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod logging;
pub mod notify;
mod prefixed;
pub mod process;
pub mod serve;
pub mod signals;
pub mod watchdog;

pub use tokio_util::sync::CancellationToken;
