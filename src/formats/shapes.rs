//! Conversions between each framework's array shapes and the canonical ones; what differs per
//! framework is asked of its layout ([`Layout`](super::layout::Layout)).

use super::Format;
use super::tensors::shape_str;
use crate::config::GruConfig;
use crate::error::{Error, Result};
use crate::io::{Batch, Steps};

/// The names a framework gives its inputs and outputs (as in the golden files, where the outputs
/// carry an `expected_` prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorNames {
    /// The input sequence: `input` or ONNX `X`.
    pub x: &'static str,
    /// The initial state: `h0` or ONNX `initial_h`.
    pub h0: &'static str,
    /// Per-row lengths: `lengths` or ONNX `sequence_lens`.
    pub lengths: &'static str,
    /// The output sequence: `output` or ONNX `Y`.
    pub output: &'static str,
    /// The final state: PyTorch `h_n`, Keras/seed `state`, ONNX `Y_h`.
    pub state: &'static str,
}

impl TensorNames {
    /// The names every layout uses unless it has its own (Keras, seed; PyTorch but `h_n`).
    pub const CANONICAL: TensorNames = TensorNames {
        x: "input",
        h0: "h0",
        lengths: "lengths",
        output: "output",
        state: "state",
    };
}

/// A framework's array shapes for one model, and the conversions to and from the canonical
/// [`SeqInput`](crate::SeqInput) / [`GruOutput`](crate::GruOutput) layouts.
///
/// | format | X | h0 / state | Y |
/// |---|---|---|---|
/// | PyTorch | `[T, B, I]` (`[B, T, I]` batch_first) | `[L·D, B, H]` | `[T, B, D·H]` (`[B, T, D·H]`) |
/// | Keras | `[B, T, I]` | `[B, H]` | `[B, T, H]` |
/// | ONNX | `[T, B, I]` (`[B, T, I]` layout=1) | `[L·D, B, H]` (`[B, L·D, H]`) | `[T, D, B, H]` (`[B, T, D, H]`) |
/// | seed | `[T, B, I]` | `[B, H]` | `[T, B, H]` |
///
/// X, h0 and the state have the same element order as the canonical arrays in every format
/// (only their shapes differ), except ONNX's: its layout-0 Y needs a transpose from the canonical
/// `[T, B, D·H]`, and its layout-1 states one from `[L·D, B, H]`. An ONNX stack of `L` GRU nodes
/// gives the last node's Y and every node's Y_h, concatenated along the direction axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameworkShapes {
    /// The framework.
    pub format: Format,
    /// X and Y are batch-major (PyTorch batch_first, always for Keras).
    pub batch_first: bool,
    /// Layers `L`.
    pub layers: usize,
    /// Directions `D`.
    pub directions: usize,
    /// Input features `I`.
    pub input_size: usize,
    /// Hidden units `H`.
    pub hidden_size: usize,
}

impl FrameworkShapes {
    /// The shapes of `config` in `format`'s conventions. Refuses configs the format cannot
    /// express (several layers outside PyTorch, two directions in Keras or the seed, batch-major
    /// arrays in ONNX or the seed, time-major arrays in Keras).
    pub fn new(format: Format, config: &GruConfig) -> Result<Self> {
        let (l, d) = (config.num_layers, config.num_directions());
        let bad = |why: &str| {
            Err(Error::arg(
                format!("{format} shapes"),
                format!(
                    "{why} (config has {l} layer(s), {d} direction(s), batch_first={})",
                    config.batch_first
                ),
            ))
        };
        if let Some(why) = format.layout().refuse_shapes(config) {
            return bad(why);
        }
        Ok(FrameworkShapes {
            format,
            batch_first: config.batch_first,
            layers: l,
            directions: d,
            input_size: config.input_size,
            hidden_size: config.hidden_size,
        })
    }

    /// The framework's names for its inputs and outputs.
    pub fn names(&self) -> TensorNames {
        self.format.layout().names()
    }

    fn x_pattern(&self) -> String {
        let i = self.input_size;
        if self.batch_first {
            format!("[B, T, {i}]")
        } else {
            format!("[T, B, {i}]")
        }
    }

    /// X's shape for `steps` and `batch`.
    pub fn x_shape(&self, steps: Steps, batch: Batch) -> Vec<usize> {
        let (steps, batch) = (steps.0, batch.0);
        if self.batch_first {
            vec![batch, steps, self.input_size]
        } else {
            vec![steps, batch, self.input_size]
        }
    }

    /// Reads `(steps, batch)` from X's shape, checking its rank and feature size.
    pub fn x_dims(&self, shape: &[usize]) -> Result<(Steps, Batch)> {
        match *shape {
            [a, b, i] if i == self.input_size => Ok(if self.batch_first {
                (Steps(b), Batch(a))
            } else {
                (Steps(a), Batch(b))
            }),
            _ => Err(Error::shape(
                self.names().x,
                self.x_pattern(),
                shape_str(shape),
            )),
        }
    }

    /// The initial state's (and the final state's) shape for `batch`:
    /// `[L·D, B, H]`, `[B, H]` or `[D, B, H]`.
    pub fn h0_shape(&self, batch: usize) -> Vec<usize> {
        self.format.layout().state_shape(self, batch)
    }

    /// The final state's shape for `batch` (the same as [`FrameworkShapes::h0_shape`]).
    pub fn state_shape(&self, batch: usize) -> Vec<usize> {
        self.h0_shape(batch)
    }

    /// Checks h0's shape for `batch`.
    pub fn check_h0(&self, shape: &[usize], batch: usize) -> Result<()> {
        let want = self.h0_shape(batch);
        if shape != want {
            return Err(Error::shape(
                self.names().h0,
                shape_str(&want),
                shape_str(shape),
            ));
        }
        Ok(())
    }

