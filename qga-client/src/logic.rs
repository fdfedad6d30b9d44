//! The client's decision logic, shared by the async client (tokio) and the blocking one
//! (std): what each step of a call means, with no IO and no clock of its own (time comes in
//! as `now`). The two shells (`client` and `blocking`) only move bytes, wait and sleep; what a
//! reply, a silence, a short write or an exit status means is decided here, once.

pub(crate) mod config;
pub(crate) mod conn;
pub(crate) mod deadline;
pub(crate) mod exec;
pub(crate) mod file;
pub(crate) mod guest;
pub(crate) mod reply;
