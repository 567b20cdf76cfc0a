//! Fuzz targets for `wgpu-gru` (see [`targets`]); the binaries in `fuzz_targets/` wrap them for
//! cargo-fuzz, and `tests/regressions.rs` in the parent crate runs them on stable Rust.

/// The CLI's `run` subcommand, compiled from the binary's own source.
#[allow(dead_code)]
#[path = "../../src/bin/wgpu-gru/run.rs"]
pub mod run;

pub mod targets;
