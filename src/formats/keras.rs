//! Keras `layers.GRU`: `kernel` `[I, 3H]`, `recurrent_kernel` `[H, 3H]`, optional `bias`
//! (`[2, 3H]` ⇒ reset_after, row 0 input and row 1 recurrent bias; `[3H]` ⇒ reset_before, the
//! one bias on the input side). Gate order z, r, h in column blocks. Arrays: X `[B, T, I]`,
//! h0 and the state `[B, H]`, Y `[B, T, H]` (one layer, one direction, batch-major).
//!
//! The `.keras` / `.h5` model reader (`keras_file`) reads its GRU layers' weights through
//! [`keras_cell`], this layout's conversion.

use super::layout::{Layout, NamedTensor, ZRH, one_cell};
use super::tensors::{SafetensorsFile, check_rank, shape_str, times};
use super::{ImportOptions, finish_config};
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::weights::{CellWeights, Gru, GruWeights};

const LAYOUT: &str = "keras";

/// Canonical gate block (r, z, n) → Keras column block (z, r, h).
const FROM_KERAS: [usize; 3] = ZRH;

/// The Keras layout.
pub(super) struct Keras;

impl Layout for Keras {
    fn name(&self) -> &'static str {
        LAYOUT
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["tensorflow", "tf"]
    }

    fn summary(&self) -> &'static str {
        "Keras layers.GRU"
    }

    fn hint(&self) -> &'static str {
        "keras (kernel, recurrent_kernel)"
    }

    fn detect(&self, names: &[String]) -> bool {
        names
            .iter()
            .any(|n| n == "kernel" || n == "recurrent_kernel")
    }

    fn import(&self, file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
        import(file, opts)
    }

    /// `kernel` `[I, 3H]`, `recurrent_kernel` `[H, 3H]`, `bias` `[2, 3H]` (reset-after) or
    /// `[3H]` (reset-before: the input bias).
    fn export(&self, config: &GruConfig, weights: &GruWeights) -> Result<Vec<NamedTensor>> {
        let (h, i) = (config.hidden_size, config.input_size);
        let c = one_cell(LAYOUT, config, weights)?;
        let mut out = vec![
            NamedTensor::new("kernel", vec![i, 3 * h], keras_matrix(&c.w_ih, i, h)),
            NamedTensor::new(
                "recurrent_kernel",
                vec![h, 3 * h],
                keras_matrix(&c.w_hh, h, h),
            ),
        ];
        let bi = keras_matrix(&c.b_ih, 1, h);
        match config.variant {
            Variant::ResetAfter => {
                let mut b = bi;
                b.extend(keras_matrix(&c.b_hh, 1, h));
                out.push(NamedTensor::new("bias", vec![2, 3 * h], b));
            }
            Variant::ResetBefore => out.push(NamedTensor::new("bias", vec![3 * h], bi)),
        }
        Ok(out)
    }

    fn refuse_shapes(&self, config: &GruConfig) -> Option<&'static str> {
        if config.num_layers != 1 || config.num_directions() != 1 {
            Some("keras arrays hold one layer and one direction")
        } else if !config.batch_first {
            Some("keras arrays are batch-major")
        } else {
            None
        }
    }

    fn state_shape(&self, s: &super::FrameworkShapes, batch: usize) -> Vec<usize> {
        vec![batch, s.hidden_size]
    }
}

/// Canonical `[3H, cols]` (row blocks r, z, n) → Keras `[cols, 3H]` (column blocks z, r, h):
/// the inverse of [`transpose_gates`].
fn keras_matrix(src: &[f32], cols: usize, hidden: usize) -> Vec<f32> {
    let mut out = vec![0.0; src.len()];
    for (g, &kg) in ZRH.iter().enumerate() {
        for j in 0..hidden {
            for i in 0..cols {
                out[i * 3 * hidden + kg * hidden + j] = src[(g * hidden + j) * cols + i];
            }
        }
    }
    out
}

