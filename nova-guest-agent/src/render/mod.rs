//! Renderers: network_data.json into a script for the guest's OS (render mode of
//! apply-networking). Pure functions of a checked [`NetworkData`]; golden-file tests live in
//! `tests/golden/`.

pub mod linux;
pub mod persist;
pub mod windows;

pub use crate::netdata::NetworkData;
