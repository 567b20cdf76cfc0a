//! [`GruConfig`]: sizes, layers, directions, the cell variant, activations and clip.

use crate::error::{Error, Result};

/// Where the reset gate acts (see `GRU-CONVENTIONS.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Variant {
    /// `n = g(W_n x + b_in + r ⊙ (U_n h + b_hn))`: PyTorch, cuDNN, Keras' default,
    /// ONNX `linear_before_reset=1`.
    #[default]
    ResetAfter,
    /// `n = g(W_n x + b_in + U_n (r ⊙ h) + b_hn)`: the seed's cell, ONNX's default,
    /// Keras `reset_after=False`.
    ResetBefore,
}

/// Which directions a layer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    /// Steps 0 … T−1.
    #[default]
    Forward,
    /// Steps T−1 … 0 (per row: len−1 … 0); output for step t is stored at t.
    Reverse,
    /// Forward and reverse on the same input; outputs concatenated `[.., 2H]`.
    Bidirectional,
}

impl Direction {
    /// Number of directions D (1 or 2).
    pub fn count(self) -> usize {
        match self {
            Direction::Bidirectional => 2,
            _ => 1,
        }
    }
    /// Whether direction slot `d` (0 or 1) runs backwards in time.
    pub fn is_reverse(self, d: usize) -> bool {
        matches!(
            (self, d),
            (Direction::Reverse, _) | (Direction::Bidirectional, 1)
        )
    }
}

/// An activation function, as named by ONNX.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Activation {
    /// `1 / (1 + e^-x)`.
    #[default]
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `max(0, x)`.
    Relu,
    /// `max(0, min(1, alpha·x + beta))` (ONNX defaults α = 0.2, β = 0.5).
    HardSigmoid {
        /// Slope α.
        alpha: f32,
        /// Offset β.
        beta: f32,
    },
    /// `x` if `x ≥ 0` else `alpha·x` (ONNX default α = 0.01).
    LeakyRelu {
        /// Slope α for x < 0.
        alpha: f32,
    },
    /// `x` if `x > alpha` else 0 (ONNX default α = 1).
    ThresholdedRelu {
        /// Threshold α.
        alpha: f32,
    },
    /// `alpha·tanh(beta·x)`.
    ScaledTanh {
        /// α.
        alpha: f32,
        /// β.
        beta: f32,
    },
    /// `alpha·x + beta`.
    Affine {
        /// α.
        alpha: f32,
        /// β.
        beta: f32,
    },
    /// `x` if `x ≥ 0` else `alpha·(e^x − 1)` (ONNX default α = 1).
    Elu {
        /// α.
        alpha: f32,
    },
    /// `x / (1 + |x|)`.
    Softsign,
    /// `ln(1 + e^x)`.
    Softplus,
}

/// Declares each activation kind's code once, as a Rust const and in [`ACTIVATION_CODES`] (its
/// WGSL name and value) for the shaders' generated header.
macro_rules! activation_codes {
    ($($name:ident = $v:literal),* $(,)?) => {
        mod codes {
            $(pub const $name: u32 = $v;)*
        }
        /// Every activation kind's code with its WGSL constant name, generated into each shader
        /// module's header (`prelude.wgsl`'s `act` switches on them).
        pub(crate) const ACTIVATION_CODES: &[(&str, u32)] = &[$((stringify!($name), codes::$name)),*];
    };
}

activation_codes! {
    ACT_SIGMOID = 0,
    ACT_TANH = 1,
    ACT_RELU = 2,
    ACT_HARD_SIGMOID = 3,
    ACT_LEAKY_RELU = 4,
    ACT_THRESHOLDED_RELU = 5,
    ACT_SCALED_TANH = 6,
    ACT_AFFINE = 7,
    ACT_ELU = 8,
    ACT_SOFTSIGN = 9,
    ACT_SOFTPLUS = 10,
}

impl Activation {
    /// Parses an ONNX activation name, taking α and β from `alpha`/`beta` where the
    /// function has them, and ONNX's defaults otherwise.
    pub fn from_onnx(name: &str, alpha: Option<f32>, beta: Option<f32>) -> Result<Self> {
        let a = |d: f32| alpha.unwrap_or(d);
        let b = |d: f32| beta.unwrap_or(d);
        Ok(match name.to_ascii_lowercase().as_str() {
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "relu" => Activation::Relu,
            "hardsigmoid" => Activation::HardSigmoid {
                alpha: a(0.2),
                beta: b(0.5),
            },
            "leakyrelu" => Activation::LeakyRelu { alpha: a(0.01) },
            "thresholdedrelu" => Activation::ThresholdedRelu { alpha: a(1.0) },
            "scaledtanh" => Activation::ScaledTanh {
                alpha: a(1.0),
                beta: b(1.0),
            },
            "affine" => Activation::Affine {
                alpha: a(1.0),
                beta: b(0.0),
            },
            "elu" => Activation::Elu { alpha: a(1.0) },
            "softsign" => Activation::Softsign,
            "softplus" => Activation::Softplus,
            other => {
                return Err(Error::arg(
                    "activations",
                    format!("unknown activation {other:?}"),
                ));
            }
        })
    }

