//! Keras model files read into a typed chain of layers: Keras 3 `.keras` archives (a zip of
//! `config.json`, `metadata.json` and `model.weights.h5`) and legacy Keras HDF5 `.h5` files
//! (`model.save("m.h5")`: the config in the root attribute `model_config`, the weights under
//! `model_weights/`).
//!
//! Supported: `Sequential` models, and `Functional` models that are one chain (an input layer,
//! each layer fed by the one before, one output), of `InputLayer`, `Masking`, `GRU`,
//! `Bidirectional(GRU)`, `Dense` and `Dropout` (the identity at predict, dropped here). The
//! optimizer's state in the files is ignored. HDF5 is read with the pure-Rust `hdf5-pure` crate,
//! from memory. Every failure is one typed [`Error`]; hostile files (truncated, oversized
//! declared sizes, zip bombs, cyclic HDF5 links) are refused within the bounds documented in
//! the submodules.

mod archive;
mod h5;
mod layers;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};

/// A Keras model read from a file: its name, its input's fixed sizes, and its layers in order.
#[derive(Debug, Clone)]
pub struct KerasModel {
    /// The model's name from its config.
    pub name: String,
    /// Features per step of the input, when the input shape fixes it.
    pub input_features: Option<usize>,
    /// Steps of the input, when the input shape fixes it (`None` for `Input((None, I))`).
    pub input_steps: Option<usize>,
    /// The layers from input to output (no `InputLayer`, no `Dropout`).
    pub layers: Vec<KerasLayer>,
}

/// One layer of a [`KerasModel`].
#[derive(Debug, Clone)]
pub enum KerasLayer {
    /// `Masking(mask_value)`: a step is masked when every one of its features equals
    /// `mask_value`.
    Masking {
        /// The value that marks padding.
        mask_value: f32,
    },
    /// A GRU layer; `gru` is the canonical crate::Gru with config.batch_first = true,
    /// go_backwards set from the config, num_layers 1, direction Forward.
    Gru {
        /// The layer's name.
        name: String,
        /// The layer as a canonical GRU.
        gru: crate::Gru,
        /// Whether the layer returns every step (`[B, T, H]`) or only the last (`[B, H]`).
        return_sequences: bool,
    },
    /// Bidirectional(GRU): `gru` has Direction::Bidirectional (cell 0 = forward layer, cell 1 =
    /// backward layer), batch_first = true.
    Bidirectional {
        /// The wrapper's name.
        name: String,
        /// Both directions as one canonical bidirectional GRU (go_backwards not set: direction
        /// slot 1 runs reversed over the sequence).
        gru: crate::Gru,
        /// How the two directions' outputs are merged.
        merge_mode: MergeMode,
        /// Whether the layer returns every step or only the final states.
        return_sequences: bool,
    },
    /// `dense` is crate::model::Dense in PyTorch layout: weight `[out, in]` (the Keras kernel
    /// `[in, out]` transposed), bias `[out]` (zeros when use_bias=False).
    Dense {
        /// The layer's name.
        name: String,
        /// The affine map.
        dense: crate::model::Dense,
        /// The activation applied after it.
        activation: KerasActivation,
    },
}

/// How `Bidirectional` merges its forward and backward outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeMode {
    /// `[forward, backward]` on the last axis, forward first.
    Concat,
    /// `forward + backward`.
    Sum,
    /// `(forward + backward) / 2`.
    Ave,
    /// `forward * backward`.
    Mul,
    /// `merge_mode=None`: two outputs. [`read`] refuses it; the variant exists to name it.
    None,
}

impl MergeMode {
    /// Parses Keras's `merge_mode` (`None`/`null` gives [`MergeMode::None`]).
    pub fn from_keras(name: Option<&str>) -> Result<Self> {
        Ok(match name {
            Some("concat") => MergeMode::Concat,
            Some("sum") => MergeMode::Sum,
            Some("ave") => MergeMode::Ave,
            Some("mul") => MergeMode::Mul,
            None => MergeMode::None,
            Some(other) => {
                return Err(Error::Unsupported(format!(
                    "Bidirectional merge_mode {other:?}; supported: concat, sum, ave, mul"
                )));
            }
        })
    }
}

/// A Keras activation of a `Dense` layer (Keras 3 semantics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KerasActivation {
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