    /// Checks the lengths' shape, `[B]`.
    pub fn check_lengths(&self, shape: &[usize], batch: usize) -> Result<()> {
        if shape != [batch] {
            return Err(Error::shape(
                self.names().lengths,
                shape_str(&[batch]),
                shape_str(shape),
            ));
        }
        Ok(())
    }

    /// Y's shape for `steps` and `batch`.
    pub fn output_shape(&self, steps: Steps, batch: Batch) -> Vec<usize> {
        self.format.layout().output_shape(self, steps.0, batch.0)
    }

    fn check_len(&self, what: &str, shape: &[usize], len: usize) -> Result<()> {
        let n: usize = shape.iter().product();
        if n != len {
            return Err(Error::shape(
                what,
                format!("{} ({n} elements)", shape_str(shape)),
                format!("{len} elements"),
            ));
        }
        Ok(())
    }

    /// Converts a canonical output (`[T, B, D·H]`, or `[B, T, D·H]` when batch-first) into
    /// the framework's Y (see [`FrameworkShapes::output_shape`]).
    pub fn output_to_framework(&self, steps: Steps, batch: Batch, y: &[f32]) -> Result<Vec<f32>> {
        self.convert_output("output", steps, batch, y, true)
    }

    /// Converts the framework's Y into the canonical output layout (the inverse of
    /// [`FrameworkShapes::output_to_framework`]).
    pub fn output_from_framework(&self, steps: Steps, batch: Batch, y: &[f32]) -> Result<Vec<f32>> {
        self.convert_output(self.names().output, steps, batch, y, false)
    }

    /// Checks `y` (named `what`) against the output's size, then permutes it to or from the
    /// framework's layout.
    fn convert_output(
        &self,
        what: &str,
        steps: Steps,
        batch: Batch,
        y: &[f32],
        to_framework: bool,
    ) -> Result<Vec<f32>> {
        self.check_len(what, &self.output_shape(steps, batch), y.len())?;
        let layout = self.format.layout();
        Ok(layout.permute_output(self, steps.0, batch.0, y, to_framework))
    }

    /// Converts a canonical `h_n` (`[L·D, B, H]`) into the framework's state: the same elements
    /// under the shape [`FrameworkShapes::state_shape`].
    pub fn state_to_framework(&self, batch: usize, h_n: &[f32]) -> Result<Vec<f32>> {
        self.check_len("h_n", &self.state_shape(batch), h_n.len())?;
        Ok(self.format.layout().permute_state(self, batch, h_n, false))
    }

    /// Converts the framework's state (or h0) into the canonical `h_n` `[L·D, B, H]`.
    pub fn state_from_framework(&self, batch: usize, state: &[f32]) -> Result<Vec<f32>> {
        self.check_len(self.names().state, &self.state_shape(batch), state.len())?;
        Ok(self.format.layout().permute_state(self, batch, state, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Direction;

    #[test]
    fn onnx_transpose_roundtrip() {
        let cfg = GruConfig::new(3, 2).with_direction(Direction::Bidirectional);
        let s = FrameworkShapes::new(Format::Onnx, &cfg).unwrap();
        let (t, b) = (3, 2);
        let y: Vec<f32> = (0..t * b * 4).map(|v| v as f32).collect();
        let f = s.output_to_framework(Steps(t), Batch(b), &y).unwrap();
        // Y[t=0, d=1, b=0, :] == canonical[t=0, b=0, 2..4]
        assert_eq!(&f[b * 2..b * 2 + 2], &y[2..4]);
        assert_eq!(s.output_from_framework(Steps(t), Batch(b), &f).unwrap(), y);
        assert_eq!(s.output_shape(Steps(t), Batch(b)), vec![3, 2, 2, 2]);
        assert!(s.output_to_framework(Steps(t), Batch(b), &y[1..]).is_err());
        assert_eq!(s.x_dims(&[4, 5, 3]).unwrap(), (Steps(4), Batch(5)));
        assert!(s.x_dims(&[4, 5, 2]).is_err());
        assert!(s.x_dims(&[4, 5]).is_err());
    }

    /// An ONNX stack with layout = 1: Y is the canonical batch-first output as it is, the states
    /// transpose between `[L·D, B, H]` and `[B, L·D, H]`.
    #[test]
    fn onnx_layout1_stack() {
        let mut cfg = GruConfig::new(3, 2)
            .with_layers(2)
            .with_direction(Direction::Bidirectional);
        cfg.batch_first = true;
        let s = FrameworkShapes::new(Format::Onnx, &cfg).unwrap();
        assert_eq!(s.output_shape(Steps(5), Batch(3)), vec![3, 5, 2, 2]);
        assert_eq!(s.state_shape(3), vec![3, 4, 2]);
        let y: Vec<f32> = (0..60).map(|v| v as f32).collect();
        assert_eq!(s.output_to_framework(Steps(5), Batch(3), &y).unwrap(), y);
        let h: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let f = s.state_to_framework(3, &h).unwrap();
        // [B=0, slot=1] is canonical [slot=1, B=0].
        assert_eq!(f[2..4], h[6..8]);
        assert_eq!(s.state_from_framework(3, &f).unwrap(), h);
    }

    #[test]
    fn refuses_inexpressible() {
        let cfg = GruConfig::new(3, 2).with_layers(2);
        assert!(FrameworkShapes::new(Format::Seed, &cfg).is_err());
        assert!(FrameworkShapes::new(Format::Keras, &GruConfig::new(3, 2)).is_err());
        assert!(FrameworkShapes::new(Format::PyTorch, &cfg).is_ok());
    }
}
