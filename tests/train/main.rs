//! Training: gradients against autograd, and the training paths.
//!
//! One test binary (each links wgpu) with one GPU context (`gpu_common::ctx`).

#[path = "../common/mod.rs"]
mod common;
#[path = "../gpu_common/mod.rs"]
mod gpu_common;

mod grad;
mod train;
