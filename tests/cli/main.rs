//! The command line: what it runs and what it refuses.
//!
//! One test binary (each links wgpu) with one GPU context (`gpu_common::ctx`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../gpu_common/mod.rs"]
mod gpu_common;

mod cli;
mod cli_refusals;
