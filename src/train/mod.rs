//! Training: the GRU's backward (BPTT), gradients in each framework's layout, and (on the GPU)
//! the classifier head's backward and the optimisers.
//!
//! - [`reference::backward`]: the f64 oracle, for every structure the forward runs.
//! - [`Gradients`]: what a backward returns, in the canonical layout of [`SeqInput`] and
//!   [`GruWeights`].
//! - [`export_grads`] / [`export_weights`]: the inverse of each importer's weight conversion, so
//!   that gradients (and trained weights) go back under the framework's own names and shapes.
//!
//! The gradients are those of `L = Σ output ⊙ grad_output + Σ h_n ⊙ grad_h_n`: the upstream
//! gradients of the output sequence and of the final state. Only the standard activations
//! (sigmoid for the gates, tanh for the candidate) without `clip` are differentiated; other ONNX
//! activations are refused with [`Error::Unsupported`].

pub mod bench;
pub mod fit;
pub mod gpu;
pub mod optimizer;
pub mod reference;

pub use gpu::{GpuTrainer, StepStats, TrainWorkspace};
pub use optimizer::Optimizer;
// The export lives with the layouts (formats/export.rs); re-exported here, where it began.
pub use crate::formats::{NamedTensor, export_grads, export_weights, safetensors_bytes};

use crate::config::{Activation, GruConfig};
use crate::error::{Error, Result};
use crate::weights::GruWeights;

#[cfg(doc)]
use crate::{io::SeqInput, weights::CellWeights};

/// The gradients of one backward, in the canonical layouts.
#[derive(Debug, Clone, PartialEq)]
pub struct Gradients {
    /// dL/dx, shaped like [`SeqInput::x`]: `[T, B, I]` (`[B, T, I]` when batch-first). Zero at
    /// padding past a row's length.
    pub input: Vec<f32>,
    /// dL/dh0, `[L·D, B, H]`: the gradient at the given initial state, or at zeros without one.
    pub h0: Vec<f32>,
    /// dL/dW for every weight and bias, `layers[l][d]` in the canonical [`CellWeights`] layout
    /// (`w_ih [3H, I_l]`, `w_hh [3H, H]`, `b_ih`, `b_hh [3H]`, gate order r, z, n).
    pub weights: GruWeights,
}

impl Gradients {
    /// Largest absolute element-wise difference to `other` (input, h0 and every weight);
    /// `∞` when the shapes differ.
    pub fn max_abs_diff(&self, other: &Gradients) -> f32 {
        let mut m = crate::max_abs_diff(&self.input, &other.input)
            .max(crate::max_abs_diff(&self.h0, &other.h0));
        if self.weights.layers.len() != other.weights.layers.len() {
            return f32::INFINITY;
        }
        for (a, b) in self.weights.layers.iter().zip(&other.weights.layers) {
            if a.len() != b.len() {
                return f32::INFINITY;
            }
            for (x, y) in a.iter().zip(b) {
                for (p, q) in [
                    (&x.w_ih, &y.w_ih),
                    (&x.w_hh, &y.w_hh),
                    (&x.b_ih, &y.b_ih),
                    (&x.b_hh, &y.b_hh),
                ] {
                    m = m.max(crate::max_abs_diff(p, q));
                }
            }
        }
        m
    }
}

/// Refuses what the backward does not differentiate: activations other than sigmoid (gates) and
/// tanh (candidate) in any direction, and `clip` ([`Error::Unsupported`]).
pub fn check_trainable(config: &GruConfig) -> Result<()> {
    for d in 0..config.num_directions() {
        let a = config.activations_for(d);
        if a.f != Activation::Sigmoid || a.g != Activation::Tanh {
            return Err(Error::Unsupported(format!(
                "the backward differentiates the standard activations (Sigmoid, Tanh) only; \
                 direction {d} has ({:?}, {:?})",
                a.f, a.g
            )));
        }
    }
    if let Some(c) = config.clip {
        return Err(Error::Unsupported(format!(
            "the backward does not differentiate clip (clip = {c})"
        )));
    }
    Ok(())
}

/// Checks the upstream gradients' lengths: `grad_output` like the output `[T, B, D·H]`,
/// `grad_h_n` like `h_n` `[L·D, B, H]`.
pub(crate) fn check_upstream(
    config: &GruConfig,
    steps: usize,
    batch: usize,
    grad_output: &[f32],
    grad_h_n: &[f32],
) -> Result<()> {
    let y = steps * batch * config.output_size();
    if grad_output.len() != y {
        return Err(Error::shape(
            "grad_output",
            format!(
                "{} ({y} elements)",
                if config.batch_first {
                    format!("[{batch}, {steps}, {}]", config.output_size())
                } else {
                    format!("[{steps}, {batch}, {}]", config.output_size())
                }
            ),
            format!("{} elements", grad_output.len()),
        ));
    }
    let ld = config.num_layers * config.num_directions();
    let s = ld * batch * config.hidden_size;
    if grad_h_n.len() != s {
        return Err(Error::shape(
            "grad_h_n",
            format!("[{ld}, {batch}, {}] ({s} elements)", config.hidden_size),
            format!("{} elements", grad_h_n.len()),
        ));
    }
    Ok(())
}
