//! The contract between nova-guest-api and nova-guest-agent: what the API sends to
//! `POST /v1/instances/{uuid}/actions` and `GET /v1/instances/{uuid}/guest` on a compute host,
//! and what comes back.
//!
//! Both daemons build and read their bodies with these types only, so a change to the contract
//! breaks the build of both rather than a tenant's call:
//!
//! - [`Action`]: the action vocabulary (`apply-networking`, `set-password`, `inject-file`,
//!   `ping`, `exec`), as in request bodies and in `[agent] enabled_actions`;
//! - [`request`]: one request body per action and [`ActionRequest::from_slice`], the parser
//!   that the agent runs on every body (its messages never repeat a value from the body);
//! - [`reply`]: the result of each action, in the original nova-guest's shape;
//! - [`error`]: the agent's stable error codes with their HTTP status, and its error body;
//! - [`guest`]: the guest summary and the instance listing.
//!
//! This crate is serde and nothing else: no IO, no async runtime, no HTTP library. The public
//! REST API of nova-guest-api is a different, Nova-style contract; it lives in that crate.
//!
//! # Example
//!
//! ```
//! use nova_guest_contract::{ActionReply, ActionRequest, reply::PingResult};
//!
//! // The API sends a ping...
//! let body = serde_json::to_vec(&ActionRequest::Ping).unwrap();
//! assert_eq!(body, br#"{"ping":null}"#);
//! // ...the agent parses it...
//! assert_eq!(ActionRequest::from_slice(&body).unwrap(), ActionRequest::Ping);
//! // ...and answers; the API reads the answer back as a typed reply.
//! let answer = serde_json::to_vec(&ActionReply::Ping(PingResult { success: true })).unwrap();
//! let reply: ActionReply = serde_json::from_slice(&answer).unwrap();
//! assert_eq!(reply, ActionReply::Ping(PingResult { success: true }));
//! ```
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod action;
pub mod error;
pub mod guest;
pub mod reply;
pub mod request;

pub use action::Action;
pub use error::{ContractError, ErrorBody, ErrorCode, ErrorDetail};
pub use reply::ActionReply;
pub use request::ActionRequest;
