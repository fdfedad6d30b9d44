//! Fuzz bodies, compiled only under `cfg(fuzzing)` (cargo-fuzz sets it). The targets in
//! `fuzz/fuzz_targets/` call these.
