//! nova-guest-api: the Keystone-authenticated REST API of nova-guest (port 4224). It lets
//! OpenStack users act inside their running instances — apply networking from Neutron, set a
//! password, inject a file, ping, inspect the guest — by calling nova-guest-agent on the
//! instance's compute host, which talks to the QEMU guest agent.
//!
//! What it does, natively: validates `X-Auth-Token` with Keystone like keystonemiddleware
//! (cached by SHA-256 of the token), checks the project and a per-action role policy like
//! oslo.policy, looks the instance up in Nova and its ports in Neutron with its own service
//! token. What it does not do: reach guests itself (only through nova-guest-agent; it does not
//! depend on the QGA crates) or keep state (several processes can run behind a balancer).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = nova_guest_api::config::load("/etc/nova-guest/nova-guest.conf".as_ref())?;
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! nova_guest_api::run(config, nova_guest_api::RunOptions::new(shutdown)).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod action;
pub mod agent;
pub mod apply;
pub mod catalog;
pub mod cloud;
pub mod config;
pub mod error;
pub mod keystone;
pub mod metrics;
pub mod network_data;
pub mod notifications;
pub mod outbound;
pub mod password;
pub mod policy;
pub mod routes;
pub mod server;
pub mod state;
pub mod timefmt;
pub mod tools;

pub use nova_guest_daemon::process::RunOptions;
pub use server::{RunError, run};

/// What `--help` says of the daemon.
pub const ABOUT: &str = "The Keystone-authenticated REST API of nova-guest (port 4224)";

/// The `User-Agent` of outbound calls.
pub const USER_AGENT: &str = concat!("nova-guest-api/", env!("CARGO_PKG_VERSION"));