    /// Whether this activation takes α and β parameters, respectively.
    pub fn takes_params(self) -> (bool, bool) {
        match self {
            Activation::HardSigmoid { .. }
            | Activation::ScaledTanh { .. }
            | Activation::Affine { .. } => (true, true),
            Activation::LeakyRelu { .. }
            | Activation::ThresholdedRelu { .. }
            | Activation::Elu { .. } => (true, false),
            _ => (false, false),
        }
    }

    /// `(kind, alpha, beta)`: the numeric code the shaders specialise on (the kinds are
    /// `ACTIVATION_CODES`, generated into every shader's header).
    pub fn code(self) -> (u32, f32, f32) {
        use codes::*;
        match self {
            Activation::Sigmoid => (ACT_SIGMOID, 0.0, 0.0),
            Activation::Tanh => (ACT_TANH, 0.0, 0.0),
            Activation::Relu => (ACT_RELU, 0.0, 0.0),
            Activation::HardSigmoid { alpha, beta } => (ACT_HARD_SIGMOID, alpha, beta),
            Activation::LeakyRelu { alpha } => (ACT_LEAKY_RELU, alpha, 0.0),
            Activation::ThresholdedRelu { alpha } => (ACT_THRESHOLDED_RELU, alpha, 0.0),
            Activation::ScaledTanh { alpha, beta } => (ACT_SCALED_TANH, alpha, beta),
            Activation::Affine { alpha, beta } => (ACT_AFFINE, alpha, beta),
            Activation::Elu { alpha } => (ACT_ELU, alpha, 0.0),
            Activation::Softsign => (ACT_SOFTSIGN, 0.0, 0.0),
            Activation::Softplus => (ACT_SOFTPLUS, 0.0, 0.0),
        }
    }

    /// Evaluates the activation in f64 (the reference's precision).
    pub fn eval(self, x: f64) -> f64 {
        match self {
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
            // f64::max would turn NaN into 0; the frameworks propagate it.
            Activation::Relu => {
                if x.is_nan() {
                    x
                } else {
                    x.max(0.0)
                }
            }
            Activation::HardSigmoid { alpha, beta } => {
                (alpha as f64 * x + beta as f64).clamp(0.0, 1.0)
            }
            Activation::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha as f64 * x
                }
            }
            Activation::ThresholdedRelu { alpha } => {
                if x > alpha as f64 {
                    x
                } else {
                    0.0
                }
            }
            Activation::ScaledTanh { alpha, beta } => alpha as f64 * (beta as f64 * x).tanh(),
            Activation::Affine { alpha, beta } => alpha as f64 * x + beta as f64,
            Activation::Elu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha as f64 * (x.exp() - 1.0)
                }
            }
            Activation::Softsign => x / (1.0 + x.abs()),
            Activation::Softplus => {
                // Stable ln(1 + e^x).
                x.max(0.0) + (-x.abs()).exp().ln_1p()
            }
        }
    }
}

/// The activations of one direction: `f` for the z and r gates, `g` for the candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Activations {
    /// Gate activation (default Sigmoid).
    pub f: Activation,
    /// Candidate activation (default Tanh).
    pub g: Activation,
}

impl Default for Activations {
    fn default() -> Self {
        Activations {
            f: Activation::Sigmoid,
            g: Activation::Tanh,
        }
    }
}

/// The shape and semantics of a (possibly stacked, possibly bidirectional) GRU.
///
/// Shapes used throughout the crate, with `T` steps, batch `B`, `D = direction.count()`:
/// - input `x`: `[T, B, I]` (`[B, T, I]` when `batch_first`);
/// - output: `[T, B, D·H]` (`[B, T, D·H]` when `batch_first`), forward then reverse on the last axis;
/// - `h0` and `h_n`: `[L·D, B, H]`, layer-major, direction-minor.
#[derive(Debug, Clone, PartialEq)]
pub struct GruConfig {
    /// Input features `I` of the first layer.
    pub input_size: usize,
    /// Hidden units `H` of every layer.
    pub hidden_size: usize,
    /// Stacked layers `L`; layer k > 0 takes `D·H` inputs.
    pub num_layers: usize,
    /// Directions of every layer.
    pub direction: Direction,
    /// Reset-after or reset-before.
    pub variant: Variant,
    /// Activations per direction (index 0 forward, 1 reverse); one entry applies to all.
    pub activations: Vec<Activations>,
    /// ONNX `clip`: every activation's input is clamped to `[-clip, clip]`.
    pub clip: Option<f32>,
    /// Keras `go_backwards`: process x reversed and return outputs in processing order.
    pub go_backwards: bool,
    /// Input and output are `[B, T, ..]` instead of `[T, B, ..]`.
    pub batch_first: bool,
}

