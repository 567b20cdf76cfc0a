//! [`SeqInput`] and [`GruOutput`]: what every path takes and returns.

use crate::config::GruConfig;
use crate::error::{Error, Result};

/// One forward's inputs.
///
/// - `x`: `[T, B, I]`, or `[B, T, I]` when the config is `batch_first`;
/// - `h0`: `[L·D, B, H]`, zeros when `None`;
/// - `lengths`: `[B]` valid steps per row, each in `1..=T`; all `T` when `None`.
///
/// Every path checks these shapes (and that `T·B·I` and the output size do not overflow) before
/// any work, and refuses bad ones with a typed [`Error`].
///
/// **Empty problems.** `T = 0` or `B = 0` are not errors: `output` is empty, and `h_n` is the
/// state after no steps — `h0`, or zeros without one. (With `T = 0` no length is valid, so
/// `lengths` must be `None`, or empty when `B = 0`.)
///
/// **NaN and infinities** are not checked for: they go through the IEEE arithmetic, as in
/// PyTorch, Keras and ONNX Runtime. A NaN in row `b`'s input at step `t` makes that row's outputs
/// NaN from step `t` on (in its processing order) and its `h_n` NaN; the other rows are not
/// affected, and padding past a row's length is never read, so garbage there is harmless. A NaN
/// in `h0` poisons its row, and one in the weights every row. ±∞ are ordinary values: the
/// saturating activations map them to their limits, and `∞ − ∞` or `0·∞` give NaN.
#[derive(Debug, Clone, Copy)]
pub struct SeqInput<'a> {
    /// Input sequence.
    pub x: &'a [f32],
    /// Steps `T`.
    pub steps: usize,
    /// Batch `B`.
    pub batch: usize,
    /// Initial state.
    pub h0: Option<&'a [f32]>,
    /// Per-row lengths.
    pub lengths: Option<&'a [usize]>,
}

impl<'a> SeqInput<'a> {
    /// An input with zero initial state and full lengths.
    pub fn new(x: &'a [f32], steps: usize, batch: usize) -> Self {
        SeqInput {
            x,
            steps,
            batch,
            h0: None,
            lengths: None,
        }
    }
    /// Sets `h0`, `[L·D, B, H]`.
    pub fn with_h0(mut self, h0: &'a [f32]) -> Self {
        self.h0 = Some(h0);
        self
    }
    /// Sets per-row lengths `[B]`.
    pub fn with_lengths(mut self, lengths: &'a [usize]) -> Self {
        self.lengths = Some(lengths);
        self
    }

    /// Checks every shape against `config`. `T = 0` or `B = 0` are allowed and give empty outputs.
    pub fn validate(&self, config: &GruConfig) -> Result<()> {
        let (t, b) = (self.steps, self.batch);
        let n = t
            .checked_mul(b)
            .and_then(|v| v.checked_mul(config.input_size))
            .ok_or_else(|| Error::Overflow(format!("x = [{t}, {b}, {}]", config.input_size)))?;
        t.checked_mul(b)
            .and_then(|v| v.checked_mul(config.output_size()))
            .ok_or_else(|| {
                Error::Overflow(format!("output = [{t}, {b}, {}]", config.output_size()))
            })?;
        if t > u32::MAX as usize / 2 || b > u32::MAX as usize / 2 {
            return Err(Error::Overflow(format!("steps {t} or batch {b}")));
        }
        if self.x.len() != n {
            let shape = if config.batch_first {
                format!("[{b}, {t}, {}]", config.input_size)
            } else {
                format!("[{t}, {b}, {}]", config.input_size)
            };
            return Err(Error::shape(
                "x",
                format!("{shape} ({n} elements)"),
                format!("{} elements", self.x.len()),
            ));
        }
        if let Some(h0) = self.h0 {
            let ld = config.num_layers * config.num_directions();
            let e = ld * b * config.hidden_size;
            if h0.len() != e {
                return Err(Error::shape(
                    "h0",
                    format!("[{ld}, {b}, {}] ({e} elements)", config.hidden_size),
                    format!("{} elements", h0.len()),
                ));
            }
        }
        if let Some(len) = self.lengths {
            if len.len() != b {
                return Err(Error::shape(
                    "lengths",
                    format!("[{b}]"),
                    format!("[{}]", len.len()),
                ));
            }
            if let Some((i, &l)) = len.iter().enumerate().find(|&(_, &l)| l == 0 || l > t) {
                return Err(Error::arg(
                    "lengths",
                    format!("lengths[{i}] = {l} is outside 1..={t}"),
                ));
            }
            if config.go_backwards {
                return Err(Error::arg(
                    "lengths",
                    "go_backwards does not take per-row lengths",
                ));
            }
        }
        Ok(())
    }
}

/// One forward's results.
#[derive(Debug, Clone, PartialEq)]
pub struct GruOutput {
    /// `[T, B, D·H]` (`[B, T, D·H]` when `batch_first`); zeros past each row's length.
    pub output: Vec<f32>,
    /// `[L·D, B, H]`: each row's state after its last valid step.
    pub h_n: Vec<f32>,
}

impl GruOutput {
    /// Largest absolute difference between two outputs (output and state), `∞` if shapes differ.
    pub fn max_abs_diff(&self, other: &GruOutput) -> f32 {
        crate::max_abs_diff(&self.output, &other.output)
            .max(crate::max_abs_diff(&self.h_n, &other.h_n))
    }
}
