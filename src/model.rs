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

/// The activation after a [`Dense`] layer (Keras 3's definitions), on the CPU
/// ([`apply_rows`](Self::apply_rows)) and in the GPU head (`head.wgsl`, whose `DACT_*` codes are
/// generated from [`ALL`](Self::ALL)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseActivation {
    /// `x`.
    Linear,
    /// `e^x / Σ e^x` over the last axis.
    Softmax,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `max(0, x)`.
    Relu,
    /// Keras 3's `hard_sigmoid`: `relu6(x + 3) / 6 = clip(x / 6 + 0.5, 0, 1)`.
    HardSigmoid,
    /// `x` if `x > 0` else `e^x − 1`.
    Elu,
    /// `scale · (x if x > 0 else α(e^x − 1))`, α ≈ 1.67326, scale ≈ 1.05070.
    Selu,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `swish`/`silu`: `x · sigmoid(x)`.
    Swish,
    /// `gelu` (approximate=False): `x · Φ(x) = x/2 · (1 + erf(x/√2))`.
    Gelu,
    /// `e^x`.
    Exponential,
    /// `x − ln Σ e^x` over the last axis.
    LogSoftmax,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `leaky_relu` with Keras 3's default negative_slope 0.2: `x` if `x ≥ 0` else `0.2x`.
    LeakyRelu,
}

impl DenseActivation {
    /// Every activation, in the order of their shader codes (`code`).
    pub const ALL: [DenseActivation; 16] = [
        DenseActivation::Linear,
        DenseActivation::Softmax,
        DenseActivation::Sigmoid,
        DenseActivation::Tanh,
        DenseActivation::Relu,
        DenseActivation::HardSigmoid,
        DenseActivation::Elu,
        DenseActivation::Selu,
        DenseActivation::Softplus,
        DenseActivation::Softsign,
        DenseActivation::Swish,
        DenseActivation::Gelu,
        DenseActivation::Exponential,
        DenseActivation::LogSoftmax,
        DenseActivation::Relu6,
        DenseActivation::LeakyRelu,
    ];

    /// The shader code: the index in [`ALL`](Self::ALL).
    pub(crate) fn code(self) -> u32 {
        self as u32
    }

    /// The name of the code's WGSL constant (`DACT_SOFTMAX`).
    pub(crate) fn wgsl_const(self) -> String {
        let mut s = String::from("DACT_");
        for (i, ch) in format!("{self:?}").chars().enumerate() {
            if ch.is_ascii_uppercase() && i > 0 {
                s.push('_');
            }
            s.push(ch.to_ascii_uppercase());
        }
        s
    }

    /// Whether it acts on each row (the last axis) as a whole rather than on each value.
    pub fn is_row_wise(self) -> bool {
        matches!(self, DenseActivation::Softmax | DenseActivation::LogSoftmax)
    }

    /// Parses a Keras activation name (`None`/`"linear"` is [`DenseActivation::Linear`]).
    pub fn from_keras(name: &str) -> Result<Self> {
        Ok(match name {
            "linear" | "None" | "none" => DenseActivation::Linear,
            "softmax" => DenseActivation::Softmax,
            "sigmoid" => DenseActivation::Sigmoid,
            "tanh" => DenseActivation::Tanh,
            "relu" => DenseActivation::Relu,
            "hard_sigmoid" => DenseActivation::HardSigmoid,
            "elu" => DenseActivation::Elu,
            "selu" => DenseActivation::Selu,
            "softplus" => DenseActivation::Softplus,
            "softsign" => DenseActivation::Softsign,
            "swish" | "silu" => DenseActivation::Swish,
            "gelu" => DenseActivation::Gelu,
            "exponential" => DenseActivation::Exponential,
            "log_softmax" => DenseActivation::LogSoftmax,
            "relu6" => DenseActivation::Relu6,
            "leaky_relu" => DenseActivation::LeakyRelu,
            other => {
                return Err(Error::Unsupported(format!(
                    "Keras activation {other:?}; supported: linear, softmax, sigmoid, tanh, relu, \
                     hard_sigmoid, elu, selu, softplus, softsign, swish/silu, gelu, exponential, \
                     log_softmax, relu6, leaky_relu"
                )));
            }
        })
    }

    /// Applies the activation in place to `x`, rows of `features` values; softmax and
    /// log_softmax act over each row (the last axis). A trailing partial row is treated as a
    /// row of its own; `features == 0` leaves `x` as it is for those two.
    pub fn apply_rows(&self, x: &mut [f64], features: usize) {
        match self {
            DenseActivation::Softmax | DenseActivation::LogSoftmax => {
                if features == 0 {
                    return;
                }
                for row in x.chunks_mut(features) {
                    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = row.iter().map(|&v| (v - m).exp()).sum();
                    if *self == DenseActivation::Softmax {
                        for v in row.iter_mut() {
                            *v = (*v - m).exp() / sum;
                        }
                    } else {
                        let lse = m + sum.ln();
                        for v in row.iter_mut() {
                            *v -= lse;
                        }
                    }
                }
            }
            _ => {
                for v in x.iter_mut() {
                    *v = self.scalar(*v);
                }
            }
        }
    }

    fn scalar(&self, x: f64) -> f64 {
        const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
        const SELU_SCALE: f64 = 1.050_700_987_355_480_5;
        match self {
            DenseActivation::Linear | DenseActivation::Softmax | DenseActivation::LogSoftmax => x,
            DenseActivation::Sigmoid => sigmoid(x),
            DenseActivation::Tanh => x.tanh(),
            DenseActivation::Relu => x.max(0.0),
            DenseActivation::HardSigmoid => (x / 6.0 + 0.5).clamp(0.0, 1.0),
            DenseActivation::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
            DenseActivation::Selu => SELU_SCALE * if x > 0.0 { x } else { SELU_ALPHA * x.exp_m1() },
            DenseActivation::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            DenseActivation::Softsign => x / (1.0 + x.abs()),
            DenseActivation::Swish => x * sigmoid(x),
            DenseActivation::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            DenseActivation::Exponential => x.exp(),
            DenseActivation::Relu6 => x.clamp(0.0, 6.0),
            DenseActivation::LeakyRelu => {
                if x >= 0.0 {
                    x
                } else {
                    0.2 * x
                }
            }
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `erf(x)` to about 1e-15: a Maclaurin series for |x| < 3, and the complement's continued
/// fraction beyond.
fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let r = if a < 3.0 {
        // erf(a) = 2/√π Σ (-1)^n a^(2n+1) / (n! (2n+1))
        let mut term = a;
        let mut sum = a;
        let a2 = a * a;
        let mut n = 0.0f64;
        while term.abs() > 1e-17 * sum.abs() && n < 200.0 {
            n += 1.0;
            term *= -a2 / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else if a > 6.0 {
        1.0
    } else {
        // erfc(a) = e^{-a²}/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + 2/(a + ...)))))
        let mut f = a;
        for k in (1..60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (f * std::f64::consts::PI.sqrt())
    };
    if x < 0.0 { -r } else { r }
}