impl GruConfig {
    /// A single-layer, forward, reset-after GRU with default activations.
    pub fn new(input_size: usize, hidden_size: usize) -> Self {
        GruConfig {
            input_size,
            hidden_size,
            num_layers: 1,
            direction: Direction::Forward,
            variant: Variant::ResetAfter,
            activations: vec![Activations::default()],
            clip: None,
            go_backwards: false,
            batch_first: false,
        }
    }

    /// Sets the variant.
    pub fn with_variant(mut self, variant: Variant) -> Self {
        self.variant = variant;
        self
    }
    /// Sets the number of layers.
    pub fn with_layers(mut self, num_layers: usize) -> Self {
        self.num_layers = num_layers;
        self
    }
    /// Sets the direction.
    pub fn with_direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// Number of directions D.
    pub fn num_directions(&self) -> usize {
        self.direction.count()
    }
    /// Input size of layer `layer`: `I` for layer 0, `D·H` after.
    pub fn layer_input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.num_directions() * self.hidden_size
        }
    }
    /// Output features per step, `D·H`.
    pub fn output_size(&self) -> usize {
        self.num_directions() * self.hidden_size
    }
    /// Activations of direction slot `d`.
    pub fn activations_for(&self, d: usize) -> Activations {
        self.activations
            .get(d)
            .or_else(|| self.activations.first())
            .copied()
            .unwrap_or_default()
    }

    /// Checks sizes and options.
    pub fn validate(&self) -> Result<()> {
        if self.hidden_size == 0 {
            return Err(Error::InvalidConfig(
                "hidden_size must be at least 1".into(),
            ));
        }
        if self.input_size == 0 {
            return Err(Error::InvalidConfig("input_size must be at least 1".into()));
        }
        if self.num_layers == 0 {
            return Err(Error::InvalidConfig("num_layers must be at least 1".into()));
        }
        if self.activations.is_empty() || self.activations.len() > self.num_directions() {
            return Err(Error::InvalidConfig(format!(
                "{} activation sets for {} direction(s)",
                self.activations.len(),
                self.num_directions()
            )));
        }
        if let Some(c) = self.clip
            && !(c.is_finite() && c > 0.0)
        {
            return Err(Error::InvalidConfig(format!(
                "clip must be finite and > 0, got {c}"
            )));
        }
        if self.go_backwards && self.direction != Direction::Forward {
            return Err(Error::InvalidConfig(
                "go_backwards needs direction Forward".into(),
            ));
        }
        // Keep every index inside u32 on the GPU and sane on the CPU.
        let h = self.hidden_size as u64;
        let i = self.input_size.max(self.output_size()) as u64;
        if h > 1 << 16 || i > 1 << 24 {
            return Err(Error::InvalidConfig(format!(
                "sizes too large: hidden_size {h}, input_size {i}"
            )));
        }
        Ok(())
    }
}

/// How a model stores its weights, on the GPU ([`GpuOptions::with_precision`]) and the CPU
/// ([`CpuGru::with_precision`]). Arithmetic and the state are f32 either way.
///
/// [`GpuOptions::with_precision`]: crate::gpu::GpuOptions::with_precision
/// [`CpuGru::with_precision`]: crate::cpu::CpuGru::with_precision
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// Weights and biases in f32.
    #[default]
    F32,
    /// W_ih, W_hh and b_hh rounded to f16; every product and sum stays in f32, as do b_ih, h and
    /// the outputs. The results are those of the model with these weights rounded to f16.
    ///
    /// On the GPU the weights are stored as f16 (read through `Features::SHADER_F16`; refused
    /// with [`Error::MissingFeature`] on a device without it): half the weight memory and
    /// bandwidth. On the CPU, W_hh is stored as f16 and widened as each step loads it, which
    /// halves the bytes a small-batch step streams from the caches; W_ih stays f32 (rounded),
    /// because its one large product per layer is bound by arithmetic, not bytes.
    F16Weights,
}
