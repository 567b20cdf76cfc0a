//! The GPU training path: a training-mode forward that keeps the gates of every step, the
//! fused backward recurrence (one dispatch per step, two for reset-before), the weight gradients
//! as GEMMs over all `T·B` rows, and, for a classifier, the dense + softmax cross-entropy
//! backward, global-norm clipping and Adam or SGD with momentum. Everything of one backward or
//! one training step is recorded into one command encoder and submitted once.
//!
//! [`GpuTrainer`] holds the parameters (and their gradients and optimiser moments) in GPU
//! buffers; [`TrainWorkspace`] holds the activations and tapes for one `(T, B)`. A training step
//! uploads the batch, runs forward, backward and update, and reads back only the loss.
//!
//! Split as `crate::gpu` is:
//! - `trainer.rs`: [`GpuTrainer`], its constructors and every public pass;
//! - `layout.rs`: where each parameter tensor lives in the flat parameter buffer;
//! - `workspace.rs`: [`TrainWorkspace`], its `work` layout, buffers and bind groups;
//! - `blocks.rs`: a workspace's uniform blocks and GEMM calls;
//! - `pipelines.rs`: the compute pipelines;
//! - `encode.rs`: recording the forward, backward and head into a pass;
//! - `optimizer.rs`: the optimiser's uniform block and its dispatches ([`Optimizer`] itself is
//!   `train::optimizer`).
//!
//! The shaders are `shaders/gru_backward.wgsl` (forward with tape, backward recurrence),
//! `shaders/train_gemm.wgsl` (the strided GEMM) and `shaders/train_step.wgsl` (head loss,
//! clipping, optimisers).

mod blocks;
mod encode;
mod layout;
mod optimizer;
mod pipelines;
mod trainer;
mod workspace;

pub use super::optimizer::Optimizer;
pub use trainer::{GpuTrainer, StepStats};
pub use workspace::TrainWorkspace;

use crate::error::{Error, Result};
use crate::gpu::wgsl::SCRATCH_PARTIALS;

/// K-rows per GEMM dispatch: keeps every invocation under llvmpipe's 65,535 loop iterations.
const K_CHUNK: u32 = 8192;
/// Most workgroups of the `sumsq` reduction.
const MAX_GROUPS: u32 = 1024;
/// Floats of the scratch buffer: loss, correct, norm, scale, then the partial sums.
const SCRATCH: usize = (SCRATCH_PARTIALS + MAX_GROUPS) as usize;

/// Pushes an out-of-memory and a validation error scope.
fn push_scopes(device: &wgpu::Device) -> (wgpu::ErrorScopeGuard, wgpu::ErrorScopeGuard) {
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    (oom, validation)
}

/// `buf` bound whole at `binding`.
fn whole(binding: u32, buf: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buf.as_entire_binding(),
    }
}

fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Overflow(format!("{what} = {v} exceeds u32")))
}
