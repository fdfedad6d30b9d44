//! Shared test support.

pub(crate) mod scripts;
