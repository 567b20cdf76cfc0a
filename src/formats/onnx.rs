//! ONNX `GRU` operator: `W` `[D, 3H, I]`, `R` `[D, 3H, H]`, optional `B` `[D, 6H]`
//! (`[Wb_z, Wb_r, Wb_h, Rb_z, Rb_r, Rb_h]`). Gate order z, r, h in row blocks.

use super::tensors::{SafetensorsFile, check_rank, check_shape, times};
use super::{ImportOptions, finish_config};
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::npy::shape_str;
use crate::weights::{CellWeights, Gru, GruWeights};

const LAYOUT: &str = "onnx";

/// Canonical gate block (r, z, n) → ONNX row block (z, r, h).
const FROM_ONNX: [usize; 3] = [1, 0, 2];

pub(super) fn detect(names: &[String]) -> bool {
    names.iter().any(|n| n == "W" || n == "R")
}

/// Reorders the row blocks of a `[3H, cols]` matrix (or a `[3H]` vector with `cols = 1`).
fn reorder_rows(src: &[f32], hidden: usize, cols: usize) -> Vec<f32> {
    let block = hidden * cols;
    let mut out = vec![0.0; 3 * block];
    for (g, &og) in FROM_ONNX.iter().enumerate() {
        out[g * block..(g + 1) * block].copy_from_slice(&src[og * block..(og + 1) * block]);
    }
    out
}

/// The canonical cells of one ONNX GRU node's `W` `[D, 3H, I]`, `R` `[D, 3H, H]` and optional `B`
/// `[D, 6H]` (shapes checked by the caller).
pub(super) fn cells_from_onnx(
    w: &[f32],
    r: &[f32],
    b: Option<&[f32]>,
    dirs: usize,
    hidden: usize,
    input: usize,
) -> Vec<CellWeights> {
    let (wn, rn) = (3 * hidden * input, 3 * hidden * hidden);
    (0..dirs)
        .map(|d| {
            let mut cell = CellWeights {
                w_ih: reorder_rows(&w[d * wn..(d + 1) * wn], hidden, input),
                w_hh: reorder_rows(&r[d * rn..(d + 1) * rn], hidden, hidden),
                b_ih: vec![0.0; 3 * hidden],
                b_hh: vec![0.0; 3 * hidden],
            };
            if let Some(b) = b {
                let row = &b[d * 6 * hidden..(d + 1) * 6 * hidden];
                cell.b_ih = reorder_rows(&row[..3 * hidden], hidden, 1);
                cell.b_hh = reorder_rows(&row[3 * hidden..], hidden, 1);
            }
            cell
        })
        .collect()
}

pub(super) fn import(file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
    let fname = file.name();
    let r = file.require_f32("R", LAYOUT)?;
    check_rank("R", fname, &r, 3, "[D, 3H, H]")?;
    let (dirs, hidden) = (r.shape[0], r.shape[2]);
    if !(dirs == 1 || dirs == 2) || hidden == 0 || hidden.checked_mul(3) != Some(r.shape[1]) {
        return Err(Error::shape(
            format!("R in {fname}"),
            format!(
                "[D, 3H, H] with D = 1 or 2 = [D, {}, {hidden}]",
                times(3, hidden)
            ),
            shape_str(&r.shape),
        ));
    }
    let w = file.require_f32("W", LAYOUT)?;
    check_rank("W", fname, &w, 3, "[D, 3H, I]")?;
    let input = w.shape[2];
    check_shape("W", fname, &w, &[dirs, 3 * hidden, input])?;
    let b = file.get_f32("B")?;
    if let Some(b) = &b {
        check_shape("B", fname, b, &[dirs, 6 * hidden])?;
    }
    let cells = cells_from_onnx(
        &w.data,
        &r.data,
        b.as_ref().map(|b| b.data.as_slice()),
        dirs,
        hidden,
        input,
    );
    let variant = if opts.linear_before_reset {
        Variant::ResetAfter
    } else {
        Variant::ResetBefore
    };
    let mut config = GruConfig::new(input, hidden).with_variant(variant);
    if opts.batch_first {
        return Err(Error::arg(
            "batch_first",
            "the onnx layout takes X as [T, B, I] (layout=0); batch_first is not supported",
        ));
    }
    finish_config(&mut config, opts, dirs, "W", fname)?;
    Gru::new(
        config,
        GruWeights {
            layers: vec![cells],
        },
    )
}
