//! Shared pieces of the `qga-benches` crate: the payloads both the criterion benches
//! (`benches/codec.rs`) and the `compare` program use, the statistics, and the few system
//! calls the comparison needs (CPU pinning, `getrusage`, RSS).
//!
//! Nothing here is published: the crate exists to measure `qga-proto` and `qga-client`
//! against a raw client and the peers (qapi-rs, python qemu.qmp). See `BENCHMARKS.md` at the
//! root of the repository for the numbers and how to reproduce them.

pub mod payload;
pub mod stats;
pub mod sys;
