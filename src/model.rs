//! A small sequence classifier: [`Gru`] → [`Dense`] → softmax.
//!
//! [`GruClassifier`] runs the GRU, takes the last layer's final state (the forward
//! direction's, or the only direction's) `[B, H]`, applies a [`Dense`] layer `[B, C]` and a
//! softmax over the `C` classes. It is the seed model `GRU(128, tanh) → Dense(10) → softmax`
//! that `scripts/train_digits.py` trains and exports to `assets/digits_gru.safetensors`.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::config::{Direction, GruConfig};
use crate::error::{Error, Result};
use crate::io::SeqInput;
use crate::reference;
use crate::weights::{CellWeights, Gru, GruWeights};

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

    /// Reads a classifier from a safetensors file (see [`GruClassifier::from_safetensors_bytes`]).
    pub fn from_safetensors(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_safetensors_bytes(&bytes)
    }

    /// Reads a classifier from safetensors bytes holding f32 tensors:
    ///
    /// - a PyTorch `nn.GRU` state dict, under its own names (`weight_ih_l{k}` `[3H, I_k]`,
    ///   `weight_hh_l{k}` `[3H, H]`, optional `bias_ih_l{k}`, `bias_hh_l{k}` `[3H]`, and `_reverse`
    ///   twins when bidirectional), optionally prefixed with `gru.`;
    /// - `dense.weight` `[C, H]` and `dense.bias` `[C]` (or `fc.weight`, `fc.bias`).
    ///
    /// The GRU is read as `batch_first`, as `scripts/train_digits.py` trains it, so
    /// [`GruClassifier::reference_forward`] takes `x` as `[B, T, I]`.
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::Parse {
            what: "safetensors".into(),
            reason: e.to_string(),
        })?;
        let names = st.names();
        let has = |n: &str| names.contains(&n);
        let prefix = if has("weight_ih_l0") {
            ""
        } else if has("gru.weight_ih_l0") {
            "gru."
        } else {
            return Err(Error::MissingTensor {
                name: "weight_ih_l0".into(),
                context: "PyTorch nn.GRU state dict (optionally prefixed gru.)".into(),
            });
        };
        let mut gru = read_pytorch_gru(&st, prefix, &has)?;
        gru.config.batch_first = true;
        let head = if has("dense.weight") { "dense" } else { "fc" };
        let (weight, wshape) = read_f32(&st, &format!("{head}.weight"))?;
        let (bias, _) = read_f32(&st, &format!("{head}.bias"))?;
        let [out_features, in_features] = wshape[..] else {
            return Err(Error::shape(
                format!("{head}.weight"),
                "[C, H]",
                format!("{wshape:?}"),
            ));
        };
        let dense = Dense::new(in_features, out_features, weight, bias)?;
        GruClassifier::new(gru, dense)
    }

    /// Class probabilities `[B, C]`, computed by [`reference::forward`] and an f64 dense layer
    /// and softmax, rounded to f32.
    ///
    /// `x` is `[B, T, I]` when `gru.config.batch_first` (as read by
    /// [`GruClassifier::from_safetensors`]), `[T, B, I]` otherwise.
    pub fn reference_forward(&self, x: &[f32], batch: usize, steps: usize) -> Result<Vec<f32>> {
        self.validate()?;
        let c = &self.gru.config;
        let out = reference::forward(&self.gru, &SeqInput::new(x, steps, batch))?;
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

/// Reads an f32 tensor and its shape.
fn read_f32(st: &SafeTensors<'_>, name: &str) -> Result<(Vec<f32>, Vec<usize>)> {
    let t = st.tensor(name).map_err(|_| Error::MissingTensor {
        name: name.into(),
        context: "GRU classifier safetensors".into(),
    })?;
    if t.dtype() != Dtype::F32 {
        return Err(Error::UnsupportedDtype {
            name: name.into(),
            dtype: format!("{:?}", t.dtype()),
        });
    }
    let data = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((data, t.shape().to_vec()))
}

/// Reads an `nn.GRU` state dict (names after `prefix`) into a reset-after [`Gru`].
fn read_pytorch_gru(st: &SafeTensors<'_>, prefix: &str, has: &dyn Fn(&str) -> bool) -> Result<Gru> {
    let bidir = has(&format!("{prefix}weight_ih_l0_reverse"));
    let mut layers = Vec::new();
    let mut sizes: Option<(usize, usize)> = None; // (input_size, hidden)
    while has(&format!("{prefix}weight_ih_l{}", layers.len())) {
        let k = layers.len();
        let mut dirs = Vec::new();
        for suffix in if bidir {
            &["", "_reverse"][..]
        } else {
            &[""][..]
        } {
            let name = |w: &str| format!("{prefix}{w}_l{k}{suffix}");
            let (w_ih, s_ih) = read_f32(st, &name("weight_ih"))?;
            let (w_hh, s_hh) = read_f32(st, &name("weight_hh"))?;
            let [g3, i] = s_ih[..] else {
                return Err(Error::shape(
                    name("weight_ih"),
                    "[3H, I]",
                    format!("{s_ih:?}"),
                ));
            };
            if g3 == 0 || !g3.is_multiple_of(3) {
                return Err(Error::shape(
                    name("weight_ih"),
                    "[3H, I]",
                    format!("{s_ih:?}"),
                ));
            }
            let h = g3 / 3;
            if s_hh[..] != [g3, h] {
                return Err(Error::shape(
                    name("weight_hh"),
                    format!("[{g3}, {h}]"),
                    format!("{s_hh:?}"),
                ));
            }
            if k == 0 && sizes.is_none() {
                sizes = Some((i, h));
            }
            let bias = |b: &str| -> Result<Vec<f32>> {
                if has(&name(b)) {
                    Ok(read_f32(st, &name(b))?.0)
                } else {
                    Ok(vec![0.0; g3])
                }
            };
            dirs.push(CellWeights {
                w_ih,
                w_hh,
                b_ih: bias("bias_ih")?,
                b_hh: bias("bias_hh")?,
            });
        }
        layers.push(dirs);
    }
    let (input_size, hidden) = sizes.ok_or_else(|| Error::MissingTensor {
        name: format!("{prefix}weight_ih_l0"),
        context: "PyTorch nn.GRU state dict".into(),
    })?;
    let direction = if bidir {
        Direction::Bidirectional
    } else {
        Direction::Forward
    };
    let config = GruConfig::new(input_size, hidden)
        .with_layers(layers.len())
        .with_direction(direction);
    // Gru::new checks every later layer's and direction's shapes against the config.
    Gru::new(config, GruWeights { layers })
}
