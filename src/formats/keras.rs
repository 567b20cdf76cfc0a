//! Keras `layers.GRU`: `kernel` `[I, 3H]`, `recurrent_kernel` `[H, 3H]`, optional `bias`
//! (`[2, 3H]` ⇒ reset_after, row 0 input and row 1 recurrent bias; `[3H]` ⇒ reset_before, the
//! one bias on the input side). Gate order z, r, h in column blocks.

use super::tensors::{SafetensorsFile, check_rank, times};
use super::{ImportOptions, finish_config};
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::npy::shape_str;
use crate::weights::{CellWeights, Gru, GruWeights};

const LAYOUT: &str = "keras";

/// Canonical gate block (r, z, n) → Keras column block (z, r, h).
const FROM_KERAS: [usize; 3] = [1, 0, 2];

pub(super) fn detect(names: &[String]) -> bool {
    names
        .iter()
        .any(|n| n == "kernel" || n == "recurrent_kernel")
}

/// Transposes a Keras `[rows, 3H]` matrix with column blocks z, r, h into a canonical
/// `[3H, rows]` matrix with row blocks r, z, n.
pub(super) fn transpose_gates(src: &[f32], rows: usize, hidden: usize) -> Vec<f32> {
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

pub(super) fn reorder_bias(src: &[f32], hidden: usize) -> Vec<f32> {
    let mut out = vec![0.0; 3 * hidden];
    for (g, &kg) in FROM_KERAS.iter().enumerate() {
        out[g * hidden..(g + 1) * hidden].copy_from_slice(&src[kg * hidden..(kg + 1) * hidden]);
    }
    out
}

pub(super) fn import(file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
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
    let mut cell = CellWeights {
        w_ih: transpose_gates(&k.data, input, hidden),
        w_hh: transpose_gates(&rk.data, hidden, hidden),
        b_ih: vec![0.0; 3 * hidden],
        b_hh: vec![0.0; 3 * hidden],
    };
    let reset_after = match file.get_f32("bias")? {
        Some(b) if b.shape == [2, 3 * hidden] => {
            cell.b_ih = reorder_bias(&b.data[..3 * hidden], hidden);
            cell.b_hh = reorder_bias(&b.data[3 * hidden..], hidden);
            true
        }
        Some(b) if b.shape == [3 * hidden] => {
            cell.b_ih = reorder_bias(&b.data, hidden);
            false
        }
        Some(b) => {
            return Err(Error::shape(
                format!("bias in {fname}"),
                format!("[2, {0}] (reset_after) or [{0}] (reset_before)", 3 * hidden),
                shape_str(&b.shape),
            ));
        }
        None => opts.reset_after.unwrap_or(true),
    };
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
