//! The QMP commands and events a guest-agent client needs: capability negotiation, version
//! and run state, the character devices (to find the agent's channel), run control and the
//! events that tell whether the guest agent is connected or the guest went down.
//!
//! A QMP session starts with the server's [`Greeting`](crate::message::Greeting); until
//! [`QmpCapabilities`] succeeds every other command fails with `CommandNotFound` and no events
//! are sent. Replies are routed by `id`: events may arrive before the reply of the command that
//! caused them.

mod commands;
mod events;

pub use commands::*;
pub use events::*;