/// Transposes a Keras `[rows, 3H]` matrix with column blocks z, r, h into a canonical
/// `[3H, rows]` matrix with row blocks r, z, n.
fn transpose_gates(src: &[f32], rows: usize, hidden: usize) -> Vec<f32> {
    let cols = 3 * hidden;
    let mut out = vec![0.0; cols * rows];
    for (g, &kg) in FROM_KERAS.iter().enumerate() {
        for j in 0..hidden {
            let dst_row = g * hidden + j;
            let src_col = kg * hidden + j;
            for i in 0..rows {
                out[dst_row * rows + i] = src[i * cols + src_col];
            }
        }
    }
    out
}

/// Reorders a Keras `[3H]` bias (blocks z, r, h) into the canonical blocks r, z, n.
fn reorder_bias(src: &[f32], hidden: usize) -> Vec<f32> {
    let mut out = vec![0.0; 3 * hidden];
    for (g, &kg) in FROM_KERAS.iter().enumerate() {
        out[g * hidden..(g + 1) * hidden].copy_from_slice(&src[kg * hidden..(kg + 1) * hidden]);
    }
    out
}

/// The canonical cell of Keras's `kernel` `[I, 3H]`, `recurrent_kernel` `[H, 3H]` and `bias`
/// (shapes checked by the caller): `[2, 3H]` (reset_after: input, then recurrent bias), `[3H]`
/// (reset_before: the input bias), or none (zeros). Every Keras reader converts through this.
pub(super) fn keras_cell(
    kernel: &[f32],
    recurrent: &[f32],
    bias: Option<&[f32]>,
    input: usize,
    hidden: usize,
) -> CellWeights {
    let h3 = 3 * hidden;
    let mut cell = CellWeights {
        w_ih: transpose_gates(kernel, input, hidden),
        w_hh: transpose_gates(recurrent, hidden, hidden),
        b_ih: vec![0.0; h3],
        b_hh: vec![0.0; h3],
    };
    if let Some(b) = bias {
        let (bi, bh) = b.split_at(h3.min(b.len()));
        cell.b_ih = reorder_bias(bi, hidden);
        if !bh.is_empty() {
            cell.b_hh = reorder_bias(bh, hidden);
        }
    }
    cell
}

fn import(file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
    let fname = file.name();
    let rk = file.require_f32("recurrent_kernel", LAYOUT)?;
    check_rank("recurrent_kernel", fname, &rk, 2, "[H, 3H]")?;
    let hidden = rk.shape[0];
    if hidden == 0 || hidden.checked_mul(3) != Some(rk.shape[1]) {
        return Err(Error::shape(
            format!("recurrent_kernel in {fname}"),
            format!("[H, 3H] = [{hidden}, {}]", times(3, hidden)),
            shape_str(&rk.shape),
        ));
    }
    let k = file.require_f32("kernel", LAYOUT)?;
    check_rank("kernel", fname, &k, 2, "[I, 3H]")?;
    let input = k.shape[0];
    if k.shape[1] != 3 * hidden {
        return Err(Error::shape(
            format!("kernel in {fname}"),
            format!("[I, 3H] = [{input}, {}]", 3 * hidden),
            shape_str(&k.shape),
        ));
    }
    let bias = file.get_f32("bias")?;
    let reset_after = match &bias {
        Some(b) if b.shape == [2, 3 * hidden] => true,
        Some(b) if b.shape == [3 * hidden] => false,
        Some(b) => {
            return Err(Error::shape(
                format!("bias in {fname}"),
                format!("[2, {0}] (reset_after) or [{0}] (reset_before)", 3 * hidden),
                shape_str(&b.shape),
            ));
        }
        None => opts.reset_after.unwrap_or(true),
    };
    let cell = keras_cell(
        &k.data,
        &rk.data,
        bias.as_ref().map(|b| b.data.as_slice()),
        input,
        hidden,
    );
    if let Some(want) = opts.reset_after
        && want != reset_after
    {
        return Err(Error::arg(
            format!("bias in {fname}"),
            format!(
                "reset_after={want} was requested but the bias shape means reset_after={reset_after}"
            ),
        ));
    }
    let variant = if reset_after {
        Variant::ResetAfter
    } else {
        Variant::ResetBefore
    };
    let mut config = GruConfig::new(input, hidden).with_variant(variant);
    // Keras input is [B, T, I] and its output [B, T, H].
    config.batch_first = true;
    finish_config(&mut config, opts, 1, "kernel", fname)?;
    Gru::new(
        config,
        GruWeights {
            layers: vec![vec![cell]],
        },
    )
}