impl KerasActivation {
    /// Parses a Keras activation name (`None`/`"linear"` is [`KerasActivation::Linear`]).
    pub fn from_keras(name: &str) -> Result<Self> {
        Ok(match name {
            "linear" | "None" | "none" => KerasActivation::Linear,
            "softmax" => KerasActivation::Softmax,
            "sigmoid" => KerasActivation::Sigmoid,
            "tanh" => KerasActivation::Tanh,
            "relu" => KerasActivation::Relu,
            "hard_sigmoid" => KerasActivation::HardSigmoid,
            "elu" => KerasActivation::Elu,
            "selu" => KerasActivation::Selu,
            "softplus" => KerasActivation::Softplus,
            "softsign" => KerasActivation::Softsign,
            "swish" | "silu" => KerasActivation::Swish,
            "gelu" => KerasActivation::Gelu,
            "exponential" => KerasActivation::Exponential,
            "log_softmax" => KerasActivation::LogSoftmax,
            "relu6" => KerasActivation::Relu6,
            "leaky_relu" => KerasActivation::LeakyRelu,
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
            KerasActivation::Softmax | KerasActivation::LogSoftmax => {
                if features == 0 {
                    return;
                }
                for row in x.chunks_mut(features) {
                    let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let sum: f64 = row.iter().map(|&v| (v - m).exp()).sum();
                    if *self == KerasActivation::Softmax {
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
            KerasActivation::Linear | KerasActivation::Softmax | KerasActivation::LogSoftmax => x,
            KerasActivation::Sigmoid => sigmoid(x),
            KerasActivation::Tanh => x.tanh(),
            KerasActivation::Relu => x.max(0.0),
            KerasActivation::HardSigmoid => (x / 6.0 + 0.5).clamp(0.0, 1.0),
            KerasActivation::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
            KerasActivation::Selu => SELU_SCALE * if x > 0.0 { x } else { SELU_ALPHA * x.exp_m1() },
            KerasActivation::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            KerasActivation::Softsign => x / (1.0 + x.abs()),
            KerasActivation::Swish => x * sigmoid(x),
            KerasActivation::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            KerasActivation::Exponential => x.exp(),
            KerasActivation::Relu6 => x.clamp(0.0, 6.0),
            KerasActivation::LeakyRelu => {
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

/// Whether `bytes` is a zip archive whose entries include `config.json` and `model.weights.h5`
/// (a Keras 3 `.keras` file).
pub fn is_keras_zip(bytes: &[u8]) -> bool {
    archive::is_keras_zip(bytes)
}

/// Whether `bytes` starts with the HDF5 signature `\x89HDF\r\n\x1a\n` (at 0, or after a user
/// block at 512, 1024, 2048, …).
pub fn is_hdf5(bytes: &[u8]) -> bool {
    h5::is_hdf5(bytes)
}

/// Reads a Keras 3 `.keras` file or a legacy Keras `.h5` file, told apart by its bytes; `name`
/// is used in error messages.
pub fn read(bytes: &[u8], name: &str) -> Result<KerasModel> {
    if is_keras_zip(bytes) {
        let z = archive::open(bytes, name)?;
        let config: serde_json::Value = serde_json::from_str(&z.config)
            .map_err(|e| archive::parse_err(name, format!("config.json is not JSON: {e}")))?;
        let weights_name = format!("{name}: model.weights.h5");
        let file = h5::H5::open(z.weights, &weights_name)?;
        layers::build(&config, &layers::Weights::Keras3(&file), name)
    } else if is_hdf5(bytes) {
        let file = h5::H5::open(bytes.to_vec(), name)?;
        let Some(text) = file.attr_string("/", "model_config")? else {
            return Err(archive::parse_err(
                name,
                "an HDF5 file without the model_config attribute: not a whole Keras model \
                 (model.save(\"m.h5\")); a weights-only file (save_weights) cannot be read alone",
            ));
        };
        if text.len() as u64 > archive::MAX_CONFIG_BYTES {
            return Err(archive::parse_err(
                name,
                "model_config is larger than 16 MiB",
            ));
        }
        let config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| archive::parse_err(name, format!("model_config is not JSON: {e}")))?;
        let legacy = layers::Legacy::open(&file, name)?;
        layers::build(&config, &layers::Weights::Legacy(&file, &legacy), name)
    } else {
        Err(archive::parse_err(
            name,
            "neither a Keras 3 .keras archive (a zip with config.json and model.weights.h5) \
             nor an HDF5 file",
        ))
    }
}
