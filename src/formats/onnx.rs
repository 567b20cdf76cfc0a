//! ONNX `GRU` operator: `W` `[D, 3H, I]`, `R` `[D, 3H, H]`, optional `B` `[D, 6H]`
//! (`[Wb_z, Wb_r, Wb_h, Rb_z, Rb_r, Rb_h]`). Gate order z, r, h in row blocks. Arrays: X
//! `[T, B, I]` (`[B, T, I]` layout=1), initial_h and Y_h `[L·D, B, H]` (`[B, L·D, H]`), Y
//! `[T, D, B, H]` (`[B, T, D, H]`); `L` layers come from a stack of GRU nodes in an `.onnx`
//! file, which `onnx_model` reads into cells with [`cells_from_onnx`], this layout's conversion.

use super::layout::{Layout, NamedTensor, ZRH, bad_layout};
use super::tensors::{SafetensorsFile, check_rank, check_shape, shape_str, times};
use super::{FrameworkShapes, ImportOptions, TensorNames, finish_config};
use crate::config::{GruConfig, Variant};
use crate::error::{Error, Result};
use crate::weights::{CellWeights, Gru, GruWeights};

const LAYOUT: &str = "onnx";

/// Canonical gate block (r, z, n) → ONNX row block (z, r, h).
const FROM_ONNX: [usize; 3] = ZRH;

/// The ONNX layout.
pub(super) struct Onnx;

impl Layout for Onnx {
    fn name(&self) -> &'static str {
        LAYOUT
    }

    fn summary(&self) -> &'static str {
        "ONNX GRU operator"
    }

    fn hint(&self) -> &'static str {
        "onnx (W, R)"
    }

    fn detect(&self, names: &[String]) -> bool {
        names.iter().any(|n| n == "W" || n == "R")
    }

    fn import(&self, file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
        import(file, opts)
    }

    /// `W` `[D, 3H, I]`, `R` `[D, 3H, H]`, `B` `[D, 6H]` of one GRU node (one layer).
    fn export(&self, config: &GruConfig, weights: &GruWeights) -> Result<Vec<NamedTensor>> {
        let (h, i) = (config.hidden_size, config.input_size);
        let [dirs] = weights.layers.as_slice() else {
            return Err(bad_layout(
                LAYOUT,
                config,
                "an ONNX GRU node holds one layer",
            ));
        };
        let d_n = dirs.len();
        let (mut w, mut r, mut b) = (Vec::new(), Vec::new(), Vec::new());
        for c in dirs {
            w.extend(zrh_rows(&c.w_ih, i, h));
            r.extend(zrh_rows(&c.w_hh, h, h));
            b.extend(zrh_rows(&c.b_ih, 1, h));
            b.extend(zrh_rows(&c.b_hh, 1, h));
        }
        Ok(vec![
            NamedTensor::new("W", vec![d_n, 3 * h, i], w),
            NamedTensor::new("R", vec![d_n, 3 * h, h], r),
            NamedTensor::new("B", vec![d_n, 6 * h], b),
        ])
    }

    // Several layers come from a stack of GRU nodes in an .onnx file; batch-major arrays from
    // `layout = 1`.
    fn refuse_shapes(&self, _config: &GruConfig) -> Option<&'static str> {
        None
    }

    fn names(&self) -> TensorNames {
        TensorNames {
            x: "X",
            h0: "initial_h",
            lengths: "sequence_lens",
            output: "Y",
            state: "Y_h",
        }
    }

    fn state_shape(&self, s: &FrameworkShapes, batch: usize) -> Vec<usize> {
        let (ld, h) = (s.layers * s.directions, s.hidden_size);
        if s.batch_first {
            vec![batch, ld, h]
        } else {
            vec![ld, batch, h]
        }
    }

    fn output_shape(&self, s: &FrameworkShapes, steps: usize, batch: usize) -> Vec<usize> {
        let (d, h) = (s.directions, s.hidden_size);
        if s.batch_first {
            vec![batch, steps, d, h]
        } else {
            vec![steps, d, batch, h]
        }
    }

    /// Layout 0 moves Y between the canonical `[T, B, D, H]` and ONNX's `[T, D, B, H]`;
    /// layout 1's `[B, T, D, H]` is the canonical batch-first order.
    fn permute_output(
        &self,
        s: &FrameworkShapes,
        steps: usize,
        batch: usize,
        y: &[f32],
        to_framework: bool,
    ) -> Vec<f32> {
        if s.directions == 1 || s.batch_first {
            return y.to_vec();
        }
        let (d_n, h) = (s.directions, s.hidden_size);
        let mut out = vec![0.0; y.len()];
        for t in 0..steps {
            for b in 0..batch {
                for d in 0..d_n {
                    let canonical = ((t * batch + b) * d_n + d) * h;
                    let onnx = ((t * d_n + d) * batch + b) * h;
                    let (src, dst) = if to_framework {
                        (canonical, onnx)
                    } else {
                        (onnx, canonical)
                    };
                    out[dst..dst + h].copy_from_slice(&y[src..src + h]);
                }
            }
        }
        out
    }

    /// Layout 1 keeps states as `[B, L·D, H]`: transposes to or from the canonical
    /// `[L·D, B, H]`.
    fn permute_state(
        &self,
        s: &FrameworkShapes,
        batch: usize,
        v: &[f32],
        to_canonical: bool,
    ) -> Vec<f32> {
        if !s.batch_first {
            return v.to_vec();
        }
        let (s_n, h) = (s.layers * s.directions, s.hidden_size);
        let mut out = vec![0.0; v.len()];
        for slot in 0..s_n {
            for b in 0..batch {
                let canon = (slot * batch + b) * h;
                let framework = (b * s_n + slot) * h;
                let (src, dst) = if to_canonical {
                    (framework, canon)
                } else {
                    (canon, framework)
                };
                out[dst..dst + h].copy_from_slice(&v[src..src + h]);
            }
        }
        out
    }
}

/// Canonical `[3H, cols]` (row blocks r, z, n) → row blocks z, r, h (a `[3H]` vector with
/// `cols = 1`): the inverse of [`reorder_rows`].
fn zrh_rows(src: &[f32], cols: usize, hidden: usize) -> Vec<f32> {
    let block = hidden * cols;
    let mut out = vec![0.0; 3 * block];
    for (g, &og) in ZRH.iter().enumerate() {
        out[og * block..(og + 1) * block].copy_from_slice(&src[g * block..(g + 1) * block]);
    }
    out
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

fn import(file: &SafetensorsFile, opts: &ImportOptions) -> Result<Gru> {
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
