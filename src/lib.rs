//! # wgpu-gru
//!
//! GRU layers on any GPU through [wgpu](https://wgpu.rs) and WGSL compute shaders, with an
//! f64 CPU reference that checks them and a fast f32 CPU path.
//!
//! Models trained in PyTorch, Keras or ONNX (or written in the seed's own equations) are imported
//! into one canonical [`Gru`] (a [`GruConfig`] plus [`GruWeights`]) and run by any path:
//! [`reference::forward`], [`cpu::CpuGru`], or [`gpu::GpuGru`], all returning [`GruOutput`].
//!
//! Shapes: input `[T, B, I]` (`[B, T, I]` when `batch_first`), output `[T, B, D·H]`,
//! states `[L·D, B, H]`.
#![warn(missing_docs)]

pub mod auto;
// For the CLI's bench command and the criterion benches; not part of the API.
#[doc(hidden)]
pub mod bench;
pub mod config;
pub mod cpu;
pub mod error;
pub mod formats;
pub mod gpu;
pub mod io;
pub mod model;
// The CLI's `.npy` reader and writer (its tests and the fuzzer use them too); not part of the
// library's API, and not built without the `cli` feature.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod npy;
pub mod predict;
pub mod reference;
pub mod stream;
pub mod train;
pub mod weights;

pub use config::{Activation, Activations, Direction, GruConfig, Precision, Variant};
pub use error::{Error, Result};
pub use io::{Batch, Forward, GruOutput, SeqInput, Steps};
pub use stream::Stream;
pub use weights::{CellWeights, Gru, GruWeights};
/// The wgpu this crate is built against, so users get the matching version.
pub use wgpu;

/// Largest absolute element-wise difference; `∞` if the lengths differ (for tests and the
/// demo; [`GruOutput::max_abs_diff`] compares whole outputs).
#[doc(hidden)]
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() { f32::INFINITY } else { m.max(d) }
    })
}

/// README's code blocks, compiled as doctests so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
