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

use crate::io::{Batch, Steps};
use std::collections::HashMap;

use crate::config::{Activation, GruConfig, Variant};
use crate::error::{Error, Result};
use crate::formats::{Format, FrameworkShapes};
use crate::weights::{CellWeights, GruWeights};

#[cfg(doc)]
use crate::io::SeqInput;

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

/// A tensor under a framework's name and shape (row-major `f32`).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// The framework's name (`weight_ih_l0`, `kernel`, `W`, `W_z`, …).
    pub name: String,
    /// Shape, outermost axis first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements.
    pub data: Vec<f32>,
}

impl NamedTensor {
    fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Self {
        NamedTensor {
            name: name.into(),
            shape,
            data,
        }
    }
}

/// Canonical gate block (r, z, n) → Keras/ONNX gate block (z, r, h).
const TO_ZRH: [usize; 3] = [1, 0, 2];

/// Canonical `[3H, cols]` (row blocks r, z, n) → Keras `[cols, 3H]` (column blocks z, r, h).
fn keras_matrix(src: &[f32], cols: usize, hidden: usize) -> Vec<f32> {
    let mut out = vec![0.0; src.len()];
    for (g, &kg) in TO_ZRH.iter().enumerate() {
        for j in 0..hidden {
            for i in 0..cols {
                out[i * 3 * hidden + kg * hidden + j] = src[(g * hidden + j) * cols + i];
            }
        }
    }
    out
}

/// Canonical `[3H, cols]` (row blocks r, z, n) → row blocks z, r, h (a `[3H]` vector with
/// `cols = 1`).
fn zrh_rows(src: &[f32], cols: usize, hidden: usize) -> Vec<f32> {
    let block = hidden * cols;
    let mut out = vec![0.0; 3 * block];
    for (g, &og) in TO_ZRH.iter().enumerate() {
        out[og * block..(og + 1) * block].copy_from_slice(&src[g * block..(g + 1) * block]);
    }
    out
}

fn bad_layout(format: Format, config: &GruConfig, why: &str) -> Error {
    Error::arg(
        format!("{format} layout"),
        format!(
            "{why} (the model has {} layer(s), direction {:?})",
            config.num_layers, config.direction
        ),
    )
}

