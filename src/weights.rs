//! [`GruWeights`]: the one canonical layout every path reads.

use crate::config::GruConfig;
use crate::error::{Error, Result};

/// The weights of one layer and one direction, in PyTorch's layout and gate order.
///
/// Gate order is **r, z, n** (row blocks), and the cell is `h' = z⊙h + (1−z)⊙n`.
/// - `w_ih`: `[3H, I_layer]`, row-major (`y = x·W_ihᵀ`);
/// - `w_hh`: `[3H, H]`, row-major;
/// - `b_ih`, `b_hh`: `[3H]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CellWeights {
    /// Input weights `[3H, I]`.
    pub w_ih: Vec<f32>,
    /// Recurrent weights `[3H, H]`.
    pub w_hh: Vec<f32>,
    /// Input bias `[3H]`.
    pub b_ih: Vec<f32>,
    /// Recurrent bias `[3H]`.
    pub b_hh: Vec<f32>,
}

impl CellWeights {
    /// All-zero weights for `hidden` units and `input` features.
    pub fn zeros(input: usize, hidden: usize) -> Self {
        CellWeights {
            w_ih: vec![0.0; 3 * hidden * input],
            w_hh: vec![0.0; 3 * hidden * hidden],
            b_ih: vec![0.0; 3 * hidden],
            b_hh: vec![0.0; 3 * hidden],
        }
    }

    /// Imports the seed's cell: `W_z`, `W_r`, `W_h` are `[H, H+I]` over `[h, x]`
    /// (the first `H` columns multiply h); `b_z`, `b_r`, `b_h` are `[H]`.
    ///
    /// The seed weights `z` on the candidate; negating its z weights and bias turns it
    /// into the framework convention exactly, since `1 − σ(a) = σ(−a)`.
    /// The seed cell is reset-before: use it with [`crate::Variant::ResetBefore`].
    #[allow(clippy::too_many_arguments)]
    pub fn from_seed(
        input: usize,
        hidden: usize,
        w_z: &[f32],
        w_r: &[f32],
        w_h: &[f32],
        b_z: &[f32],
        b_r: &[f32],
        b_h: &[f32],
    ) -> Result<Self> {
        let cols = hidden + input;
        for (name, w) in [("W_z", w_z), ("W_r", w_r), ("W_h", w_h)] {
            check_len(name, w.len(), hidden * cols, &format!("[{hidden}, {cols}]"))?;
        }
        for (name, b) in [("b_z", b_z), ("b_r", b_r), ("b_h", b_h)] {
            check_len(name, b.len(), hidden, &format!("[{hidden}]"))?;
        }
        let mut c = CellWeights::zeros(input, hidden);
        // (gate block, source, sign): r, z (negated), n.
        for (g, w, b, sign) in [
            (0, w_r, b_r, 1.0f32),
            (1, w_z, b_z, -1.0),
            (2, w_h, b_h, 1.0),
        ] {
            for j in 0..hidden {
                let row = g * hidden + j;
                let src = &w[j * cols..(j + 1) * cols];
                for (dst, &v) in c.w_hh[row * hidden..(row + 1) * hidden]
                    .iter_mut()
                    .zip(&src[..hidden])
                {
                    *dst = sign * v;
                }
                for (dst, &v) in c.w_ih[row * input..(row + 1) * input]
                    .iter_mut()
                    .zip(&src[hidden..])
                {
                    *dst = sign * v;
                }
                c.b_ih[row] = sign * b[j];
            }
        }
        Ok(c)
    }

    /// Checks every tensor's length against `input` and `hidden`.
    pub fn validate(&self, input: usize, hidden: usize, what: &str) -> Result<()> {
        check_len(
            &format!("{what}.w_ih"),
            self.w_ih.len(),
            3 * hidden * input,
            &format!("[{}, {input}]", 3 * hidden),
        )?;
        check_len(
            &format!("{what}.w_hh"),
            self.w_hh.len(),
            3 * hidden * hidden,
            &format!("[{}, {hidden}]", 3 * hidden),
        )?;
        check_len(
            &format!("{what}.b_ih"),
            self.b_ih.len(),
            3 * hidden,
            &format!("[{}]", 3 * hidden),
        )?;
        check_len(
            &format!("{what}.b_hh"),
            self.b_hh.len(),
            3 * hidden,
            &format!("[{}]", 3 * hidden),
        )?;
        Ok(())
    }
}

fn check_len(what: &str, got: usize, expected: usize, shape: &str) -> Result<()> {
    if got != expected {
        return Err(Error::shape(
            what,
            format!("{shape} ({expected} elements)"),
            format!("{got} elements"),
        ));
    }
    Ok(())
}

/// Weights of a whole GRU: `layers[layer][direction]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GruWeights {
    /// `[L][D]` cells; direction 0 is forward (or the only direction), 1 reverse.
    pub layers: Vec<Vec<CellWeights>>,
}

/// A GRU model: its [`GruConfig`] and [`GruWeights`]. Every path (reference, CPU, GPU) runs one.
#[derive(Debug, Clone, PartialEq)]
pub struct Gru {
    /// Sizes and semantics.
    pub config: GruConfig,
    /// Weights, `[L][D]`.
    pub weights: GruWeights,
}

impl Gru {
    /// Checks the config and that the weights agree with it.
    pub fn new(config: GruConfig, weights: GruWeights) -> Result<Self> {
        let g = Gru { config, weights };
        g.validate()?;
        Ok(g)
    }

    /// A single-layer forward GRU from one cell.
    pub fn single(config: GruConfig, cell: CellWeights) -> Result<Self> {
        Gru::new(
            config,
            GruWeights {
                layers: vec![vec![cell]],
            },
        )
    }

    /// Checks the config and the weights' shapes.
    pub fn validate(&self) -> Result<()> {
        let c = &self.config;
        c.validate()?;
        if self.weights.layers.len() != c.num_layers {
            return Err(Error::shape(
                "layers",
                c.num_layers,
                self.weights.layers.len(),
            ));
        }
        for (l, dirs) in self.weights.layers.iter().enumerate() {
            if dirs.len() != c.num_directions() {
                return Err(Error::shape(
                    format!("layer {l} directions"),
                    c.num_directions(),
                    dirs.len(),
                ));
            }
            for (d, cell) in dirs.iter().enumerate() {
                cell.validate(
                    c.layer_input_size(l),
                    c.hidden_size,
                    &format!("layer {l} direction {d}"),
                )?;
            }
        }
        Ok(())
    }
}
