//! nova-guest-agent: the compute-host daemon that lets nova-guest-api act inside the VMs of
//! its host through their QEMU guest agents.
//!
//! It serves a small HTTP API (hyper; TLS optional) authenticated with a shared secret, and
//! reaches each instance's agent with [`qga_client`], through libvirt (`transport = libvirt`,
//! the default where libvirt runs: one shared connection to libvirtd, the domain found by the
//! instance's uuid) or through the agent's own socket found from `socket_path_template`
//! (`transport = socket`): one operation at a time per guest, many guests in parallel under a global
//! bound, every operation bounded by `command_timeout`. Actions: `ping`, `set-password`,
//! `inject-file`, `apply-networking` (render mode: a script rendered from network_data.json
//! for the guest's OS; script mode: the original nova-guest's guest script), and `exec`
//! (disabled by default).
//!
//! It does not authenticate end users or check instance ownership: nova-guest-api does that
//! and is the only caller.
//!
//! # Example
//!
//! ```no_run
//! use std::path::Path;
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = nova_guest_agent::config::load(Path::new("/etc/nova-guest/nova-guest.conf"))?;
//! let shutdown = CancellationToken::new();
//! nova_guest_daemon::signals::cancel_on_signals(shutdown.clone())?;
//! nova_guest_agent::run(config, nova_guest_agent::RunOptions::new(shutdown)).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod action;
pub mod app;
pub mod config;
pub mod error;
pub mod exec;
pub mod guests;
pub mod http;
pub mod inject;
pub mod libvirt;
pub mod metrics;
pub mod netdata;
pub mod networking;
pub mod ops;
pub mod render;
pub mod server;
pub mod template;
pub mod tls;

pub use nova_guest_daemon::process::RunOptions;
pub use server::{RunError, run};

/// What `--help` says of the daemon.
pub const ABOUT: &str =
    "Serves guest actions (QEMU guest agent) for the VMs of this compute host to nova-guest-api";