/// Canonical weights (or gradients) → the tensors of `format`'s layout, under its names: the
/// inverse of the importer's conversion.
///
/// Every importer maps tensors by transposes, gate-block permutations and sign flips (the seed's
/// z), so the same map takes gradients to the framework's layout: pass a
/// [`Gradients::weights`] to get `dL/d<tensor>` for every tensor of the file.
///
/// | format | tensors |
/// |---|---|
/// | PyTorch | `weight_ih_l{k}[_reverse]` `[3H, I_k]`, `weight_hh_l{k}[_reverse]` `[3H, H]`, `bias_ih_l{k}[_reverse]`, `bias_hh_l{k}[_reverse]` `[3H]` |
/// | Keras | `kernel` `[I, 3H]`, `recurrent_kernel` `[H, 3H]`, `bias` `[2, 3H]` (reset-after) or `[3H]` (reset-before: the input bias) |
/// | ONNX | `W` `[D, 3H, I]`, `R` `[D, 3H, H]`, `B` `[D, 6H]` |
/// | seed | `W_z`, `W_r`, `W_h` `[H, H+I]` over `[h, x]`, `b_z`, `b_r`, `b_h` `[H]` (z negated) |
///
/// Bias tensors are always listed; a file without them (PyTorch `bias=False`) keeps only the
/// names it has. Where the layout has no tensor for a canonical one (the recurrent bias of the
/// seed and of Keras reset-before), that canonical tensor is a constant zero of the model and is
/// left out. Refuses configs the layout cannot hold (several layers or two directions outside
/// PyTorch and ONNX, several layers in ONNX).
pub fn export_weights(
    format: Format,
    config: &GruConfig,
    weights: &GruWeights,
) -> Result<Vec<NamedTensor>> {
    crate::weights::Gru {
        config: config.clone(),
        weights: weights.clone(),
    }
    .validate()?;
    let (h, i) = (config.hidden_size, config.input_size);
    let one_cell = || -> Result<&CellWeights> {
        match weights.layers.as_slice() {
            [dirs] if dirs.len() == 1 => Ok(&dirs[0]),
            _ => Err(bad_layout(
                format,
                config,
                "the layout holds one layer, one direction",
            )),
        }
    };
    let mut out = Vec::new();
    match format {
        Format::PyTorch => {
            for (l, dirs) in weights.layers.iter().enumerate() {
                let in_l = config.layer_input_size(l);
                for (d, c) in dirs.iter().enumerate() {
                    let sfx = if d == 1 { "_reverse" } else { "" };
                    out.push(NamedTensor::new(
                        format!("weight_ih_l{l}{sfx}"),
                        vec![3 * h, in_l],
                        c.w_ih.clone(),
                    ));
                    out.push(NamedTensor::new(
                        format!("weight_hh_l{l}{sfx}"),
                        vec![3 * h, h],
                        c.w_hh.clone(),
                    ));
                    out.push(NamedTensor::new(
                        format!("bias_ih_l{l}{sfx}"),
                        vec![3 * h],
                        c.b_ih.clone(),
                    ));
                    out.push(NamedTensor::new(
                        format!("bias_hh_l{l}{sfx}"),
                        vec![3 * h],
                        c.b_hh.clone(),
                    ));
                }
            }
        }
        Format::Keras => {
            let c = one_cell()?;
            out.push(NamedTensor::new(
                "kernel",
                vec![i, 3 * h],
                keras_matrix(&c.w_ih, i, h),
            ));
            out.push(NamedTensor::new(
                "recurrent_kernel",
                vec![h, 3 * h],
                keras_matrix(&c.w_hh, h, h),
            ));
            let bi = keras_matrix(&c.b_ih, 1, h);
            match config.variant {
                Variant::ResetAfter => {
                    let mut b = bi;
                    b.extend(keras_matrix(&c.b_hh, 1, h));
                    out.push(NamedTensor::new("bias", vec![2, 3 * h], b));
                }
                Variant::ResetBefore => out.push(NamedTensor::new("bias", vec![3 * h], bi)),
            }
        }
        Format::Onnx => {
            let [dirs] = weights.layers.as_slice() else {
                return Err(bad_layout(
                    format,
                    config,
                    "an ONNX GRU node holds one layer",
                ));
            };
            let d_n = dirs.len();
            let (mut w, mut r, mut b) = (Vec::new(), Vec::new(), Vec::new());
            for c in dirs {
                w.extend(zrh_rows(&c.w_ih, i, h));
                r.extend(zrh_rows(&c.w_hh, h, h));
                b.extend(zrh_rows(&c.b_ih, 1, h));
                b.extend(zrh_rows(&c.b_hh, 1, h));
            }
            out.push(NamedTensor::new("W", vec![d_n, 3 * h, i], w));
            out.push(NamedTensor::new("R", vec![d_n, 3 * h, h], r));
            out.push(NamedTensor::new("B", vec![d_n, 6 * h], b));
        }
        Format::Seed => {
            let c = one_cell()?;
            let cols = h + i;
            // (name, canonical gate block, sign)
            for (name, bname, g, sign) in [
                ("W_z", "b_z", 1, -1.0f32),
                ("W_r", "b_r", 0, 1.0),
                ("W_h", "b_h", 2, 1.0),
            ] {
                let mut m = vec![0.0; h * cols];
                let mut bias = vec![0.0; h];
                for j in 0..h {
                    let row = g * h + j;
                    for k in 0..h {
                        m[j * cols + k] = sign * c.w_hh[row * h + k];
                    }
                    for k in 0..i {
                        m[j * cols + h + k] = sign * c.w_ih[row * i + k];
                    }
                    bias[j] = sign * c.b_ih[row];
                }
                out.push(NamedTensor::new(name, vec![h, cols], m));
                out.push(NamedTensor::new(bname, vec![h], bias));
            }
        }
    }
    Ok(out)
}

/// A backward's gradients in `format`'s layout, as `wgpu-gru grad` writes them:
///
/// - `input`: dL/dX, shaped like the framework's X (see [`FrameworkShapes::x_shape`]);
/// - `h0`: dL/dh0, shaped like the framework's h0 ([`FrameworkShapes::h0_shape`]);
/// - every weight tensor of [`export_weights`], under its own name and shape.
///
/// `steps` and `batch` are T and B of the backward that produced `grads` with `config`.
pub fn export_grads(
    format: Format,
    config: &GruConfig,
    steps: usize,
    batch: usize,
    grads: &Gradients,
) -> Result<Vec<NamedTensor>> {
    let shapes = FrameworkShapes::new(format, config)?;
    let x_shape = shapes.x_shape(Steps(steps), Batch(batch));
    if grads.input.len() != x_shape.iter().product::<usize>() {
        return Err(Error::shape(
            "grad input",
            format!("{x_shape:?}"),
            format!("{} elements", grads.input.len()),
        ));
    }
    let mut out = vec![
        NamedTensor::new("input", x_shape, grads.input.clone()),
        NamedTensor::new(
            "h0",
            shapes.h0_shape(batch),
            shapes.state_to_framework(batch, &grads.h0)?,
        ),
    ];
    out.extend(export_weights(format, config, &grads.weights)?);
    Ok(out)
}

/// The bytes of a safetensors file holding `tensors` as F32, with optional `__metadata__`.
pub fn safetensors_bytes(
    tensors: &[NamedTensor],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    use safetensors::{Dtype, tensor::TensorView};
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map(|v| (t.name.as_str(), v))
                .map_err(|e| Error::arg(format!("tensor {}", t.name), e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, metadata).map_err(|e| Error::Parse {
        what: "safetensors output".into(),
        reason: e.to_string(),
    })
}
