//! The CPU path and the paths together: the fast CPU path against the f64 reference, numerics, input checks on every path, the classifier model, and the crate's structure.
//!
//! One test binary (each links wgpu) with one GPU context (`gpu_common::ctx`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../gpu_common/mod.rs"]
mod gpu_common;

// Counts each thread's allocations (`common::alloc`), for the hot-path tests.
#[global_allocator]
static GLOBAL: common::alloc::CountingAlloc = common::alloc::CountingAlloc;

mod cpu_vs_reference;
mod input_validation;
mod model;
mod numerics;
mod structure;
