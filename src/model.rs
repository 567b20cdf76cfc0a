//! A small sequence classifier: [`Gru`] → [`Dense`] → softmax.
//!
//! [`GruClassifier`] runs the GRU, takes the last layer's final state (the forward
//! direction's, or the only direction's) `[B, H]`, applies a [`Dense`] layer `[B, C]` and a
//! softmax over the `C` classes. It is the seed model `GRU(128, tanh) → Dense(10) → softmax`
//! that `scripts/train_digits.py` trains and exports to `assets/digits_gru.safetensors`.

use crate::io::{Batch, Steps};
use std::path::Path;

use crate::error::{Error, Result};
use crate::formats::{self, Format, ImportOptions, SafetensorsFile};
use crate::io::SeqInput;
use crate::reference;
use crate::weights::Gru;

/// A fully connected layer `y = x·Wᵀ + b` (PyTorch's `nn.Linear` layout).
///
/// - `weight`: `[out_features, in_features]`, row-major;
/// - `bias`: `[out_features]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// Input features per row.
    pub in_features: usize,
    /// Output features per row.
    pub out_features: usize,
    /// Weights `[out_features, in_features]`, row-major.
    pub weight: Vec<f32>,
    /// Bias `[out_features]`.
    pub bias: Vec<f32>,
}

impl Dense {
    /// Builds and validates a layer; `weight` is `[out_features, in_features]`, `bias` `[out_features]`.
    pub fn new(
        in_features: usize,
        out_features: usize,
        weight: Vec<f32>,
        bias: Vec<f32>,
    ) -> Result<Self> {
        let d = Dense {
            in_features,
            out_features,
            weight,
            bias,
        };
        d.validate()?;
        Ok(d)
    }

    /// Checks that both sizes are at least 1 and the tensors' lengths match them.
    pub fn validate(&self) -> Result<()> {
        if self.in_features == 0 || self.out_features == 0 {
            return Err(Error::InvalidConfig(format!(
                "dense sizes must be at least 1, got in {} out {}",
                self.in_features, self.out_features
            )));
        }
        let n = self
            .in_features
            .checked_mul(self.out_features)
            .ok_or_else(|| {
                Error::Overflow(format!(
                    "dense.weight = [{}, {}]",
                    self.out_features, self.in_features
                ))
            })?;
        if self.weight.len() != n {
            return Err(Error::shape(
                "dense.weight",
                format!(
                    "[{}, {}] ({n} elements)",
                    self.out_features, self.in_features
                ),
                format!("{} elements", self.weight.len()),
            ));
        }
        if self.bias.len() != self.out_features {
            return Err(Error::shape(
                "dense.bias",
                format!("[{}]", self.out_features),
                format!("[{}]", self.bias.len()),
            ));
        }
        Ok(())
    }

    /// Applies the layer in f64: `x` is `[B, in_features]`, the result `[B, out_features]`.
    pub fn forward_f64(&self, x: &[f64]) -> Result<Vec<f64>> {
        self.validate()?;
        if !x.len().is_multiple_of(self.in_features) {
            return Err(Error::shape(
                "dense input",
                format!("[B, {}]", self.in_features),
                format!("{} elements", x.len()),
            ));
        }
        let mut y = Vec::with_capacity(x.len() / self.in_features * self.out_features);
        for row in x.chunks_exact(self.in_features) {
            for (w, &b) in self.weight.chunks_exact(self.in_features).zip(&self.bias) {
                let dot: f64 = w.iter().zip(row).map(|(&a, &v)| a as f64 * v).sum();
                y.push(dot + b as f64);
            }
        }
        Ok(y)
    }
}

