//! The GPU path: every algorithm against the reference, device limits and faults, f16 weights, the grid kernel, occupancy, the classifier and whole-model pieces, Keras masks, streaming, and naga over every shader.
//!
//! One test binary (each links wgpu) with one GPU context (`gpu_common::ctx`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../gpu_common/mod.rs"]
mod gpu_common;

// Counts each thread's allocations (`common::alloc`), for the hot-path tests.
#[global_allocator]
static GLOBAL: common::alloc::CountingAlloc = common::alloc::CountingAlloc;

mod device_faults;
mod device_limits;
mod f16;
mod gpu_vs_reference;
mod grid;
mod keras_mask;
mod model_gpu;
mod occupancy;
mod shaders;
mod streaming;
