//! Canonical weights and gradients back into a framework's tensors, and the safetensors bytes
//! that hold them. Each layout converts its own weights ([`Layout::export`]); this file checks
//! and frames.

use std::collections::HashMap;

use super::layout::NamedTensor;
use super::{Format, FrameworkShapes};
use crate::config::GruConfig;
use crate::error::{Error, Result};
use crate::io::{Batch, Steps};
use crate::train::Gradients;
use crate::weights::GruWeights;

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
    format.layout().export(config, weights)
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