/// Softmax of each row of `logits` `[B, classes]`, in place, with the row maximum subtracted
/// first so large logits do not overflow. A trailing partial row is left as it is.
pub fn softmax_rows(logits: &mut [f64], classes: usize) {
    if classes == 0 {
        return;
    }
    for row in logits.chunks_exact_mut(classes) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

/// A sequence classifier: GRU → final state → [`Dense`] → softmax.
///
/// The GRU's last layer's final state for the forward direction (slot `(L−1)·D` of
/// `h_n [L·D, B, H]`; for a reverse-only GRU, its only direction) feeds the dense layer, so
/// `dense.in_features` must equal `H`. The classes are `C = dense.out_features`.
#[derive(Debug, Clone, PartialEq)]
pub struct GruClassifier {
    /// The recurrent layer(s).
    pub gru: Gru,
    /// The classifier head, `[C, H]`.
    pub dense: Dense,
}

impl GruClassifier {
    /// Validates both parts and that `dense.in_features` equals the GRU's hidden size `H`.
    pub fn new(gru: Gru, dense: Dense) -> Result<Self> {
        let c = GruClassifier { gru, dense };
        c.validate()?;
        Ok(c)
    }

    /// Checks the GRU, the dense layer, and that they fit together.
    pub fn validate(&self) -> Result<()> {
        self.gru.validate()?;
        self.dense.validate()?;
        if self.dense.in_features != self.gru.config.hidden_size {
            return Err(Error::shape(
                "dense.in_features",
                format!("{} (the GRU's hidden size)", self.gru.config.hidden_size),
                self.dense.in_features,
            ));
        }
        Ok(())
    }

    /// Number of classes `C`.
    pub fn num_classes(&self) -> usize {
        self.dense.out_features
    }

    /// Reads a classifier from a safetensors file (see [`GruClassifier::from_file`]).
    pub fn from_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file(&SafetensorsFile::open(path)?)
    }

    /// Reads a classifier from the bytes of a safetensors file (see [`GruClassifier::from_file`]).
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_file(&SafetensorsFile::from_bytes(bytes.to_vec(), "<bytes>")?)
    }

    /// Reads a classifier from a safetensors file holding (as F32, F16, BF16 or F64):
    ///
    /// - a PyTorch `nn.GRU` state dict under `nn.GRU`'s own, unprefixed names (`weight_ih_l{k}`
    ///   `[3H, I_k]`, `weight_hh_l{k}` `[3H, H]`, optional `bias_ih_l{k}`, `bias_hh_l{k}` `[3H]`,
    ///   `_reverse` twins when bidirectional), read by [`crate::formats`]' PyTorch importer;
    /// - `dense.weight` `[C, H]` and `dense.bias` `[C]` (or `fc.weight`, `fc.bias`).
    ///
    /// The GRU is read as `batch_first`, as `scripts/train_digits.py` trains it, so
    /// [`GruClassifier::reference_forward`] takes `x` as `[B, T, I]`.
    pub fn from_file(file: &SafetensorsFile) -> Result<Self> {
        let opts = ImportOptions {
            batch_first: true,
            ..ImportOptions::default()
        };
        let gru = formats::import(file, Some(Format::PyTorch), &opts)?.gru;
        let head = if file.contains("dense.weight") {
            "dense"
        } else {
            "fc"
        };
        let w = file.require_f32(&format!("{head}.weight"), "classifier head")?;
        let b = file.require_f32(&format!("{head}.bias"), "classifier head")?;
        let [out_features, in_features] = w.shape[..] else {
            return Err(Error::shape(
                format!("{head}.weight in {}", file.name()),
                "[C, H]",
                format!("{:?}", w.shape),
            ));
        };
        let dense = Dense::new(in_features, out_features, w.data, b.data)?;
        GruClassifier::new(gru, dense)
    }

    /// Class probabilities `[B, C]`, computed by [`reference::forward`] and an f64 dense layer
    /// and softmax, rounded to f32.
    ///
    /// `x` is `[B, T, I]` when `gru.config.batch_first` (as read by
    /// [`GruClassifier::from_safetensors`]), `[T, B, I]` otherwise.
    pub fn reference_forward(&self, x: &[f32], steps: Steps, batch: Batch) -> Result<Vec<f32>> {
        let (steps, batch) = (steps.0, batch.0);
        self.validate()?;
        let c = &self.gru.config;
        let out = reference::forward(&self.gru, &SeqInput::new(x, Steps(steps), Batch(batch)))?;
        let h = c.hidden_size;
        let slot = (c.num_layers - 1) * c.num_directions();
        let start = slot * batch * h;
        let last = out.h_n.get(start..start + batch * h).ok_or_else(|| {
            Error::shape(
                "h_n",
                format!("[{}, {batch}, {h}]", slot + 1),
                out.h_n.len(),
            )
        })?;
        let state: Vec<f64> = last.iter().map(|&v| v as f64).collect();
        let mut logits = self.dense.forward_f64(&state)?;
        softmax_rows(&mut logits, self.num_classes());
        Ok(logits.into_iter().map(|v| v as f32).collect())
    }

    /// The most probable class of each row of `probs` `[B, C]` (the first on ties; a trailing
    /// partial row is ignored).
    pub fn predict(&self, probs: &[f32]) -> Vec<usize> {
        argmax_rows(probs, self.num_classes())
    }
}

/// The index of the largest value in each row of `values` `[B, classes]` (the first on ties;
/// NaNs never win; a trailing partial row is ignored).
pub fn argmax_rows(values: &[f32], classes: usize) -> Vec<usize> {
    if classes == 0 {
        return Vec::new();
    }
    values
        .chunks_exact(classes)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
                    best = i;
                }
            }
            best
        })
        .collect()
}
