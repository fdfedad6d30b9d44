//! The configuration file both nova-guest daemons read, `/etc/nova-guest/nova-guest.conf`:
//! INI in the style of oslo.config, one file for nova-guest-agent and nova-guest-api.
//!
//! - [`ini`]: the syntax, with line numbers kept for messages;
//! - [`layout`]: which daemon reads which section, and each section's keys;
//! - [`Document`] and [`Section`]: one daemon's view of the file, typed reads ([`values`])
//!   that record every problem with file, line, section and key ([`ConfigError`]), and
//!   secrets read from files ([`Secret`]).
//!
//! So the same file gives the same messages from either daemon. This crate knows nothing of
//! what the values mean to a daemon; each daemon turns them into its own `Config`.
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//! use std::time::Duration;
//! use nova_guest_conf::{Daemon, Document, values};
//!
//! let text = "[DEFAULT]\nhost = compute-1\n[agent]\ncommand_timeout = 2.5\n[api]\nx = 1\n";
//! let mut doc = Document::parse(Path::new("/etc/nova-guest/nova-guest.conf"), text, Daemon::Agent)
//!     .unwrap();
//! let host = doc.section("DEFAULT").string("host");
//! let timeout = doc
//!     .section("agent")
//!     .parse("command_timeout", Duration::from_secs(30), |v| values::seconds(v, 0.1, 3600.0));
//! doc.finish().unwrap(); // `[api] x` is the API's business, not the agent's
//! assert_eq!(host.as_deref(), Some("compute-1"));
//! assert_eq!(timeout, Duration::from_millis(2500));
//! ```
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod document;
mod error;
pub mod ini;
pub mod layout;
mod secret;
pub mod values;

pub use document::{Document, MIN_SECRET_LEN, Section, read_secret, relative_to};
pub use error::{ConfigError, ConfigErrors};
pub use ini::{Entry, SyntaxError};
pub use layout::Daemon;
pub use secret::{Secret, agent_token};
pub use values::LogFormat;
